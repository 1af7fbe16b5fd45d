"""Sessions have owners: a running session belongs to the process holding its journal's lease, and
recovery (at the start of run, demo and serve) closes only sessions whose owner is provably gone.
Also: workstation identities, and schema changes serialised across processes. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest_db import make_started

from devices.records import Event, EventKind, Finished, Outcome, Phase, Sample
from session.db import current_revision, head_revision, make_engine, schema_lock, upgrade
from session.identity import IdentityError, hold_service_lock, load_identity, register
from session.journal import JournalWriter, is_owned, journals
from session.recovery import recover
from session.seal import verify
from session.store import NumberedEvent, SessionContext, Store

CHILD = Path(__file__).with_name("session_recording_child.py")

CLAIM = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from session.db import make_engine
    from session.store import Store
    from traction.context import claim_workstation

    identity, report = claim_workstation(Store(make_engine(sys.argv[1])), Path(sys.argv[2]), sys.argv[3])
    print(json.dumps({"id": identity.id, "closed": report.closed, "live": report.live}))
    """
)


def claim_in_another_process(url: str, data_dir: Path, label: str) -> dict[str, object]:
    """What a second ``traction run``/``demo``/``serve`` does at its start, in a process of its own."""
    done = subprocess.run(
        [sys.executable, "-c", CLAIM, url, str(data_dir), label],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


class RecordingChild:
    """A process recording one session at 100 Hz (tests/session_recording_child.py)."""

    def __init__(self, url: str, context: SessionContext, data_dir: Path) -> None:
        command = [sys.executable, str(CHILD), "records", url, str(context.patient_id)]
        command += [str(context.treating_clinician_id), context.workstation, str(data_dir)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.run_id: str | None = None
        self.published: dict[int, float] = {}
        self.started = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            parts = line.split()
            if parts[0] == "RUN":
                self.run_id = parts[1]
            elif parts[0] == "P":
                self.published[int(parts[1])] = float(parts[2])
                if len(self.published) >= 100:
                    self.started.set()

    def kill(self) -> float:
        killed_at = time.monotonic()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self._reader.join(10)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return killed_at


def wait_for(condition: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_running_session_is_left_alone_by_other_processes_then_recovered_once_its_owner_dies(
    db_url: str, store: Store, context: SessionContext, tmp_path: Path
) -> None:
    """The bug this replaces: a second process with the same workstation name sealed a running
    session as interrupted. Now neither a second process of the same workstation (same identity)
    nor another workstation with the copied name touches it; once its process is killed, the next
    start closes it with everything it journalled."""
    data_dir = tmp_path / "ws-a"
    child = RecordingChild(db_url, context, data_dir)
    try:
        assert child.started.wait(60), "the recording child never got going"
        run = child.run_id
        assert run is not None
        wait_for(lambda: store.sample_count(run) > 50, "samples in the store")

        same_workstation = claim_in_another_process(db_url, data_dir, context.workstation)
        copied_name = claim_in_another_process(db_url, tmp_path / "ws-b", context.workstation)

        assert same_workstation["live"] == [run] and same_workstation["closed"] == []
        assert copied_name["closed"] == [] and copied_name["id"] != same_workstation["id"]
        assert store.get_session(run).outcome is None
        before = store.sample_count(run)
        wait_for(lambda: store.sample_count(run) > before + 50, "the session to go on recording")
        assert is_owned(data_dir / "journals" / f"{run}.journal")
    finally:
        killed_at = child.kill()

    closed = claim_in_another_process(db_url, data_dir, context.workstation)

    assert closed["closed"] == [run] and closed["live"] == []
    row = store.get_session(run)
    assert row.outcome == Outcome.INTERRUPTED.value and row.sealed_at is not None
    stored = {s.seq for s in store.iter_samples(run)}
    journalled_in_time = {s for s, at in child.published.items() if at < killed_at - 0.25 - 0.75}
    assert journalled_in_time and journalled_in_time <= stored
    assert row.sample_count == len(stored) and verify(store, run).ok
    assert journals(data_dir / "journals") == []


def write_journal(
    directory: Path, context: SessionContext, samples: int, finished: bool
) -> tuple[str, Path]:
    """A journal as a treatment process leaves it when it dies (its lease released)."""
    started = make_started()
    run = started.run_id
    writer = JournalWriter.create(directory, run, context)
    writer.append(started)
    writer.append(NumberedEvent(0, Event(run, 0.0, EventKind.PHASE, "hold", {"cycle": 1})))
    for i in range(samples):
        writer.append(Sample(run, i, i * 0.02, 300.0, 299.0, Phase.HOLD, 1))
    if finished:
        writer.append(Finished(run, samples * 0.02, started.wall, Outcome.STOPPED, "op", samples))
    writer.write(writer.take())
    path = writer.path
    writer.close()
    return run, path


@pytest.mark.parametrize("finished", [True, False], ids=["finished", "cut-short"])
def test_a_journal_the_store_never_saw_is_ingested_whole_at_the_next_start(
    store: Store, context: SessionContext, tmp_path: Path, finished: bool
) -> None:
    """The database was away for the whole session and the process then died: the journal holds
    everything, and the next start puts it in the store with the outcome it reached."""
    identity = load_identity(tmp_path, context.workstation)
    register(store.engine, identity)
    mine = replace(context, workstation_id=identity.id)
    run, path = write_journal(identity.journal_dir, mine, 3000, finished)
    with path.open("ab") as torn:  # killed in the middle of a write
        torn.write(b'["s",3000,60.0,300.0,29')

    report = recover(store, identity)

    row = store.get_session(run)
    assert row.outcome == ("stopped" if finished else "interrupted")
    assert (row.sample_count, row.event_count) == (3000, 1)
    assert row.workstation_id == identity.id and verify(store, run).ok
    assert report.closed == [run] and not path.exists()
    assert recover(store, identity).closed == []  # done once


def test_a_journal_whose_owner_lives_is_never_ingested_by_recovery(
    store: Store, context: SessionContext, tmp_path: Path
) -> None:
    identity = load_identity(tmp_path, context.workstation)
    writer = JournalWriter.create(identity.journal_dir, make_started().run_id, context)
    try:
        report = recover(store, identity)
        assert report.live == [writer.path.name.removesuffix(".journal")]
        assert writer.path.exists() and report.closed == []
    finally:
        writer.close()


def test_an_open_session_of_this_workstation_without_a_journal_is_interrupted(
    store: Store, context: SessionContext, tmp_path: Path
) -> None:
    """A journal lives as long as its session is unsealed, so an open session of this identity
    with no journal has no owner; one of another identity is not this workstation's to judge."""
    identity = load_identity(tmp_path, context.workstation)
    orphan, theirs = make_started(), make_started()
    store.create_session(orphan, replace(context, workstation_id=identity.id))
    store.create_session(theirs, replace(context, workstation_id="another-identity"))

    report = recover(store, identity)

    assert report.interrupted == [orphan.run_id]
    assert store.get_session(orphan.run_id).sealed_at is not None
    assert store.get_session(theirs.run_id).outcome is None


def test_the_identity_is_made_once_and_a_copied_data_directory_is_refused(
    engine: object, tmp_path: Path
) -> None:
    first = load_identity(tmp_path / "a", "room-2")
    assert load_identity(tmp_path / "a", "renamed") == replace(first, label="renamed")
    assert load_identity(tmp_path / "b", "room-2").id != first.id  # a copied config: new identity

    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "workstation.json").write_bytes((tmp_path / "a" / "workstation.json").read_bytes())
    with pytest.raises(IdentityError, match="the directory was copied"):
        load_identity(copy, "room-2")
    with pytest.raises(IdentityError, match="made on computer"):
        load_identity(tmp_path / "a", "room-2", machine="another-computer")


def test_the_store_refuses_one_identity_claimed_from_two_computers(
    store: Store, tmp_path: Path
) -> None:
    identity = load_identity(tmp_path, "room-2")
    register(store.engine, identity)
    register(store.engine, replace(identity, label="room-2b"))  # a new label is fine
    with pytest.raises(IdentityError, match="already claimed in the store by computer"):
        register(store.engine, replace(identity, machine="cloned-disk"))


def test_a_second_workstation_service_of_one_identity_is_refused(tmp_path: Path) -> None:
    identity = load_identity(tmp_path, "room-2")
    held = hold_service_lock(identity)
    try:
        with pytest.raises(
            IdentityError, match=f"another workstation service \\(pid {os.getpid()}"
        ):
            hold_service_lock(identity)
    finally:
        held.release()
    hold_service_lock(identity).release()  # free again once the first has stopped


RACE = textwrap.dedent(
    """
    import sys, time
    from session.db import make_engine, prepare
    go = float(sys.argv[2])
    time.sleep(max(0.0, go - time.time()))
    print(prepare(make_engine(sys.argv[1])))
    """
)


@pytest.mark.slow
def test_simultaneous_first_starts_on_an_empty_store_all_succeed(db_url: str) -> None:
    """Several workstations start at once on an empty store: the schema is created once, under
    the store-wide lock, and every one of them starts (no UniqueViolation on alembic_version)."""
    engine = make_engine(db_url)
    go = time.time() + 3.0  # every process imported and waiting by then
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, db_url, repr(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outputs = [racer.communicate(timeout=120) for racer in racers]
    for racer, (out, err) in zip(racers, outputs, strict=True):
        assert racer.returncode == 0, err
        assert out.strip() == head_revision()
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_a_new_sqlite_file_opened_under_the_schema_lock_is_put_in_wal(tmp_path: Path) -> None:
    """The first connection to a new file switches it to WAL under a lock of its own: under the
    schema lock (which upgrade holds while it connects) it must neither wait on itself nor skip
    the switch."""
    engine = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    opened: list[str] = []

    def first_connection() -> None:
        with schema_lock(engine), engine.connect() as conn:
            opened.append(str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()))

    opener = threading.Thread(target=first_connection, daemon=True)
    opener.start()
    opener.join(30)
    assert not opener.is_alive(), "opening a new file under the schema lock waited on itself"
    assert opened == ["wal"]
    engine.dispose()


def test_upgrade_waits_for_the_schema_lock(db_url: str) -> None:
    engine = make_engine(db_url)
    finished = threading.Event()
    with schema_lock(engine):
        worker = threading.Thread(target=lambda: (upgrade(db_url), finished.set()), daemon=True)
        worker.start()
        assert not finished.wait(1.0), "the upgrade ran while another held the schema lock"
    assert finished.wait(60)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_a_journal_the_store_refuses_is_kept_aside_never_dropped(
    store: Store, context: SessionContext, tmp_path: Path
) -> None:
    identity = load_identity(tmp_path, context.workstation)
    unknown_patient = replace(context, patient_id=987654, workstation_id=identity.id)
    run, path = write_journal(identity.journal_dir, unknown_patient, 10, finished=False)

    report = recover(store, identity)

    assert report.set_aside == [f"{run}.journal.unreadable"] and report.closed == []
    kept = path.with_name(path.name + ".unreadable")
    assert kept.read_bytes().count(b"\n") == 1 + 1 + 1 + 10  # header, started, event, samples
    assert recover(store, identity).set_aside == []  # looked at once, then left to a person

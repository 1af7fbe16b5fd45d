"""The recorder on SQLite and PostgreSQL: every record journalled then stored, the loop never held
up, crashes and stalls survived, finished sessions sealed and their journals removed."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest_db import make_started

from devices.clock import ScaledClock
from devices.contract import StopKind
from devices.records import Event, EventKind, Finished, Outcome, Phase, Sample, Started
from devices.stream import Stream
from session.facts import facts_for
from session.facts import load as load_facts
from session.identity import load_identity
from session.journal import JournalWriter, is_owned, journals
from session.recorder import Recorder, RecorderStats, write_batch
from session.recovery import recover
from session.seal import seal, verify
from session.store import SessionContext, Store

CHILD = Path(__file__).with_name("session_recording_child.py")


class StopRequests:
    """Stands in for the control loop's ``request_stop``: remembers each request."""

    def __init__(self) -> None:
        self.calls: list[tuple[StopKind, str, int]] = []
        self.recorder: Recorder | None = None

    def __call__(self, kind: StopKind, reason: str) -> None:
        buffered = self.recorder.stats().buffered if self.recorder else -1
        self.calls.append((kind, reason, buffered))


class WriteLock:
    """Another connection holding the write lock: SQLite ``BEGIN IMMEDIATE``, or PostgreSQL
    ``LOCK TABLE <table>`` in access-exclusive mode."""

    def __init__(self, url: str, table: str = "samples") -> None:
        self.url = sa.make_url(url)
        self.table = table
        self._sqlite: sqlite3.Connection | None = None
        self._engine: sa.Engine | None = None
        self._conn: sa.Connection | None = None

    def acquire(self) -> None:
        if self.url.get_backend_name() == "sqlite":
            assert self.url.database
            self._sqlite = sqlite3.connect(
                self.url.database, isolation_level=None, timeout=30, check_same_thread=False
            )
            self._sqlite.execute("BEGIN IMMEDIATE")
        else:
            self._engine = sa.create_engine(self.url)
            self._conn = self._engine.connect()
            self._conn.exec_driver_sql(f"LOCK TABLE {self.table} IN ACCESS EXCLUSIVE MODE")

    def rename_away(self) -> None:
        """Rename the table to ``<table>_away`` and commit: a write waiting for the lock fails."""
        rename = f"ALTER TABLE {self.table} RENAME TO {self.table}_away"
        if self._sqlite is not None:
            self._sqlite.execute(rename)
            self._sqlite.execute("COMMIT")
            self._sqlite.close()
        if self._conn is not None and self._engine is not None:
            self._conn.exec_driver_sql(rename)
            self._conn.commit()
            self._conn.close()
            self._engine.dispose()

    def release(self) -> None:
        if self._sqlite is not None:
            self._sqlite.execute("ROLLBACK")
            self._sqlite.close()
        if self._conn is not None and self._engine is not None:
            self._conn.rollback()
            self._conn.close()
            self._engine.dispose()


def rename(engine: sa.Engine, old: str, new: str) -> None:
    """Rename a table of the store: a write to the old name then fails, as in an outage."""
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}")


class Starvation:
    """A thread that sleeps a tick at a time and keeps its longest oversleep: how long the machine
    left this process without a core. A tick later than that was held up by something else."""

    def __init__(self, period: float = 0.02) -> None:
        self.period = period
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            before = time.monotonic()
            time.sleep(self.period)
            self.longest = max(self.longest, time.monotonic() - before - self.period)

    def __enter__(self) -> Starvation:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    return tmp_path / "journals"


def seqs(store: Store, run: str) -> list[int]:
    return [s.seq for s in store.iter_samples(run)]


async def test_recorder_keeps_every_record_and_seals_on_finish(
    store: Store, context: SessionContext, journal_dir: Path
) -> None:
    stops = StopRequests()
    clock = ScaledClock(50.0)
    stream = Stream()
    started = make_started()
    run = started.run_id
    recorder = Recorder(store, context, stops, journal_dir=journal_dir, stall_warning_after=SLOW)
    async with recorder:
        stream.subscribe(recorder)
        stream.publish(started)
        for i in range(600):
            await clock.sleep_until(i * 0.02)
            stream.publish(Sample(run, i, clock.now(), 300.0, 299.0, Phase.HOLD, i // 100))
            if i % 100 == 0:
                stream.publish(
                    Event(run, clock.now(), EventKind.PHASE, "hold", {"cycle": i // 100})
                )
        stream.publish(
            Finished(run, clock.now(), clock.wall(clock.now()), Outcome.COMPLETED, "done", 600)
        )
        digest = await asyncio.wait_for(recorder.wait_finished(), 30)
    row = store.get_session(run)
    assert (row.outcome, row.sample_count, row.event_count) == ("completed", 600, 6)
    assert row.seal_digest == digest and verify(store, run).ok
    assert seqs(store, run) == list(range(600))
    assert [e.data["cycle"] for e in store.iter_events(run)] == list(range(6))
    assert stops.calls == []
    assert journals(journal_dir) == []  # sealed: the journal has done its work


@pytest.mark.slow
async def test_database_stall_keeps_ticks_on_time_and_loses_nothing(
    db_url: str, store: Store, context: SessionContext, journal_dir: Path
) -> None:
    stops = StopRequests()
    clock = ScaledClock(1.0)
    stream = Stream()
    started = make_started(t=clock.now())
    run = started.run_id
    lock = WriteLock(db_url)
    period, ticks = 0.02, 300  # 6 s at 50 Hz; the database is locked from 1 s to 4.5 s
    lateness: list[float] = []

    async def stall() -> None:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(lock.acquire)
        await asyncio.sleep(3.5)
        await asyncio.to_thread(lock.release)

    starvation = Starvation(period)
    async with Recorder(store, context, stops, journal_dir=journal_dir) as recorder:
        stream.subscribe(recorder)
        stream.publish(started)
        staller = asyncio.create_task(stall())
        begin = clock.now()
        with starvation:
            for i in range(ticks):
                deadline = begin + i * period
                await clock.sleep_until(deadline)
                lateness.append(clock.now() - deadline)
                stream.publish(Sample(run, i, clock.now(), 250.0, 249.0, Phase.HOLD))
        await staller
        stream.publish(
            Finished(run, clock.now(), clock.wall(clock.now()), Outcome.COMPLETED, "ok", ticks)
        )
        await asyncio.wait_for(recorder.wait_finished(), 60)
        stats = recorder.stats()

    # held up by the 3.5 s stall, a tick would be seconds late while the process had a core
    assert max(lateness) < starvation.longest + 1.0, (
        f"a tick was held up {max(lateness):.3f} s; the process was left without a core for "
        f"{starvation.longest:.3f} s at most"
    )
    assert seqs(store, run) == list(range(ticks))
    warnings = [e.reason for e in store.iter_events(run) if e.kind == EventKind.WARNING]
    assert (
        "the database has not answered a write within 1 s; records wait in the journal until "
        "it is back" in warnings
    ), warnings
    assert any("database back after" in w for w in warnings), warnings
    assert stats.stalls == 1 and stops.calls == []
    assert verify(store, run).ok


async def test_a_long_database_outage_never_stops_the_session_and_loses_nothing(
    db_url: str, store: Store, context: SessionContext, journal_dir: Path
) -> None:
    """Far more records than the old in-memory buffer held (30 000) arrive while the database is
    locked: they wait in the journal on disk, the session is never asked to stop, and all of them
    are stored once the database answers."""
    stops = StopRequests()
    stream = Stream()
    started = make_started()
    run = started.run_id
    lock = WriteLock(db_url)
    recorder = Recorder(store, context, stops, journal_dir=journal_dir, max_batch=2000)
    stops.recorder = recorder
    stream.subscribe(recorder)
    recorder.start()
    stream.publish(started)
    await asyncio.sleep(0.5)  # the session row is written before the outage
    await asyncio.to_thread(lock.acquire)
    try:
        for i in range(40_000):
            stream.publish(Sample(run, i, i * 0.02, 100.0, 99.0, Phase.HOLD))
            if i % 2000 == 0:
                await asyncio.sleep(0.05)
        [journal] = journals(journal_dir)
        for _ in range(200):  # the journal task writes it within a flush interval
            if journal.stat().st_size > 40_000 * 20:
                break
            await asyncio.sleep(0.05)
        assert journal.stat().st_size > 40_000 * 20, "the records are not on disk"
        assert recorder.stats().buffered >= 40_000 - 2000
    finally:
        await asyncio.to_thread(lock.release)
    stream.publish(Finished(run, 900.0, started.wall, Outcome.COMPLETED, "ok", 40_000))
    await asyncio.wait_for(recorder.wait_finished(), 120)
    await recorder.close()

    assert stops.calls == []
    assert seqs(store, run) == list(range(40_000))
    assert store.get_session(run).outcome == "completed" and verify(store, run).ok
    assert journals(journal_dir) == []


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["loop", "records"])
def test_sigkill_mid_session_leaves_an_interrupted_session_with_every_flushed_sample(
    mode: str, db_url: str, store: Store, context: SessionContext, tmp_path: Path
) -> None:
    """``loop``: the real control loop on a Modbus TCP simulated table; ``records``: real records
    at a fixed 100 Hz. Either way the recording process is SIGKILLed after 2.5 s of samples."""
    flush_interval, slack = 0.25, 0.75  # slack: a loaded machine may take a while to write
    data_dir = tmp_path / "ws"
    command = [sys.executable, str(CHILD), mode, db_url, str(context.patient_id)]
    command += [str(context.treating_clinician_id), context.workstation, str(data_dir)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    published: dict[int, float] = {}  # seq -> monotonic moment of publication
    runs: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            parts = line.split()
            if parts[0] == "RUN":
                runs.append(parts[1])
            elif parts[0] == "P":
                published[int(parts[1])] = at = float(parts[2])
                if at - min(published.values()) >= 2.5:  # 2.5 s of samples
                    ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60), "the recording child never got going"
        killed_at = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(30)
    reader.join(10)
    assert child.stdout is not None
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    [run] = runs
    assert store.get_session(run).outcome is None  # the dead process never finished it

    report = recover(store, load_identity(data_dir, context.workstation))

    assert report.interrupted == [run] and report.live == []
    assert journals(data_dir / "journals") == []
    row = store.get_session(run)
    assert row.outcome == Outcome.INTERRUPTED.value and row.sealed_at is not None
    stored = seqs(store, run)
    assert stored == list(range(stored[0], stored[0] + len(stored))), "a gap in the samples"
    old_enough = [s for s, at in published.items() if at < killed_at - flush_interval - slack]
    assert len(old_enough) > 50
    missing = sorted(set(old_enough) - set(stored))
    assert not missing, (
        f"{len(missing)} samples older than the flush interval were lost: {missing[:10]}"
    )
    last = [s for s in store.iter_samples(run)][-1]
    assert row.sample_count == len(stored) and row.last_sample_t == last.t
    assert verify(store, run).ok


async def test_failing_writes_are_retried_until_the_database_is_back(
    engine: sa.Engine, store: Store, context: SessionContext, journal_dir: Path
) -> None:
    """Writes that fail outright (here: the samples table gone for a while) keep the records in
    the journal, record a warning, and are retried until they succeed."""
    stops = StopRequests()
    stream = Stream()
    started = make_started()
    run = started.run_id
    async with Recorder(store, context, stops, journal_dir=journal_dir) as recorder:
        stream.subscribe(recorder)
        stream.publish(started)
        for i in range(20):
            stream.publish(Sample(run, i, i * 0.02, 100.0, 99.0, Phase.HOLD))
        await asyncio.sleep(0.6)
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE samples RENAME TO samples_away")
        for i in range(20, 60):
            stream.publish(Sample(run, i, i * 0.02, 100.0, 99.0, Phase.HOLD))
            await asyncio.sleep(0.02)
        for _ in range(600):  # the next flush fails within a fraction of a second
            if recorder.stats().stalls:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("no write failure was seen in 30 s with the samples table gone")
        assert recorder.stats().buffered >= 40
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE samples_away RENAME TO samples")
        stream.publish(Finished(run, 1.2, started.wall, Outcome.COMPLETED, "ok", 60))
        await asyncio.wait_for(recorder.wait_finished(), 60)
    assert seqs(store, run) == list(range(60))
    reasons = [e.reason for e in store.iter_events(run) if e.kind == EventKind.WARNING]
    assert any(r.startswith("database write failed") for r in reasons), reasons
    assert any(r.startswith("database back after") for r in reasons), reasons
    assert stops.calls == [] and verify(store, run).ok


# --- the recorder's own rules, at their edges
# A write slower than this is a stall; these tests count only failed writes as stalls, so a loaded
# machine's slow write must not add one. ---------------------------------------------------

SLOW = 60.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"flush_interval": 0.0}, "flush_interval 0.0 s must be in (0, 0.25]"),
        ({"flush_interval": 0.2501}, "flush_interval 0.2501 s must be in (0, 0.25]"),
        ({"max_batch": 0}, "max_batch 0 must be at least 1"),
    ],
)
def test_a_flush_interval_or_batch_size_out_of_range_is_refused_naming_it(
    store: Store,
    context: SessionContext,
    journal_dir: Path,
    options: dict[str, float],
    message: str,
) -> None:
    with pytest.raises(ValueError) as info:
        Recorder(store, context, StopRequests(), journal_dir=journal_dir, **options)  # type: ignore[arg-type]
    assert str(info.value) == message


async def test_a_batch_of_one_and_the_longest_flush_interval_still_store_everything_in_order(
    store: Store, context: SessionContext, journal_dir: Path
) -> None:
    started = make_started()
    run = started.run_id
    recorder = Recorder(
        store,
        context,
        StopRequests(),
        journal_dir=journal_dir,
        flush_interval=0.25,
        max_batch=1,
        stall_warning_after=SLOW,
    )
    assert recorder.session_id is None and recorder.journal_path is None
    assert recorder.stats() == RecorderStats(0, 0, 0, False, False)
    async with recorder:
        recorder.deliver(started)
        assert recorder.session_id == run
        assert recorder.journal_path == journal_dir / f"{run}.journal"
        for i in range(12):
            recorder.deliver(Sample(run, i, i * 0.02, 100.0, 99.0, Phase.HOLD))
        recorder.deliver(Event(run, 0.25, EventKind.PHASE, "rest", {"cycle": 1}))
        assert recorder.stats().buffered == 14
        recorder.deliver(Finished(run, 0.3, started.wall, Outcome.COMPLETED, "done", 12))
        digest = await asyncio.wait_for(recorder.wait_finished(), 30)
        assert await asyncio.wait_for(recorder.wait_finished(), 30) == digest
    assert recorder.stats() == RecorderStats(0, 12, 0, False, True)
    assert seqs(store, run) == list(range(12))
    assert [(e.seq, e.reason) for e in store.iter_events(run)] == [(0, "rest")]
    assert store.get_session(run).seal_digest == digest and journals(journal_dir) == []


async def test_the_recorders_tasks_are_named_for_whoever_reads_a_task_dump(
    store: Store, context: SessionContext, journal_dir: Path
) -> None:
    """A hung shutdown or an asyncio debug dump lists tasks by name: the recorder's say what
    they are (with a journal sink, the treatment process writes the journal: no writer task)."""

    def ours() -> list[str]:
        return sorted(t.get_name() for t in asyncio.all_tasks() if "session-" in t.get_name())

    async with Recorder(store, context, StopRequests(), journal_dir=journal_dir):
        assert ours() == ["session-ingest", "session-journal"]
    sink = Recorder(
        store, context, StopRequests(), journal_dir=journal_dir, journal_sink=lambda *_: None
    )
    async with sink:
        assert ours() == ["session-ingest"]


async def test_closing_a_recorder_that_never_started_nor_opened_a_journal_does_nothing(
    store: Store, context: SessionContext, journal_dir: Path
) -> None:
    recorder = Recorder(store, context, StopRequests(), journal_dir=journal_dir)
    await recorder.close()
    assert recorder.journal_path is None and journals(journal_dir) == []


def test_a_record_before_started_is_a_bug_said_plainly(
    store: Store, context: SessionContext, journal_dir: Path
) -> None:
    recorder = Recorder(
        store, context, StopRequests(), journal_dir=journal_dir, stall_warning_after=SLOW
    )
    with pytest.raises(RuntimeError) as info:
        recorder.deliver(Sample("run", 0, 0.0, 1.0, 1.0, Phase.HOLD))
    assert str(info.value) == "the recorder got a record before its session's Started"


async def test_a_journal_made_up_front_for_a_session_that_never_starts_is_removed(
    store: Store, context: SessionContext, journal_dir: Path
) -> None:
    recorder = Recorder(
        store, context, StopRequests(), journal_dir=journal_dir, stall_warning_after=SLOW
    )
    path = recorder.open_journal("never-run")
    assert recorder.open_journal("never-run") == path == recorder.journal_path
    assert journals(journal_dir) == [path] and is_owned(path)
    await recorder.close()  # never started
    assert journals(journal_dir) == []
    started = Recorder(
        store, context, StopRequests(), journal_dir=journal_dir, stall_warning_after=SLOW
    )
    started.open_journal("never-run-either")
    async with started:
        pass
    assert journals(journal_dir) == []


async def test_closing_before_the_session_finished_keeps_the_journal_for_recovery(
    store: Store, context: SessionContext, journal_dir: Path
) -> None:
    started = make_started()
    run = started.run_id
    async with Recorder(
        store, context, StopRequests(), journal_dir=journal_dir, stall_warning_after=SLOW
    ) as recorder:
        recorder.deliver(started)
        for i in range(5):
            recorder.deliver(Sample(run, i, i * 0.02, 100.0, 99.0, Phase.HOLD))
    [journal] = journals(journal_dir)
    assert journal.name == f"{run}.journal" and not is_owned(journal)  # its lease let go
    assert seqs(store, run) == list(range(5)) and store.get_session(run).outcome is None
    assert recorder.stats() == RecorderStats(0, 5, 0, False, False)


async def test_records_of_a_session_already_sealed_are_ingested_again_without_a_new_seal(
    store: Store, context: SessionContext, journal_dir: Path
) -> None:
    """A process that died between sealing and removing its journal: the records are ingested
    again (idempotently) and the session keeps the seal it has."""
    started = make_started()
    run = started.run_id
    records = [
        started,
        Sample(run, 0, 0.02, 1.0, 1.0, Phase.HOLD),
        Finished(run, 0.1, started.wall, Outcome.COMPLETED, "done", 1),
    ]
    write_batch(store, context, records)
    write_batch(store, context, records[2:])  # the outcome is recorded once: a retry is a no-op
    sealed = seal(store, run)
    async with Recorder(
        store, context, StopRequests(), journal_dir=journal_dir, stall_warning_after=SLOW
    ) as recorder:
        for record in records:
            recorder.deliver(record)
        assert await asyncio.wait_for(recorder.wait_finished(), 30) == sealed
    assert store.get_session(run).seal_digest == sealed and verify(store, run).ok
    assert seqs(store, run) == [0] and journals(journal_dir) == []


async def _until(check: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"waited {seconds:g} s for {what}")


async def test_two_outages_are_two_stalls_and_warnings_after_the_end_precede_the_outcome(
    engine: sa.Engine, store: Store, context: SessionContext, journal_dir: Path
) -> None:
    """The first outage while the session runs, the second once ``Finished`` is journalled: each
    is one stall with its two warnings, and those of the second are stored with the session's
    events before its outcome is written and sealed."""

    started = make_started()
    run = started.run_id
    recorder = Recorder(
        store, context, StopRequests(), journal_dir=journal_dir, stall_warning_after=SLOW
    )
    async with recorder:
        recorder.deliver(started)
        await _until(lambda: recorder.stats().buffered == 0, "the session row")
        rename(engine, "samples", "samples_away")
        for i in range(10):
            recorder.deliver(Sample(run, i, i * 0.02, 100.0, 99.0, Phase.HOLD))
        await _until(lambda: recorder.stats().stalls == 1, "the first outage")
        rename(engine, "samples_away", "samples")
        await _until(lambda: recorder.stats().buffered == 0, "the first samples and warnings")
        rename(engine, "samples", "samples_away")
        for i in range(10, 20):
            recorder.deliver(Sample(run, i, i * 0.02, 100.0, 99.0, Phase.HOLD))
        recorder.deliver(Finished(run, 0.5, started.wall, Outcome.COMPLETED, "ok", 20))
        await _until(lambda: recorder.stats().stalls == 2, "the second outage")
        rename(engine, "samples_away", "samples")
        digest = await asyncio.wait_for(recorder.wait_finished(), 30)
    assert recorder.stats() == RecorderStats(0, 20, 2, False, True)
    events = list(store.iter_events(run))
    assert [e.seq for e in events] == [0, 1, 2, 3]
    assert all(e.kind == EventKind.WARNING for e in events)
    assert [e.t for e in events] == [0.02 * 9, 0.02 * 9, 0.5, 0.5]  # the last record's time
    assert (events[0].data, events[2].data) == ({"waiting": 10}, {"waiting": 11})
    assert events[1].data["waiting"] in (0, 1) and events[3].data["waiting"] == 1
    for lost, back in (events[:2], events[2:]):
        assert lost.reason.startswith("database write failed: ") and lost.reason.endswith(
            "; records wait in the journal until it is back"
        ), lost.reason
        assert set(lost.data) == {"waiting"} and lost.data["waiting"] >= 10
        assert back.reason.startswith("database back after ")
        assert back.reason.endswith(" s; waiting records written")
        assert set(back.data) == {"away_s", "waiting"}
        away_s = back.data["away_s"]
        assert 0 < away_s < 60 and round(away_s, 3) == away_s  # to the millisecond
    row = store.get_session(run)
    assert (row.outcome, row.sample_count, row.event_count) == ("completed", 20, 4)
    assert row.seal_digest == digest and verify(store, run).ok
    assert seqs(store, run) == list(range(20))


async def test_a_failed_write_of_the_late_warnings_is_recorded_with_them(
    engine: sa.Engine, store: Store, context: SessionContext, journal_dir: Path
) -> None:
    """Warnings raised after ``Finished`` are written just before the outcome, and the record
    stays open until then: when writing those warnings fails too, the failure's own warning
    joins them, in order, and all three are sealed with the session."""

    started = make_started()
    run = started.run_id
    recorder = Recorder(
        store, context, StopRequests(), journal_dir=journal_dir, stall_warning_after=SLOW
    )
    async with recorder:
        recorder.deliver(started)
        await _until(lambda: recorder.stats().buffered == 0, "the session row")
        rename(engine, "samples", "samples_away")
        rename(engine, "events", "events_away")
        for i in range(10):
            recorder.deliver(Sample(run, i, i * 0.02, 100.0, 99.0, Phase.HOLD))
        recorder.deliver(Finished(run, 0.5, started.wall, Outcome.COMPLETED, "ok", 10))
        await _until(lambda: recorder.stats().stalls == 1, "the samples' outage")
        rename(engine, "samples_away", "samples")
        await _until(lambda: recorder.stats().stalls == 2, "the late warnings' failed write")
        rename(engine, "events_away", "events")
        digest = await asyncio.wait_for(recorder.wait_finished(), 30)
    events = list(store.iter_events(run))
    assert [e.seq for e in events] == [0, 1, 2], [(e.reason, e.t) for e in events]
    assert events[0].reason.startswith("database write failed: ")
    assert events[1].reason.startswith("database back after ")
    assert events[2].reason.startswith("database write failed: ")
    assert [e.t for e in events] == [0.5, 0.5, 0.5]  # the last record's time
    row = store.get_session(run)
    assert (row.outcome, row.sample_count, row.event_count) == ("completed", 10, 3)
    assert row.seal_digest == digest and verify(store, run).ok


@pytest.mark.parametrize("sink", [False, True], ids=["own-journal", "treatment-journals"])
async def test_closing_while_the_database_is_away_waits_for_it_and_stores_everything(
    engine: sa.Engine, store: Store, context: SessionContext, journal_dir: Path, sink: bool
) -> None:
    """The loop is gone (no Finished) and the recorder is closed while its samples cannot be
    stored: close() waits for the database rather than leave them to the next start, whether it
    writes the journal itself or a treatment process does (a journal sink). Its own warnings of
    the outage, raised after its journal's writer stopped, are kept too."""
    started = make_started()
    run = started.run_id
    handed: list[str] = []
    recorder = Recorder(
        store,
        context,
        StopRequests(),
        journal_dir=journal_dir,
        stall_warning_after=SLOW,
        journal_sink=(lambda reason, data: handed.append(reason)) if sink else None,
    )
    writer: JournalWriter | None = None
    if sink:
        path = recorder.open_journal(run)
        writer = JournalWriter(path, recorder.journal_fd())  # as the treatment process does

    def record(item: Started | Sample) -> None:
        recorder.deliver(item)
        if writer is not None:
            writer.append(item)
            writer.write(writer.take())

    recorder.start()
    record(started)
    await _until(lambda: recorder.stats().buffered == 0, "the session row")
    rename(engine, "samples", "samples_away")
    for i in range(10):
        record(Sample(run, i, i * 0.02, 100.0, 99.0, Phase.HOLD))
    closing = asyncio.create_task(recorder.close())
    await _until(lambda: recorder.stats().stalls == 1, "the outage")
    await asyncio.sleep(0.5)  # a few retries, all failing
    assert not closing.done(), "close() gave up while the database was away"
    rename(engine, "samples_away", "samples")
    await asyncio.wait_for(closing, 30)
    assert seqs(store, run) == list(range(10)) and recorder.stats().buffered == 0
    reasons = handed if sink else [e.reason for e in store.iter_events(run)]
    assert len(reasons) == 2 and reasons[0].startswith("database write failed: ")
    assert reasons[1].startswith("database back after ")


async def test_a_journal_that_cannot_be_made_refuses_the_session_and_asks_for_a_stop_once(
    store: Store, context: SessionContext, tmp_path: Path
) -> None:
    blocked = tmp_path / "journals"
    blocked.write_text("a file where the journal directory should be")
    stops = StopRequests()
    recorder = Recorder(store, context, stops, journal_dir=blocked, stall_warning_after=SLOW)
    with pytest.raises(OSError):
        recorder.open_journal("up-front")  # refused before the session starts
    assert stops.calls == [] and recorder.journal_path is None
    async with recorder:
        started = make_started()
        with pytest.raises(OSError):
            recorder.deliver(started)
        with pytest.raises(OSError):
            recorder.deliver(started)
    [(kind, reason, _)] = stops.calls
    assert kind is StopKind.CONTROLLED
    assert reason.startswith("the session's journal cannot be made: [Errno ")
    assert reason.endswith("; stopping so that nothing is lost")
    assert recorder.stats() == RecorderStats(0, 0, 0, True, False)
    assert recorder.session_id is None and blocked.is_file()


async def test_a_recorder_that_never_got_a_record_closes_leaving_nothing(
    store: Store, context: SessionContext, journal_dir: Path
) -> None:
    async with Recorder(
        store, context, StopRequests(), journal_dir=journal_dir, stall_warning_after=SLOW
    ) as recorder:
        await asyncio.sleep(0.3)  # a flush interval and more: both tasks idle
    assert recorder.stats() == RecorderStats(0, 0, 0, False, False)
    assert journals(journal_dir) == []


async def test_an_outage_when_the_outcome_is_written_keeps_its_warning_and_retries_it(
    engine: sa.Engine, store: Store, context: SessionContext, journal_dir: Path
) -> None:
    """The events table away while ``Finished`` is written: the outcome fails, its warning waits
    in memory and fails too while the table is away, and both are stored, the warning first, once
    it is back. The warning that it is back comes after the outcome: it is only logged."""

    started = make_started()
    run = started.run_id
    recorder = Recorder(
        store, context, StopRequests(), journal_dir=journal_dir, stall_warning_after=SLOW
    )
    async with recorder:
        recorder.deliver(started)
        for i in range(5):
            recorder.deliver(Sample(run, i, i * 0.02, 100.0, 99.0, Phase.HOLD))
        await _until(lambda: recorder.stats().buffered == 0, "the samples")
        rename(engine, "events", "events_away")
        recorder.deliver(Finished(run, 0.5, started.wall, Outcome.COMPLETED, "ok", 5))
        await _until(lambda: recorder.stats().stalls == 1, "the failed outcome")
        await asyncio.sleep(0.6)  # more retries, the warning's among them, while it is away
        assert store.get_session(run).outcome is None
        rename(engine, "events_away", "events")
        digest = await asyncio.wait_for(recorder.wait_finished(), 30)
    [warning] = list(store.iter_events(run))
    assert warning.kind == EventKind.WARNING and warning.seq == 0 and warning.t == 0.5
    assert warning.reason.startswith("database write failed: ")
    assert warning.data == {"waiting": 1}
    row = store.get_session(run)
    assert (row.outcome, row.event_count, row.seal_digest) == ("completed", 1, digest)
    assert verify(store, run).ok and recorder.stats() == RecorderStats(0, 5, 1, False, True)


async def test_a_warning_raised_while_the_outcome_is_written_stays_out_of_the_record(
    db_url: str, engine: sa.Engine, store: Store, context: SessionContext, journal_dir: Path
) -> None:
    """Once the outcome is being written the record is closed: the outcome's write hangs past the
    stall warning, then fails, and is stored on a retry; the stall's warning, raised while the
    outcome was being written, is only logged, so the sealed record has no event at all."""
    started = make_started()
    run = started.run_id
    holder = WriteLock(db_url, "sessions")  # the outcome's write waits for it
    recorder = Recorder(
        store, context, StopRequests(), journal_dir=journal_dir, stall_warning_after=2.0
    )
    async with recorder:
        recorder.deliver(started)
        for i in range(5):
            recorder.deliver(Sample(run, i, i * 0.02, 100.0, 99.0, Phase.HOLD))
        await _until(lambda: recorder.stats().buffered == 0, "the samples")
        assert recorder.stats().stalls == 0
        await asyncio.to_thread(holder.acquire)
        recorder.deliver(Finished(run, 0.5, started.wall, Outcome.COMPLETED, "ok", 5))
        await _until(lambda: recorder.stats().stalls == 1, "the hung outcome")
        await asyncio.to_thread(holder.rename_away)
        await asyncio.sleep(1.0)  # the hung write fails at once; retries fail while it is away
        with engine.begin() as conn:
            outcome = conn.execute(
                sa.text("SELECT outcome FROM sessions_away WHERE id = :id"), {"id": run}
            ).scalar_one()
            assert outcome is None
            conn.exec_driver_sql("ALTER TABLE sessions_away RENAME TO sessions")
        digest = await asyncio.wait_for(recorder.wait_finished(), 30)
    assert list(store.iter_events(run)) == []
    row = store.get_session(run)
    assert (row.outcome, row.event_count, row.seal_digest) == ("completed", 0, digest)
    assert verify(store, run).ok and recorder.stats() == RecorderStats(0, 5, 1, False, True)


async def test_a_seal_whose_facts_cannot_be_stored_is_kept_and_the_facts_come_later(
    engine: sa.Engine, store: Store, context: SessionContext, journal_dir: Path
) -> None:
    """The session's facts table away when sealing: the seal is written but its facts are not,
    so sealing fails (one stall); the retry finds the seal stored and keeps it, and the facts are
    computed when first asked for."""

    started = make_started()
    run = started.run_id
    recorder = Recorder(
        store, context, StopRequests(), journal_dir=journal_dir, stall_warning_after=SLOW
    )
    rename(engine, "session_facts", "session_facts_away")
    try:
        async with recorder:
            recorder.deliver(started)
            recorder.deliver(Sample(run, 0, 0.02, 100.0, 99.0, Phase.HOLD))
            recorder.deliver(Finished(run, 0.5, started.wall, Outcome.COMPLETED, "ok", 1))
            digest = await asyncio.wait_for(recorder.wait_finished(), 30)
    finally:
        rename(engine, "session_facts_away", "session_facts")
    assert recorder.stats() == RecorderStats(0, 1, 1, False, True)
    row = store.get_session(run)
    assert row.seal_digest == digest and verify(store, run).ok
    assert list(store.iter_events(run)) == [] and journals(journal_dir) == []
    assert load_facts(store, [run]) == {}
    facts = facts_for(store, run)
    assert (facts.seal_digest, facts.seal_verified, facts.sample_count) == (digest, True, 1)


def test_the_journal_descriptor_is_the_locked_journal_and_asked_for_early_is_a_bug(
    store: Store, context: SessionContext, journal_dir: Path
) -> None:
    """The treatment process writes the journal on the descriptor the recorder shares: the one
    that holds the session's lease."""
    recorder = Recorder(store, context, StopRequests(), journal_dir=journal_dir)
    with pytest.raises(RuntimeError, match="^open_journal first$"):
        recorder.journal_fd()
    path = recorder.open_journal("shared-lease")
    fd = recorder.journal_fd()
    assert os.fstat(fd).st_ino == path.stat().st_ino and is_owned(path)


async def test_with_another_process_writing_the_journal_the_recorders_warnings_go_to_it(
    engine: sa.Engine, store: Store, context: SessionContext, journal_dir: Path
) -> None:
    """With a treatment process writing the journal, the recorder's own warnings (a database
    away, then back) are handed to that process, reason and figures, never journalled here: one
    writer per journal keeps its event numbers in step."""
    handed: list[tuple[str, dict[str, object]]] = []
    started = make_started()
    run = started.run_id

    recorder = Recorder(
        store,
        context,
        StopRequests(),
        journal_dir=journal_dir,
        stall_warning_after=SLOW,
        journal_sink=lambda reason, data: handed.append((reason, data)),
    )
    path = recorder.open_journal(run)
    writer = JournalWriter(path, recorder.journal_fd())  # as the treatment process does
    async with recorder:
        recorder.deliver(started)
        writer.append(started)
        writer.write(writer.take())
        await _until(lambda: recorder.stats().buffered == 0, "the session's row")
        rename(engine, "samples", "samples_away")
        for i in range(5):
            sample = Sample(run, i, i * 0.02, 100.0, 99.0, Phase.HOLD)
            recorder.deliver(sample)
            writer.append(sample)
        writer.write(writer.take())
        await _until(lambda: recorder.stats().stalls == 1, "the failed write")
        rename(engine, "samples_away", "samples")
        await _until(lambda: recorder.stats().buffered == 0, "the samples")
    [(away, away_data), (back, back_data)] = handed
    assert away.startswith("database write failed: ") and away.endswith(
        "; records wait in the journal until it is back"
    )
    assert away_data == {"waiting": 5}
    assert back.startswith("database back after ") and back.endswith("; waiting records written")
    assert back_data["waiting"] == 0 and isinstance(back_data["away_s"], float)
    assert seqs(store, run) == list(range(5)) and list(store.iter_events(run)) == []

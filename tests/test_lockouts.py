"""Lockouts on SQLite and PostgreSQL: a lock-severity trip locks its table, every start is refused
until someone acknowledges, and who and why are kept across restarts."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bounds_support import steady_command_line
from cli_support import QUICK_PROFILE, QUICK_SCALE, sign_in
from conftest_db import CommandRunner, make_started
from sqlalchemy.engine import Engine

from devices.clock import ScaledClock
from devices.configfiles import config_file
from devices.limits import load_limits
from devices.profiles import load_profile
from devices.records import Event, EventKind, Outcome
from session.db import make_engine
from session.identity import load_identity, register
from session.journal import JournalWriter
from session.lockouts import (
    LockoutError,
    Lockouts,
    LockoutWatch,
    NotLocked,
    TableLocked,
    TableRef,
    is_lock,
)
from session.models import Discipline, Sex
from session.recovery import recover
from session.runner import Treatment, TreatmentResult
from session.store import NumberedEvent, SessionContext, Store
from traction.cli import app
from traction.exitcodes import Exit
from traction.tables import open_table

WS = "ws-lock"
BENCH = TableRef(WS, "bench-1", "sim://lumbar", "SIM-L-0001")


@pytest.fixture
def lockouts(engine: Engine) -> Lockouts:
    return Lockouts(engine)


@pytest.fixture
def fresh_engine(db_url: str) -> Iterator[Callable[[], Engine]]:
    """Engines opened as a new process would open them, disposed after the test."""
    made: list[Engine] = []

    def make() -> Engine:
        made.append(make_engine(db_url))
        return made[-1]

    yield make
    for engine in made:
        engine.dispose()


def test_a_lock_is_found_by_name_or_serial_and_refuses_a_start(lockouts: Lockouts) -> None:
    lock = lockouts.lock(BENCH, fault="hard_limit", reason="measured 250 N", session_id="run-1")
    assert [r.id for r in lockouts.active(WS, "bench-1")] == [lock.id]
    assert [r.id for r in lockouts.active(WS, "another-name", "SIM-L-0001")] == [lock.id]
    assert lockouts.active(WS, "bench-2", "SIM-X") == []
    assert lockouts.active("other-workstation", "bench-1") == []
    with pytest.raises(TableLocked) as refused:
        lockouts.refuse_if_locked(TableRef(WS, "bench-1"))
    message = str(refused.value)
    assert "table bench-1 is locked" in message and "hard_limit trip in session run-1" in message
    assert 'traction tables ack bench-1 --reason "what was checked"' in message
    lockouts.refuse_if_locked(TableRef(WS, "bench-2"))  # another table starts


def test_locking_again_for_the_same_session_keeps_one_lock(lockouts: Lockouts) -> None:
    first = lockouts.lock(BENCH, fault="hard_limit", reason="r", session_id="run-1")
    again = lockouts.lock(BENCH, fault="hard_limit", reason="r", session_id="run-1")
    other = lockouts.lock(BENCH, fault="watchdog", reason="r", session_id="run-2")
    assert again.id == first.id and other.id != first.id
    assert len(lockouts.active(WS, "bench-1")) == 2


def test_acknowledging_records_who_and_why_and_is_kept_across_restarts(
    lockouts: Lockouts, fresh_engine: Callable[[], Engine]
) -> None:
    lock = lockouts.lock(BENCH, fault="hard_limit", reason="measured 250 N", session_id="run-1")
    [done] = lockouts.acknowledge(WS, "bench-1", " Dana Reyes, PT ", " patient checked ")
    assert done.id == lock.id and done.acknowledged_at is not None
    assert lockouts.active(WS, "bench-1") == []
    restarted = Lockouts(fresh_engine())  # a new process on the same store
    history = restarted.history(WS, "bench-1")
    assert [(e.kind, e.who, e.why) for e in history] == [
        ("locked", f"trip on workstation {WS}", "measured 250 N"),
        ("acknowledged", "Dana Reyes, PT", "patient checked"),
    ]
    assert history[1].at == done.acknowledged_at
    assert [e.kind for e in restarted.history(WS, "SIM-L-0001")] == ["locked", "acknowledged"]
    with pytest.raises(NotLocked, match="table bench-1 is not locked on workstation ws-lock"):
        restarted.acknowledge(WS, "bench-1", "someone", "again")


def test_an_acknowledgement_by_serial_clears_the_table_under_any_name(lockouts: Lockouts) -> None:
    lockouts.lock(BENCH, fault="hard_limit", reason="r", session_id="run-1")
    assert len(lockouts.acknowledge(WS, "SIM-L-0001", "Dana", "checked")) == 1
    assert lockouts.active(WS, "bench-1") == []


@pytest.mark.parametrize(
    ("who", "why", "words"),
    [
        ("", "checked", "needs who acknowledges"),
        ("Dana", "   ", "needs a reason"),
        ("D" * 201, "checked", "at most 200"),
        ("Dana", "w" * 2001, "at most 2000"),
    ],
)
def test_an_acknowledgement_needs_who_and_why_within_bounds(
    lockouts: Lockouts, who: str, why: str, words: str
) -> None:
    lockouts.lock(BENCH, fault="hard_limit", reason="r")
    with pytest.raises(LockoutError, match=words):
        lockouts.acknowledge(WS, "bench-1", who, why)
    assert len(lockouts.active(WS, "bench-1")) == 1


@pytest.mark.parametrize(("who", "why"), [("D" * 200, "w" * 2000), ("D", "w")])
def test_who_and_why_at_their_bounds_are_accepted(lockouts: Lockouts, who: str, why: str) -> None:
    lockouts.lock(BENCH, fault="hard_limit", reason="r")
    assert len(lockouts.acknowledge(WS, "bench-1", who, why)) == 1


def test_two_acknowledgements_at_once_record_one(lockouts: Lockouts) -> None:
    lockouts.lock(BENCH, fault="hard_limit", reason="r")
    results: list[str] = []

    def ack(who: str) -> None:
        try:
            lockouts.acknowledge(WS, "bench-1", who, "checked")
            results.append("done")
        except NotLocked:
            results.append("not locked")

    threads = [threading.Thread(target=ack, args=(f"person {i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == ["done", "not locked"]
    acks = [e for e in lockouts.history(WS, "bench-1") if e.kind == "acknowledged"]
    assert len(acks) == 1


def test_only_a_lock_severity_event_locks() -> None:
    def event(**data: object) -> Event:
        return Event("run", 1.0, EventKind.TRIP, "why", dict(data))

    assert is_lock(event(severity="lock", fault="hard_limit"))
    assert not is_lock(event(severity="stop"))
    assert not is_lock(event())
    assert not is_lock(Event("run", 1.0, EventKind.WARNING, "lock", {"severity": "warning"}))


def test_the_watch_writes_a_lock_after_the_database_comes_back(engine: Engine) -> None:
    real = Lockouts(engine)
    failures = [2]

    class Flaky(Lockouts):
        def lock(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
            if failures[0]:
                failures[0] -= 1
                raise ConnectionError("database away")
            return real.lock(*args, **kwargs)  # type: ignore[arg-type]

    async def scenario() -> None:
        watch = LockoutWatch(Flaky(real.engine), TableRef(WS, "bench-1"), retry_s=0.01)
        watch.deliver(make_started("run-9"))
        watch.deliver(Event("run-9", 1.0, EventKind.TRIP, "over", {"severity": "lock"}))
        await asyncio.wait_for(watch.wait_written(), 30)
        assert watch.locked

    asyncio.run(scenario())
    [lock] = real.active(WS, "bench-1")
    assert (lock.session_id, lock.device_serial, lock.fault) == ("run-9", "SN-4711", "trip")


# ----- end to end: a hard-limit trip on a simulated table, the CLI refusing, the acknowledgement --
def people(store: Store) -> tuple[int, int]:
    patient = store.add_patient("MRN-1", 82.0, sex=Sex.FEMALE, payer_id="medicare")
    clinician = store.add_clinician("Dana Reyes", "PT, DPT", Discipline.PT, "1234567893")
    return patient.id or 0, clinician.id or 0


OVER_FORCE = {"hard_limit", "force_limit"}
"""The host's hard limit, or the table's own copy of it: the host arms the table with the same
force, watched on its independent channel every physics step, so the table often sees a runaway
first. Both are lock-severity faults."""


async def hard_limit_trip(
    store: Store, patient_id: int, clinician_id: int, journal_dir: Path
) -> TreatmentResult:
    """A runaway motor on sim://lumbar, with the over-target and tracking checks widened so the
    hard limit is what trips (real time: the supervisor's timing has its full margin)."""
    limits = load_limits()
    supervisor = replace(limits.supervisor, over_target_tolerance_n=1000.0, tracking_time_s=60.0)
    limits = replace(limits, supervisor=supervisor)
    clock = ScaledClock(1.0)
    context = SessionContext(patient_id, clinician_id, WS, regions=("lumbar",))
    async with open_table("sim://lumbar", clock, "bench-1") as opened:
        opened.models[1].faults.runaway = True
        treatment = Treatment(
            store,
            opened.table,
            load_profile(config_file("profiles", "demo.toml")),
            store.get_patient(patient_id),
            context,
            limits,
            clock,
            journal_dir,
            table_name="bench-1",
            table_url="sim://lumbar",
            prior_sessions={},
        )
        result = await treatment.run()
        assert opened.models[1].released
        return result


def cli(config: Path, *args: str) -> tuple[int, str]:
    """One ``traction`` command; only its exit code and output outlive it (the result's
    traceback would keep the command's database engine alive past the test)."""
    result = CommandRunner(env={"COLUMNS": "250"}).invoke(app, [*args, "--config", str(config)])
    return result.exit_code, result.output


# The CLI commands leave their engine to the end of the process; here that is the test's, so the
# pooled PostgreSQL connections they drop are collected (and their warning silenced) in the test.
@pytest.mark.backend("postgresql")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_hard_limit_trip_locks_the_table_until_acknowledged(
    db_url: str,
    store: Store,
    tmp_path: Path,
    fresh_engine: Callable[[], Engine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patient_id, clinician_id = people(store)
    result = asyncio.run(hard_limit_trip(store, patient_id, clinician_id, tmp_path / "journals"))
    assert result.finished.outcome is Outcome.TRIPPED and result.locked
    [lock] = Lockouts(store.engine).active(WS, "bench-1")
    assert lock.fault in OVER_FORCE
    serial = store.get_session(result.session_id).device_serial
    assert (lock.session_id, lock.device_serial) == (result.session_id, serial)
    [trip] = [e for e in store.iter_events(result.session_id) if e.kind == "trip"]
    assert trip.data["severity"] == "lock" and trip.data["fault"] == lock.fault
    assert lock.reason == trip.reason

    config = tmp_path / "settings.toml"
    config.write_text(
        f'data_dir = "{tmp_path}"\ndatabase_url = "{db_url}"\nworkstation = "{WS}"\n'
        '[[tables]]\nname = "bench-1"\nurl = "sim://lumbar"\n'
    )
    run = ["run", QUICK_PROFILE, "--patient", "MRN-1", "--clinician", str(clinician_id)]
    run += ["--table", "bench-1", "--time-scale", QUICK_SCALE]
    steady_command_line(monkeypatch)

    code, out = cli(config, *run)
    assert code == Exit.REFUSED, out
    assert "table bench-1 is locked" in out and "traction tables ack bench-1" in out
    assert [row.id for row in store.find_sessions()] == [result.session_id]  # nothing started

    code, out = cli(config, "tables", "list")
    assert code == 0, out
    assert "LOCKED" in out and lock.fault in out

    why = "patient checked, no distress; motor driver replaced and tested"
    ack = ["tables", "ack", "bench-1", "--reason", why]
    code, out = cli(config, *ack)
    assert code == Exit.USAGE and "traction login" in out, out  # who acknowledges is signed in
    monkeypatch.setenv("TRACTION_CONFIG", str(config))
    sign_in("billy", role="billing")
    code, out = cli(config, *ack)
    assert code == Exit.USAGE and "billy is signed in as billing" in out, out
    sign_in("dreyes", role="clinician", clinician=clinician_id)
    code, out = cli(config, *ack)
    assert code == 0, out
    assert f"acknowledged: table bench-1 ({lock.fault} trip" in out
    history = Lockouts(fresh_engine()).history(WS, "bench-1")
    assert [(e.kind, e.who, e.why) for e in history][-1] == (
        "acknowledged",
        "dreyes (clinician)",
        why,
    )

    code, out = cli(config, *ack)
    assert code == Exit.USAGE and "not locked" in out
    code, out = cli(config, "tables", "list")
    assert code == 0 and "LOCKED" not in out

    code, out = cli(config, *run, "--fault", "stop-switch@5")
    assert code == Exit.TRIPPED, out  # it started: the switch ended it
    assert len(store.find_sessions()) == 2
    assert "LOCKED" not in out  # a stop switch is not a lock-severity fault
    gc.collect()


def test_the_live_view_keeps_a_lock_alarm_raised_after_the_session_ends() -> None:
    from io import StringIO

    from rich.console import Console

    from devices.records import Finished
    from devices.units import ForceUnit
    from traction.live import LiveView

    view = LiveView(ForceUnit.LBF, 120.0, 200.0, "title", table_name="bench-1")
    view.deliver(make_started("run-1"))
    view.deliver(Event("run-1", 1.0, EventKind.TRIP, "over the limit", {"severity": "stop"}))
    assert view.alarm is None
    view.deliver(Event("run-1", 2.0, EventKind.TRIP, "measured 250 N", {"severity": "lock"}))
    for i in range(10):  # later events push the trip out of the recent list; the alarm stays
        view.deliver(Event("run-1", 3.0 + i, EventKind.RELEASED, f"released {i}", {}))
    view.deliver(Finished("run-1", 9.0, datetime.now(UTC), Outcome.TRIPPED, "tripped", 10))
    out = StringIO()
    Console(file=out, width=300).print(view)
    text = out.getvalue()
    assert "ALARM - table bench-1 LOCKED: measured 250 N" in text
    assert 'then: traction tables ack bench-1 --reason "..."' in text


@pytest.mark.parametrize("acknowledged_before", [False, True], ids=["lost", "written-and-acked"])
def test_recovery_locks_a_table_whose_trip_was_recorded_but_not_its_lock(
    store: Store, context: SessionContext, tmp_path: Path, acknowledged_before: bool
) -> None:
    """The process died after journalling a lock-severity trip and before writing the lock: the
    next start's recovery writes it (under the table's name and serial), once. A lock written and
    acknowledged before the crash is not raised again."""
    identity = load_identity(tmp_path, context.workstation)
    register(store.engine, identity)
    started = make_started()
    run = started.run_id
    started = replace(
        started, extra={"table_name": "bench-1", "table_url": "modbus+tcp://127.0.0.1:5020"}
    )
    trip = Event(
        run,
        1.0,
        EventKind.TRIP,
        "the two force channels disagree",
        {"fault": "channel_disagreement", "severity": "lock"},
    )
    writer = JournalWriter.create(
        identity.journal_dir, run, replace(context, workstation_id=identity.id)
    )
    writer.append(started)
    writer.append(NumberedEvent(0, trip))
    writer.write(writer.take())
    writer.close()
    lockouts = Lockouts(store.engine)
    table = TableRef(context.workstation, "bench-1", "", "SN-4711")
    if acknowledged_before:
        lockouts.lock(table, fault="channel_disagreement", reason=trip.reason, session_id=run)
        lockouts.acknowledge(context.workstation, "bench-1", "Dana", "checked")

    report = recover(store, identity)

    assert report.interrupted == [run]
    if acknowledged_before:
        assert report.relocked == [] and lockouts.active(context.workstation, "bench-1") == []
        return
    assert report.relocked == [run]
    [lock] = lockouts.active(context.workstation, "bench-1")
    assert (lock.fault, lock.session_id, lock.device_serial) == (
        "channel_disagreement",
        run,
        "SN-4711",
    )
    assert lockouts.active(context.workstation, "another-name", "SN-4711") == [lock]
    with pytest.raises(TableLocked):
        lockouts.refuse_if_locked(table)
    assert recover(store, identity).relocked == []  # once

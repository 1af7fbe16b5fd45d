"""The control loop's rarer exits, on the same real Modbus TCP rig as test_loop.py: a bug inside the
loop, a command the table refuses, readings that go missing and come back (or do not), a release
that fails with a non-table error, a second cancel while releasing, and every start refusal of a
table that is not ready. Each must end with the table released and a ``Finished`` record.
"""

# ruff: noqa: F811  (``rig`` is test_loop.py's fixture, imported so pytest finds it here)

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import fields, replace
from typing import Any

import pytest
from test_loop import LIMITS, PATIENT, SCALE, SHORT, Rig, make_rig, rig  # noqa: F401

from devices.contract import StopKind, TableState
from devices.limits import SafetyLimits
from devices.loop import ControlLoop, StartRefused, _not_ready
from devices.profiles import ForceProfile
from devices.records import Event, EventKind, Finished, Outcome, Phase, Record, Sample
from devices.supervisor import TripKind
from simulators.physics import FAULT_MOTOR


class BrokenProfile(ForceProfile):
    """A profile whose curve raises once the session is ``after_s`` in: a bug, not a table fault."""

    def target_at(self, t: float) -> tuple[float, Phase]:
        if t > 40.0:
            raise ZeroDivisionError("curve bug")
        return super().target_at(t)


@pytest.fixture
async def one_try_rig() -> AsyncIterator[Rig]:
    """The rig with one try per request: a garbled reply fails in 0.2 s of real time, not 0.4 s,
    well inside the loop's stall bound (0.5 s real), so a missed reading is never a stall."""
    async with make_rig(SCALE, "&retries=0") as made:
        yield made


def loop_with(rig: Rig, limits: SafetyLimits) -> ControlLoop:
    return ControlLoop(
        rig.table,
        ForceProfile.from_dict(SHORT),
        patient=PATIENT,
        limits=limits,
        clock=rig.clock,
        stream=rig.stream,
        operator_confirmed=True,
    )


def last_records(rig: Rig, n: int) -> list[Record]:
    return rig.recorder.records[-n:]


async def test_a_bug_inside_the_loop_still_ends_released_and_finished(rig: Rig) -> None:
    shipped = ForceProfile.from_dict(SHORT)
    broken = BrokenProfile(**{f.name: getattr(shipped, f.name) for f in fields(shipped) if f.init})
    finished = await rig.loop(broken).run()

    assert finished.outcome is Outcome.INTERRUPTED
    assert finished.reason == "control loop error: ZeroDivisionError: curve bug"
    released, last = last_records(rig, 2)
    assert isinstance(released, Event) and released.kind is EventKind.RELEASED
    assert released.data == {"detail": "attempt 1"} and last == finished
    assert finished.sample_count == len(rig.recorder.samples) > 0
    rig.model.advance(rig.clock.now())
    assert rig.model.released and not rig.model.running


async def test_a_command_the_table_refuses_trips_with_the_refusal_as_evidence(rig: Rig) -> None:
    def derate() -> None:  # the firmware now refuses the next target written (the ramp to rest)
        rig.model.spec.overload_margin_n = 1e6  # ... without tripping on the tension it holds
        rig.model.spec.rated_max_force_n = 10.0

    rig.when_holding(1.0, derate)
    finished = await rig.loop().run()

    assert finished.outcome is Outcome.TRIPPED
    assert finished.reason.startswith("table refused a command: ")
    trip, released, last = last_records(rig, 3)
    assert isinstance(trip, Event) and trip.kind is EventKind.TRIP
    assert trip.data["trip"] == TripKind.DEVICE_REJECTED
    assert trip.data["error"] and trip.data["error"] in finished.reason
    assert "reading" not in trip.data  # no reading showed it: the write did
    assert isinstance(released, Event) and released.kind is EventKind.RELEASED
    assert last == finished and rig.model.released


async def test_missed_readings_warn_once_then_say_how_many_when_they_resume(
    one_try_rig: Rig,
) -> None:
    rig = one_try_rig
    # Staleness of 3 s real: a couple of timed-out reads (0.2 s each) are a gap, not a trip.
    patient_limits = replace(LIMITS, supervisor=replace(LIMITS.supervisor, staleness_s=3.0 * SCALE))
    loop = loop_with(rig, patient_limits)
    misses: list[Event] = []
    after: list[Sample] = []

    def on_record(record: Record) -> None:
        if isinstance(record, Event) and record.reason.startswith("reading missed"):
            misses.append(record)
            rig.sim.faults.restore()  # the line comes back after the first miss
        elif isinstance(record, Sample) and misses:
            after.append(record)
            if len(after) == 5:  # readings flow again: end here, mid-hold
                loop.release("seen the readings resume")

    rig.when_holding(1.0, lambda: rig.sim.faults.garbage(True))
    rig.stream.subscribe(type("Watcher", (), {"deliver": staticmethod(on_record)})())
    finished = await loop.run()

    assert finished.outcome is Outcome.STOPPED, finished.reason
    assert finished.reason == "seen the readings resume"
    assert len(misses) == 1  # one warning for the first miss of a streak, not one per tick
    resumed = [
        e for e in rig.recorder.events(EventKind.WARNING) if e.reason.startswith("readings resumed")
    ]
    assert len(resumed) == 1 and misses[0].t < resumed[0].t <= after[0].t
    missed = resumed[0].data["missed"]
    assert missed >= 1 and resumed[0].reason == f"readings resumed after {missed} missed"
    assert not rig.recorder.events(EventKind.TRIP)
    assert rig.model.released


async def test_readings_missing_past_the_staleness_bound_trip_with_their_age(
    one_try_rig: Rig,
) -> None:
    rig = one_try_rig
    rig.when_holding(1.0, lambda: rig.sim.faults.garbage(True))
    finished = await rig.loop().run()
    rig.sim.faults.restore()

    assert finished.outcome is Outcome.TRIPPED and finished.reason.startswith("no valid reading")
    trip = next(e for e in rig.recorder.events(EventKind.TRIP))
    assert trip.data["trip"] == TripKind.MISSING
    limit = LIMITS.supervisor.staleness_s
    assert trip.data["age_s"] > limit and trip.data["error"]
    assert f"(limit {limit:g} s)" in trip.reason
    assert isinstance(rig.recorder.records[-1], Finished)
    rig.model.advance(rig.clock.now() + loop_timeout(rig))
    assert rig.model.released


def loop_timeout(rig: Rig) -> float:
    """Session time after which the table's own watchdog has let go, whatever the host did."""
    return max(LIMITS.supervisor.heartbeat_timeout_s, 0.5 * rig.clock.scale) + 0.1


async def test_a_release_that_fails_with_a_non_table_error_is_retried(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_stop = rig.table.stop
    kinds: list[StopKind] = []

    async def flaky_stop(kind: StopKind) -> None:
        kinds.append(kind)
        if len(kinds) == 1:
            raise RuntimeError("driver bug")
        await real_stop(kind)

    monkeypatch.setattr(rig.table, "stop", flaky_stop)
    loop = rig.loop()
    rig.when_holding(1.0, loop.release)
    finished = await loop.run()

    assert finished.outcome is Outcome.STOPPED
    assert kinds == [StopKind.RELEASE, StopKind.RELEASE]
    released = rig.recorder.events(EventKind.RELEASED)
    assert [e.data for e in released] == [{"detail": "attempt 2"}]
    assert rig.model.released


async def test_a_release_that_never_succeeds_says_the_watchdog_will_let_go(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[StopKind] = []

    async def broken_stop(kind: StopKind) -> None:
        attempts.append(kind)
        raise RuntimeError(f"driver bug {len(attempts)}")

    monkeypatch.setattr(rig.table, "stop", broken_stop)
    loop = rig.loop(release_attempts=2)
    rig.when_holding(1.0, loop.release)
    finished = await loop.run()

    assert finished.outcome is Outcome.STOPPED and len(attempts) == 2
    assert not rig.recorder.events(EventKind.RELEASED)
    warning = rig.recorder.events(EventKind.WARNING)[-1]
    assert warning.reason.startswith(
        "release not confirmed (RuntimeError: driver bug 1; RuntimeError: driver bug 2)"
    )
    assert warning.data == {"heartbeat_timeout_s": loop.heartbeat_timeout_s}
    assert rig.recorder.records[-1] == finished
    # No heartbeat after the run: the table's watchdog lets go within its timeout.
    rig.model.advance(rig.clock.now() + loop.heartbeat_timeout_s + 0.1)
    assert rig.model.released and rig.model.watchdog_tripped


@pytest.mark.parametrize(("asked", "tried"), [(1, 1), (0, 1)])
async def test_a_loop_told_to_try_a_release_once_tries_it_once_and_never_less(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, asked: int, tried: int
) -> None:
    attempts: list[StopKind] = []

    async def broken_stop(kind: StopKind) -> None:
        attempts.append(kind)
        raise RuntimeError("driver bug")

    monkeypatch.setattr(rig.table, "stop", broken_stop)
    loop = rig.loop(release_attempts=asked)
    assert loop.release_attempts == tried
    rig.when_holding(1.0, loop.release)
    finished = await loop.run()
    assert finished.outcome is Outcome.STOPPED and len(attempts) == tried


async def test_a_second_cancel_while_releasing_still_releases_and_finishes(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_stop = rig.table.stop
    releasing = asyncio.Event()

    async def slow_stop(kind: StopKind) -> None:
        releasing.set()
        await asyncio.sleep(0.3)  # long enough to be cancelled again in the middle
        await real_stop(kind)

    monkeypatch.setattr(rig.table, "stop", slow_stop)
    holding = asyncio.Event()
    rig.when_holding(1.0, holding.set)
    task = asyncio.create_task(rig.loop().run())
    await asyncio.wait_for(holding.wait(), 30)
    task.cancel()
    await asyncio.wait_for(releasing.wait(), 30)
    task.cancel()  # cancelled again while the release is on the wire
    with pytest.raises(asyncio.CancelledError):
        await task

    released, finished = last_records(rig, 2)
    assert isinstance(released, Event) and released.kind is EventKind.RELEASED
    assert isinstance(finished, Finished) and finished.outcome is Outcome.INTERRUPTED
    assert finished.reason == "control task cancelled"
    assert rig.model.released and not rig.model.running


@pytest.mark.parametrize(
    ("prepare", "reason"),
    [
        (
            lambda m, now: setattr(m, "stop_switch_connected", False),
            "patient stop switch is not connected; connect it before treatment",
        ),
        (
            lambda m, now: m.press_stop_switch(now),
            "patient stop switch is pressed; reset it and clear the fault",
        ),
        (
            lambda m, now: setattr(m, "fault_code", FAULT_MOTOR),
            "table reports a fault: motor driver fault; clear it first",
        ),
        (  # running for another host, whose heartbeats keep the table's watchdog quiet: its
            # last one now, and its longest watchdog (10 s, half a second of real time at x20)
            lambda m, now: (
                m.set_heartbeat_timeout(10.0),
                m.heartbeat(now),
                setattr(m, "running", True),
            ),
            "table is already running",
        ),
        (
            lambda m, now: m.press_operator_stop(now),
            "the table's operator stop is pressed; reset it and clear the fault",
        ),
    ],
    ids=["switch-unplugged", "switch-pressed", "faulted", "running", "operator-stop"],
)
async def test_a_table_that_is_not_ready_refuses_the_start_naming_why(
    rig: Rig, prepare: Any, reason: str
) -> None:
    prepare(rig.model, rig.clock.now())
    targets_before = rig.model.target_n
    with pytest.raises(StartRefused) as info:
        await rig.loop().run()
    assert reason in info.value.reasons
    assert info.value.violations == []
    assert rig.recorder.records == []  # nothing started, nothing recorded
    assert rig.model.target_n == targets_before


def state(**changes: Any) -> TableState:
    ready = TableState(
        t=1.0,
        measured_force_n=0.0,
        target_force_n=0.0,
        running=False,
        ready=True,
        released=True,
        fault="none",
        stop_switch_pressed=False,
        stop_switch_connected=True,
        watchdog_tripped=False,
    )
    return replace(ready, **changes)


def test_not_ready_names_every_cause_at_once_and_nothing_for_a_ready_table() -> None:
    assert _not_ready(state()) == []
    assert _not_ready(state(ready=False)) == ["table is not ready"]
    everything = state(
        ready=False,
        stop_switch_connected=False,
        stop_switch_pressed=True,
        operator_stop_pressed=True,
        fault="load_cell",
        running=True,
    )
    assert _not_ready(everything) == [
        "patient stop switch is not connected; connect it before treatment",
        "patient stop switch is pressed; reset it and clear the fault",
        "the table's operator stop is pressed; reset it and clear the fault",
        "table reports a fault: load-cell fault reported by the table; clear it first",
        "table is already running",
    ]

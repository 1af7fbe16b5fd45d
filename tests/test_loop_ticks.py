"""The control loop tick by tick, on a virtual clock (tests/virtual_table.py): exact deadlines, what
is written when, the heartbeat, the start sequence, overruns, missed readings at the staleness bound
to the tick, and the loop's own arithmetic. A whole session takes a fraction of a second here; the
wire-level behaviour is test_loop.py's."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from typing import Any

import pytest
from virtual_table import ModelTable, VirtualClock, failing

from devices.contract import StopKind
from devices.errors import ConfigError, DeviceRejected, LinkLost, TableError, TableTimeout
from devices.limits import PatientFacts, SafetyLimits, Violation, load_limits
from devices.loop import (
    MIN_HEARTBEAT_TICKS,
    MIN_WATCHDOG_REAL_S,
    ControlLoop,
    StartRefused,
    check_tick_hz,
    default_tick_hz,
)
from devices.profiles import ForceProfile, Region
from devices.records import Event, EventKind, Finished, Outcome, Phase, Record, Sample, Started
from devices.stream import Stream
from devices.supervisor import TripKind
from devices.units import N_PER_LBF, ForceUnit
from simulators.physics import TableModel

SHIPPED = load_limits()
PATIENT = PatientFacts(body_weight_kg=80.0, sex="male")
SHORT: dict[str, Any] = {
    "mode": "intermittent",
    "region": "lumbar",
    "hold_force": "40 lbf",
    "rest_force": "20 lbf",
    "hold_s": 30,
    "rest_s": 10,
    "total_s": 120,
    "ramp_rate": "10 lbf/s",
}
TICK = 0.02  # 50 Hz: the default rate for a 2 ms wire


class Rig:
    def __init__(self, limits: SafetyLimits = SHIPPED, scale: float = 1.0, **profile: Any) -> None:
        self.clock = VirtualClock(start=100.0, scale=scale)
        self.model = TableModel(now=100.0)
        self.table = ModelTable(self.model, self.clock)
        self.records: list[Record] = []
        self.stream = Stream()
        self.stream.subscribe(self)
        self.loop = ControlLoop(
            self.table,
            ForceProfile.from_dict({**SHORT, **profile}),
            patient=PATIENT,
            limits=limits,
            clock=self.clock,
            stream=self.stream,
            operator_confirmed=True,
        )

    def deliver(self, record: Record) -> None:
        self.records.append(record)

    def bare_loop(self, profile: dict[str, Any] | None = None, **options: Any) -> ControlLoop:
        """A loop on this rig's table and clock with only what ``options`` names: no stream, no
        operator's confirmation, default tick rate, unless given."""
        return ControlLoop(
            self.table,
            ForceProfile.from_dict({**SHORT, **(profile or {})}),
            patient=PATIENT,
            limits=SHIPPED,
            clock=self.clock,
            **options,
        )

    async def run(self) -> Finished:
        return await self.loop.run()

    @property
    def samples(self) -> list[Sample]:
        return [r for r in self.records if isinstance(r, Sample)]

    def events(self, kind: EventKind | None = None) -> list[Event]:
        return [r for r in self.records if isinstance(r, Event) and kind in (None, r.kind)]

    def warnings(self, prefix: str) -> list[Event]:
        return [e for e in self.events(EventKind.WARNING) if e.reason.startswith(prefix)]


async def test_a_stream_that_raises_on_publish_still_leaves_the_run_whole_and_released() -> None:
    """The stream isolates its subscribers; should publishing itself ever fail, the loop still
    runs to its end and releases the table (the records it could not publish are lost to
    subscribers, not to the table's safety)."""

    class FailingStream(Stream):
        def publish(self, record: Record) -> None:
            super().publish(record)
            raise RuntimeError("stream broken")

    rig = Rig()
    rig.stream = FailingStream()
    rig.stream.subscribe(rig)
    rig.loop.stream = rig.stream
    finished = await rig.run()
    assert finished.outcome is Outcome.COMPLETED and finished.reason == "profile completed"
    assert rig.records[-1] == finished and rig.events(EventKind.RELEASED)
    assert rig.model.released and not rig.model.running


async def test_a_session_ticks_exactly_on_its_deadlines_and_ends_released() -> None:
    rig = Rig()
    finished = await rig.run()

    assert finished.outcome is Outcome.COMPLETED and finished.reason == "profile completed"
    assert isinstance(rig.records[0], Started) and rig.records[-1] == finished
    assert finished.run_id == rig.loop.run_id == rig.records[0].run_id
    assert finished.wall == rig.clock.wall(finished.t)
    assert rig.records[-2] == Event(
        rig.loop.run_id, finished.t, EventKind.RELEASED, "table released", {"detail": "attempt 1"}
    )
    # Deadlines are start + k * tick: no drift, no skipped or doubled tick.
    start = rig.clock.sleeps[0] - TICK
    assert all(
        d == pytest.approx(start + (k + 1) * TICK, abs=1e-9) for k, d in enumerate(rig.clock.sleeps)
    )
    assert [s.seq for s in rig.samples] == list(range(1, len(rig.samples) + 1))
    assert finished.sample_count == len(rig.samples) == len(rig.clock.sleeps) + 1
    assert rig.samples[-1].phase is Phase.DONE and rig.samples[-1].target_n == 0.0
    assert rig.model.released and not rig.model.running
    assert not rig.warnings("tick overran")


async def test_the_start_sequence_arms_the_table_before_anything_moves() -> None:
    rig = Rig()
    await rig.run()
    first = [name for name, _, _ in rig.table.calls[:8]]
    assert first == [
        "identify",
        "read_state",
        "set_force_limit",
        "read_force_limit",
        "set_heartbeat_timeout",
        "set_target",
        "heartbeat",
        "start",
    ]
    device = await rig.table.identify()
    hard = SHIPPED.hard_limit_n(rig.loop.profile, device)
    assert rig.table.calls[2][2] == hard
    assert rig.table.calls[4][2] == rig.loop.heartbeat_timeout_s
    assert rig.table.calls[5][2] == 0.0
    started = rig.records[0]
    assert isinstance(started, Started)
    assert started.extra["heartbeat_timeout_s"] == rig.loop.heartbeat_timeout_s
    assert started.extra["hard_limit_n"] == hard == started.extra["table_force_limit_n"]
    assert started.extra["tick_wire_s"] == 0.002 and started.tick_hz == 50.0
    assert started.extra["max_stall_s"] == rig.loop.stall_bound_s
    assert started.extra["staleness_s"] == 0.5  # at x1 the configured bound stands


async def test_every_sample_carries_the_run_its_place_and_the_cycle_it_belongs_to() -> None:
    """Samples are numbered 1, 2, ... within their run, and each hold is stamped with its own
    cycle: the record's cycles are what billing and the report count."""
    rig = Rig()  # 30 s holds, 10 s rests and the ramps between them in 120 s
    finished = await rig.run()
    samples = rig.samples
    assert {s.run_id for s in samples} == {rig.loop.run_id}
    assert [s.seq for s in samples] == list(range(1, finished.sample_count + 1))
    holds = [
        [s.cycle for s in run]
        for phase, run in itertools.groupby(samples, key=lambda s: s.phase)
        if phase is Phase.HOLD
    ]
    cycles = rig.loop.profile.cycles
    assert cycles >= 2 and [set(c) for c in holds] == [{k} for k in range(1, cycles + 1)]
    assert [s.cycle for s in samples] == sorted(s.cycle for s in samples)


async def test_every_tick_heartbeats_and_a_target_is_written_only_when_it_changes() -> None:
    rig = Rig()
    finished = await rig.run()
    ticks = finished.sample_count
    assert len(rig.table.writes("heartbeat")) == ticks + 1  # one before start, one per tick
    targets = [float(v) for _, v in rig.table.writes("set_target")]  # type: ignore[arg-type]
    assert targets[0] == 0.0
    changes = [a for a, b in zip(targets, targets[1:], strict=False) if abs(a - b) <= 0.01]
    assert changes == []  # never the same target twice in a row
    first = next(i for i, s in enumerate(rig.samples) if s.phase is Phase.HOLD)
    end = next(i for i in range(first, ticks) if rig.samples[i].phase is not Phase.HOLD)
    hold = rig.samples[first + 1 : end]
    hold_writes = [t for t, _ in rig.table.writes("set_target") if hold[0].t <= t <= hold[-1].t]
    assert len(hold) > 1000 and hold_writes == []  # a steady 30 s hold writes nothing


async def test_the_commanded_target_moves_at_most_one_ticks_ramp_per_tick_even_after_a_stall() -> (
    None
):
    rig = Rig()
    reads = [0]

    def stall(name: str) -> None:
        if name == "read_state":
            reads[0] += 1
            if reads[0] == 50:  # mid ramp-up: the host freezes for 0.4 s
                rig.clock.advance(0.41)

    rig.table.before = stall
    assert (await rig.run()).outcome is Outcome.COMPLETED
    step = rig.loop.profile.ramp_n_per_s * TICK * 1.001 + 1e-6 + 1e-9  # + float rounding
    pairs = list(zip(rig.samples, rig.samples[1:], strict=False))
    assert max(abs(b.target_n - a.target_n) for a, b in pairs) <= step
    gap = max(pairs, key=lambda p: p[1].t - p[0].t)
    assert gap[1].t - gap[0].t > 0.4 and gap[1].target_n - gap[0].target_n <= step  # no jump
    ramping = [b.target_n - a.target_n for a, b in pairs if b.phase is Phase.RAMP_UP]
    assert max(ramping) > step * 0.99  # it does ramp at the rate, not slower


async def test_the_slowest_ramp_the_limits_allow_is_followed_exactly() -> None:
    """The per-tick allowance is the ramp's step plus a margin for float rounding. On about the
    slowest ramp a profile can have (0.02 N/s: up to 25 N and down again fill most of the longest
    session, 45 min) the margin must not eat into the step, or the target would fall behind."""
    rig = Rig(
        mode="continuous",
        hold_force="25 N",
        ramp_rate="0.02 N/s",
        total_s=2700,
        rest_force=None,
        hold_s=None,
        rest_s=None,
    )

    def enough(record: Record) -> None:
        if isinstance(record, Sample) and record.seq == 2000:
            rig.loop.release("enough")

    rig.stream.subscribe(type("Operator", (), {"deliver": staticmethod(enough)})())
    await rig.run()
    first = rig.samples[0].t
    ramp = [s for s in rig.samples if s.phase is Phase.RAMP_UP]
    assert len(ramp) == 2000
    for s in ramp:
        assert s.target_n == pytest.approx(rig.loop.profile.target_at(s.t - first)[0], abs=1e-12)


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (LinkLost("virtual-1", "cable pulled"), TripKind.LINK_LOST, "link lost: "),
        (
            DeviceRejected("virtual-1", "status read refused", 4),
            TripKind.DEVICE_REJECTED,
            "table refused a command: ",
        ),
    ],
)
async def test_a_lost_link_or_a_refused_command_trips_at_once_with_the_tables_words(
    error: TableError, kind: TripKind, reason: str
) -> None:
    rig = Rig()
    rig.table.before = failing("read_state", error, after=600)
    finished = await rig.run()
    assert finished.outcome is Outcome.TRIPPED
    [trip] = rig.events(EventKind.TRIP)
    failed_at = [t for name, t, _ in rig.table.calls if name == "read_state"][600]
    assert trip.t == failed_at and trip.data["trip"] == kind
    assert trip.reason == finished.reason == reason + str(error)
    assert trip.data["error"] == str(error) and rig.model.released


async def test_each_burst_of_missed_readings_is_warned_and_counted_on_its_own() -> None:
    rig = Rig()
    first = failing("read_state", TableTimeout("virtual-1", "no answer"), after=500, times=3)
    second = failing("read_state", TableTimeout("virtual-1", "no answer"), after=900, times=2)

    def both(name: str) -> None:
        first(name)
        second(name)

    rig.table.before = both
    assert (await rig.run()).outcome is Outcome.COMPLETED
    assert len(rig.warnings("reading missed")) == 2
    assert [e.data for e in rig.warnings("readings resumed")] == [{"missed": 3}, {"missed": 2}]


async def test_each_phase_change_is_recorded_at_the_reading_that_starts_it() -> None:
    rig = Rig()
    await rig.run()
    changes = rig.events(EventKind.PHASE)
    assert len(changes) >= 4
    came_from = [None, *(c.data["phase"] for c in changes[:-1])]
    assert [c.data["from"] for c in changes] == came_from and came_from[1] == "ramp_up"
    for change in changes:
        phase = Phase(change.data["phase"])
        starts = [
            b.t
            for a, b in zip([None, *rig.samples], rig.samples, strict=False)
            if b.phase is phase and (a is None or a.phase is not phase)
        ]
        assert change.t in starts and change.reason == f"phase {phase.value}"


async def test_a_missed_reading_rewrites_the_target_on_the_next_tick() -> None:
    rig = Rig()
    rig.table.before = failing("read_state", TableTimeout("virtual-1", "no answer"), after=1000)
    finished = await rig.run()
    assert finished.outcome is Outcome.COMPLETED
    missed_at = [t for name, t, _ in rig.table.calls if name == "read_state"][1000]
    writes = [t for t, _ in rig.table.writes("set_target")]
    assert [t for t in writes if missed_at - 5 < t < missed_at + 0.5 * TICK] == []  # mid-hold
    rewrites = [t for t in writes if missed_at + 0.5 * TICK < t < missed_at + 5]
    assert rewrites == [pytest.approx(missed_at + TICK)]  # not known to have arrived: again
    [missed] = rig.warnings("reading missed")
    assert missed.reason == "reading missed: table virtual-1: no answer"
    [resumed] = rig.warnings("readings resumed")
    assert resumed.data == {"missed": 1} and resumed.t == pytest.approx(missed_at + TICK)


async def test_readings_missing_up_to_the_staleness_bound_pass_and_one_tick_more_trips() -> None:
    """Staleness 0.5 s at 50 Hz: the 25th missed tick is exactly 0.5 s after the last good
    reading and passes; the 26th is beyond it and trips, with the age as evidence."""
    limits = replace(SHIPPED, supervisor=replace(SHIPPED.supervisor, staleness_s=0.5))
    passing = Rig(limits)
    passing.table.before = failing(
        "read_state", TableTimeout("virtual-1", "no answer"), after=1000, times=24
    )
    assert (await passing.run()).outcome is Outcome.COMPLETED
    [resumed] = passing.warnings("readings resumed")
    assert resumed.data == {"missed": 24}

    tripping = Rig(limits)
    tripping.table.before = failing(
        "read_state", TableTimeout("virtual-1", "no answer"), after=1000, times=26
    )
    finished = await tripping.run()
    assert finished.outcome is Outcome.TRIPPED
    [trip] = tripping.events(EventKind.TRIP)
    assert trip.data["trip"] == TripKind.MISSING and trip.data["age_s"] > 0.5
    assert trip.data["age_s"] == pytest.approx(0.5 + TICK, abs=1e-6)
    assert trip.data["error"] == "table virtual-1: no answer"
    assert trip.reason.endswith("s (limit 0.5 s): table virtual-1: no answer")
    assert len(tripping.warnings("reading missed")) == 1


async def test_each_run_of_overruns_is_one_warning_and_the_ticks_stay_on_the_grid() -> None:
    rig = Rig()
    reads = [0]

    def stall(name: str) -> None:
        if name == "read_state":
            reads[0] += 1
            if reads[0] in (500, 900):
                rig.clock.advance(3.5 * TICK)  # the process stalled mid-tick

    rig.table.before = stall
    finished = await rig.run()
    assert finished.outcome is Outcome.COMPLETED
    overran = rig.warnings("1 tick(s) overran")
    assert [e.reason for e in overran] == [
        "1 tick(s) overran their 20 ms period; the longest gap was 80 ms (the target still "
        "moved at most one tick's ramp per tick)"
    ] * 2
    assert [e.data["total_overruns"] for e in overran] == [1, 2] and rig.loop.overruns == 2
    assert overran[0].data["longest_gap_s"] == pytest.approx(4 * TICK)
    start = rig.clock.sleeps[0] - TICK
    ks = [(d - start) / TICK for d in rig.clock.sleeps]
    assert all(abs(k - round(k)) < 1e-6 for k in ks)  # still on the tick grid
    skipped = [b - a for a, b in zip(ks, ks[1:], strict=False) if round(b - a) != 1]
    assert [round(s) for s in skipped] == [4, 4]  # one deadline past the stall, no catch-up burst


@pytest.mark.parametrize(("ticks", "trips"), [(45, False), (46, True)])
async def test_a_gap_beyond_the_stall_bound_trips_and_up_to_it_does_not(
    ticks: int, trips: bool
) -> None:
    limits = replace(SHIPPED, supervisor=replace(SHIPPED.supervisor, max_stall_s=0.91))
    rig = Rig(limits)
    reads = [0]

    def stall(name: str) -> None:
        if name == "read_state":
            reads[0] += 1
            if reads[0] == 500:
                rig.clock.advance((ticks - 1) * TICK + 0.001)  # next tick: `ticks` ticks later

    rig.table.before = stall
    finished = await rig.run()
    if not trips:
        assert finished.outcome is Outcome.COMPLETED
        [overran] = rig.warnings("1 tick(s) overran")
        assert overran.data["longest_gap_s"] == pytest.approx(ticks * TICK)
        return
    assert finished.outcome is Outcome.TRIPPED
    [trip] = rig.events(EventKind.TRIP)
    assert trip.data["trip"] == "stall" and trip.data["limit_s"] == 0.91
    assert trip.data["gap_s"] == pytest.approx(ticks * TICK) and trip.data["severity"] == "stop"
    assert finished.reason == f"control loop stalled for {ticks * TICK:.3f} s (limit 0.91 s)"


def stalled_rig(max_stall_s: float) -> Rig:
    """A rig whose host overruns one tick (3.5 ticks late) and then, the next tick, freezes for
    44 ticks and a millisecond: the gap is 45 ticks, where the clock's deadlines put it."""
    rig = Rig(replace(SHIPPED, supervisor=replace(SHIPPED.supervisor, max_stall_s=max_stall_s)))
    reads = [0]

    def stall(name: str) -> None:
        if name == "read_state":
            reads[0] += 1
            if reads[0] == 499:
                rig.clock.advance(3.5 * TICK)
            if reads[0] == 500:
                rig.clock.advance(44 * TICK + 0.001)

    rig.table.before = stall
    return rig


async def test_a_gap_of_exactly_the_stall_bound_passes_and_the_least_bit_more_trips() -> None:
    """The bound at its exact value, in the loop's own arithmetic: the gap is measured once on a
    probe run (the virtual clock makes every run tick alike), then used as the bound, and then
    the next float below it. The overrun just before the stall is recorded before the trip."""
    probe = stalled_rig(5.0)
    assert (await probe.run()).outcome is Outcome.COMPLETED
    sleeps = probe.clock.sleeps
    gap = max(b - a for a, b in zip(sleeps, sleeps[1:], strict=False))
    assert gap == pytest.approx(45 * TICK)

    at_bound = stalled_rig(gap)
    assert at_bound.loop.stall_bound_s == gap
    assert (await at_bound.run()).outcome is Outcome.COMPLETED

    beyond = stalled_rig(math.nextafter(gap, 0.0))
    finished = await beyond.run()
    assert finished.outcome is Outcome.TRIPPED
    [trip] = beyond.events(EventKind.TRIP)
    assert trip.data["trip"] == "stall" and trip.data["gap_s"] == gap
    [overran] = beyond.warnings("1 tick(s) overran")
    assert overran.t == trip.t and beyond.records.index(overran) < beyond.records.index(trip)


@pytest.mark.parametrize("scale", [1.0, 4.0])
async def test_a_stall_before_the_second_tick_trips_like_any_other(scale: float) -> None:
    """The first gap the loop can measure is between its first two ticks: a host that sleeps
    through it (not inside a table call) is caught there, not one tick later or never. On a
    scaled clock the evidence gives the gap in real seconds too."""
    rig = Rig(scale=scale)
    tick, bound = rig.loop.tick_s, rig.loop.stall_bound_s
    late = bound + tick
    rig.clock.oversleep[1] = late  # the first sleep wakes this late
    finished = await rig.run()
    assert finished.outcome is Outcome.TRIPPED
    [trip] = rig.events(EventKind.TRIP)
    gap = trip.data["gap_s"]
    assert trip.data["trip"] == "stall" and gap == pytest.approx(tick + late)
    assert trip.data["real_s"] == pytest.approx(gap / scale) and trip.data["limit_s"] == bound
    assert (
        trip.reason
        == finished.reason
        == f"control loop stalled for {gap:.3f} s (limit {bound:g} s)"
    )
    assert trip.t == pytest.approx(rig.clock.sleeps[0] + late)  # at the second tick
    assert len(rig.samples) == 1  # the first tick's reading, then the trip


@pytest.mark.parametrize(("beyond", "overruns"), [(-1e-9, 0), (1e-9, 1)])
async def test_a_gap_of_one_and_a_half_ticks_is_on_time_and_a_nanosecond_more_overran(
    beyond: float, overruns: int
) -> None:
    """OVERRUN_FACTOR at its value: a tick 1.5 periods after the one before is on time, a
    nanosecond later it overran. (Exactly 1.5 periods to the bit is a difference of two clock
    readings near the session's time that the clock cannot be made to produce.)"""
    rig = Rig()
    rig.clock.oversleep[400] = 0.5 * TICK + beyond  # the 400th sleep wakes this late
    assert (await rig.run()).outcome is Outcome.COMPLETED
    assert rig.loop.overruns == overruns
    assert len(rig.warnings("1 tick(s) overran")) == overruns


async def test_an_overrun_on_a_scaled_clock_is_reported_in_real_milliseconds() -> None:
    """People read the warning in real time: at x4 a gap of 1.6016 session seconds is 400.4 ms,
    shown as 400 (the period, 20 ms, is real time too)."""
    rig = Rig(scale=4.0)
    rig.clock.oversleep[400] = 1.6016 - rig.loop.tick_s  # that gap, under the 2 s stall bound
    assert (await rig.run()).outcome is Outcome.COMPLETED
    [overran] = rig.warnings("1 tick(s) overran")
    assert overran.reason == (
        "1 tick(s) overran their 20 ms period; the longest gap was 400 ms (the target still "
        "moved at most one tick's ramp per tick)"
    )
    assert overran.data["longest_gap_real_s"] == pytest.approx(0.4004)


async def test_a_run_of_overruns_still_open_at_the_end_is_recorded_before_the_release() -> None:
    rig = Rig()
    asked: list[int] = []

    def later(record: Record) -> None:
        if isinstance(record, Sample) and record.seq == 600 and not asked:
            asked.append(len(rig.clock.sleeps))
            rig.clock.oversleep[len(rig.clock.sleeps) + 1] = 3 * TICK  # the next tick is late
            rig.loop.release("done")

    rig.stream.subscribe(type("Operator", (), {"deliver": staticmethod(later)})())
    finished = await rig.run()
    [overran] = rig.warnings("1 tick(s) overran")
    [released] = rig.events(EventKind.RELEASED)
    assert overran.t == finished.t == released.t
    assert rig.records.index(overran) < rig.records.index(released)


async def test_a_release_the_table_never_confirms_is_recorded_with_the_watchdog_to_fall_back_on() -> (
    None
):
    rig = Rig()
    rig.table.before = failing(
        "stop", TableTimeout("virtual-1", "no answer"), times=rig.loop.release_attempts
    )

    def later(record: Record) -> None:
        if isinstance(record, Sample) and record.seq == 100:
            rig.loop.release("done")

    rig.stream.subscribe(type("Operator", (), {"deliver": staticmethod(later)})())
    finished = await rig.run()
    [warning] = rig.warnings("release not confirmed")
    timeout = rig.loop.heartbeat_timeout_s
    assert warning.t == finished.t and warning.data == {"heartbeat_timeout_s": timeout}
    errors = "; ".join(["table virtual-1: no answer"] * 3)  # three attempts unless told
    assert warning.reason == (
        f"release not confirmed ({errors}); the table's watchdog releases it within "
        f"{timeout:g} s of the last heartbeat"
    )
    assert rig.events(EventKind.RELEASED) == []


async def test_consecutive_overruns_are_one_warning_counting_them_when_the_run_ends() -> None:
    rig = Rig()
    for n in (400, 401, 402):
        rig.clock.oversleep[n] = 2 * TICK  # three late wake-ups in a row
    assert (await rig.run()).outcome is Outcome.COMPLETED
    [overran] = rig.warnings("3 tick(s) overran")
    assert overran.data["overruns"] == 3 == overran.data["total_overruns"] == rig.loop.overruns
    on_time_again = rig.clock.sleeps[402]  # the first tick after the run: it closes the run
    assert overran.t == pytest.approx(on_time_again)


async def test_the_target_starts_from_zero_and_follows_the_ramp() -> None:
    """The first tick commands the profile at its start (no force), the next one tick's ramp."""
    rig = Rig()
    await rig.run()
    first, second = rig.samples[:2]
    assert first.phase is Phase.RAMP_UP and first.target_n == 0.0
    ramp = rig.loop.profile.ramp_n_per_s
    assert second.target_n == pytest.approx(ramp * (second.t - first.t), abs=1e-9)


@pytest.mark.parametrize(
    ("frozen_s", "fails", "named"),
    [
        (0.85, True, "missing_reading"),  # the table was silent for longer than staleness_s
        (0.95, True, "stall"),  # the host was frozen mid-call: the call fails on the thaw
        (0.95, False, "stall"),  # ... or answers from its buffer: the tick still overran
    ],
)
async def test_a_host_frozen_mid_call_beyond_the_stall_bound_trips_as_a_stall(
    frozen_s: float, fails: bool, named: str
) -> None:
    """A frozen host (SIGSTOP, a paused machine) wakes inside a table call; what the call says
    then is about the host, so the trip is the stall, at once, not the table's missing reading."""
    rig = Rig()
    reads = [0]

    def freeze(name: str) -> None:
        if name == "read_state":
            reads[0] += 1
            if reads[0] == 500:
                rig.clock.advance(frozen_s)
                if fails:
                    raise TableTimeout("virtual-1", "read: no answer within 1.6 s")

    rig.table.before = freeze
    finished = await rig.run()
    assert finished.outcome is Outcome.TRIPPED
    [trip] = rig.events(EventKind.TRIP)
    assert trip.data["trip"] == named
    if named == "stall":
        assert trip.data["gap_s"] == pytest.approx(frozen_s, abs=0.01)
        assert finished.reason.startswith(f"control loop stalled for {frozen_s:.2f}")
        assert trip.t == rig.clock.now()  # dated at the thaw, when the call came back
    assert len(rig.samples) == 498 + (not fails)  # no tick after the thaw


async def test_a_stall_inside_a_call_on_a_scaled_clock_gives_its_evidence_after_the_overruns() -> (
    None
):
    """On a x4 clock: one tick overruns (3.5 ticks late), and the next one's reading comes back
    after the stall bound and 50 ms. The overrun is recorded first, at the trip's time; the trip
    gives the bound, the gap in session and in real seconds, and the moment of the thaw."""
    rig = Rig(scale=4.0)
    bound, tick = rig.loop.stall_bound_s, rig.loop.tick_s
    reads = [0]

    def freeze(name: str) -> None:
        if name == "read_state":
            reads[0] += 1
            if reads[0] == 499:
                rig.clock.advance(3.5 * tick)
            if reads[0] == 500:
                rig.clock.advance(bound + 0.05)

    rig.table.before = freeze
    finished = await rig.run()
    assert finished.outcome is Outcome.TRIPPED
    [trip] = rig.events(EventKind.TRIP)
    gap = trip.data["gap_s"]
    assert trip.data["trip"] == "stall" and gap == pytest.approx(bound + 0.05)
    assert trip.data["limit_s"] == bound and trip.data["real_s"] == pytest.approx(gap / 4.0)
    assert trip.t == rig.clock.now()
    [overran] = rig.warnings("1 tick(s) overran")
    assert overran.t == trip.t and rig.records.index(overran) < rig.records.index(trip)


@pytest.mark.parametrize("frozen_s", [0.6, 5.0])
async def test_a_host_frozen_after_a_reading_came_back_stalls_it_does_not_age_the_reading(
    frozen_s: float,
) -> None:
    """SIGSTOP can land after a reading came back and before it is judged (while the sample is
    published). The reading is judged as of the end of the tick's calls, so the freeze is the
    host's: past the stall bound it trips as a stall at the next tick, below it that tick only
    overran; it never makes the table's reading "stale" (past the 0.5 s staleness bound)."""
    rig = Rig()
    assert rig.loop.staleness_s < frozen_s

    def frozen(record: Record) -> None:
        if isinstance(record, Sample) and record.seq == 500:
            rig.clock.advance(frozen_s)

    rig.stream.subscribe(type("Sigstop", (), {"deliver": staticmethod(frozen)})())
    finished = await rig.run()
    assert [e.data["trip"] for e in rig.events(EventKind.TRIP)] == (
        ["stall"] if frozen_s > rig.loop.stall_bound_s else []
    )
    if frozen_s > rig.loop.stall_bound_s:
        [trip] = rig.events(EventKind.TRIP)
        assert finished.outcome is Outcome.TRIPPED and len(rig.samples) == 500
        assert frozen_s - 1e-9 <= trip.data["gap_s"] <= frozen_s + rig.loop.tick_s
    else:
        assert finished.outcome is Outcome.COMPLETED
        [overran] = rig.warnings("1 tick(s) overran")
        assert overran.data["longest_gap_s"] >= frozen_s - 1e-9


def frozen_mid_call_rig(max_stall_s: float) -> Rig:
    """A rig whose 500th reading comes back 0.95 s after it was asked for, with an answer."""
    rig = Rig(replace(SHIPPED, supervisor=replace(SHIPPED.supervisor, max_stall_s=max_stall_s)))
    reads = [0]

    def freeze(name: str) -> None:
        if name == "read_state":
            reads[0] += 1
            if reads[0] == 500:
                rig.clock.advance(0.95)

    rig.table.before = freeze
    return rig


async def test_a_tick_whose_calls_take_exactly_the_stall_bound_is_not_itself_a_stall() -> None:
    """The time a tick spent in its calls is held to the stall bound like the gap between ticks:
    exactly the bound passes. The time is measured once on a probe run (the virtual clock makes
    every run alike) and then used as the bound: that tick is no stall, and the gap from its
    start to the next tick, one deadline later, is."""
    probe = frozen_mid_call_rig(0.9)
    await probe.run()
    [trip] = probe.events(EventKind.TRIP)
    spent = trip.data["gap_s"]
    assert spent == pytest.approx(0.95)

    at_bound = frozen_mid_call_rig(spent)
    finished = await at_bound.run()
    [trip] = at_bound.events(EventKind.TRIP)
    assert finished.outcome is Outcome.TRIPPED and trip.data["trip"] == "stall"
    assert trip.data["gap_s"] > spent and trip.data["gap_s"] == pytest.approx(0.96)
    assert len(at_bound.samples) == len(probe.samples) == 499


async def test_a_controlled_stop_ramps_to_zero_then_releases_and_keeps_the_first_reason() -> None:
    rig = Rig(total_s=600)
    done = [False]

    def later(record: Record) -> None:
        if isinstance(record, Sample) and record.phase is Phase.HOLD and not done[0]:
            done[0] = True
            rig.loop.stop("patient asked")
            rig.loop.stop("second press")

    rig.stream.subscribe(type("Stopper", (), {"deliver": staticmethod(later)})())
    finished = await rig.run()
    assert finished.outcome is Outcome.STOPPED and finished.reason == "patient asked"
    [requested] = rig.events(EventKind.STOP_REQUESTED)
    assert requested.reason == "patient asked" and requested.data == {"kind": "controlled"}
    stopping = [s for s in rig.samples if s.phase is Phase.STOPPING]
    assert stopping[-1].target_n == 0.0 and stopping == rig.samples[-len(stopping) :]
    assert [s.target_n for s in stopping] == sorted((s.target_n for s in stopping), reverse=True)
    stops = [kind for _, kind in rig.table.writes("stop")]
    assert stops == [StopKind.RELEASE]  # released once, after the ramp reached zero


async def test_an_emergency_release_wins_over_every_other_request_of_the_tick() -> None:
    rig = Rig(total_s=600)
    done = [False]

    def later(record: Record) -> None:
        if isinstance(record, Sample) and record.phase is Phase.HOLD and not done[0]:
            done[0] = True
            rig.loop.pause()
            rig.loop.stop("controlled")
            rig.loop.release("now")

    rig.stream.subscribe(type("Releaser", (), {"deliver": staticmethod(later)})())
    finished = await rig.run()
    assert finished.outcome is Outcome.STOPPED and finished.reason == "now"
    assert [e.data["kind"] for e in rig.events(EventKind.STOP_REQUESTED)] == ["release"]
    assert not rig.events(EventKind.PAUSE)
    assert rig.samples[-1].phase is Phase.HOLD  # let go at once, no ramp


async def test_a_loop_runs_once() -> None:
    rig = Rig()
    assert (rig.loop.outcome, rig.loop.reason, rig.loop.paused) == (None, "", False)  # not run
    finished = await rig.run()
    assert (rig.loop.outcome, rig.loop.reason) == (finished.outcome, finished.reason)
    with pytest.raises(RuntimeError) as info:
        await rig.run()
    assert str(info.value) == "a ControlLoop runs once; build a new one for the next session"


async def test_a_hold_above_the_confirmation_force_starts_only_with_the_operators_confirmation() -> (
    None
):
    """The loop checks its profile with the confirmation it was given: a hold 1 lbf above the
    lumbar confirmation force runs to completion when the operator confirmed it, and is refused,
    naming the rule, when the loop was not told of a confirmation."""
    hold = f"{SHIPPED.confirm_force_n(Region.LUMBAR) / N_PER_LBF + 1:g} lbf"
    confirmed = Rig(hold_force=hold)  # the rig's loop carries the operator's confirmation
    finished = await confirmed.run()
    assert finished.outcome is Outcome.COMPLETED
    assert max(s.measured_n for s in confirmed.samples) > SHIPPED.confirm_force_n(Region.LUMBAR)
    with pytest.raises(StartRefused) as info:
        await Rig().bare_loop({"hold_force": hold}).run()
    assert [r for r in info.value.reasons if "an operator must confirm it" in r], info.value.reasons


async def test_a_table_silent_from_the_first_tick_trips_once_the_start_is_too_old() -> None:
    """No reading ever arrives: the staleness bound runs from the start itself, so the trip comes
    one bound after it, not never and not at once."""
    rig = Rig()
    rig.table.before = failing(
        "read_state", TableTimeout("virtual-1", "no answer"), after=1, times=10**6
    )
    finished = await rig.run()
    assert finished.outcome is Outcome.TRIPPED and finished.sample_count == 0
    started = rig.records[0]
    assert isinstance(started, Started)
    [trip] = rig.events(EventKind.TRIP)
    staleness = SHIPPED.supervisor.staleness_s
    assert trip.data["trip"] == TripKind.MISSING
    assert staleness < trip.data["age_s"] <= staleness + TICK + 1e-9
    assert trip.t - started.t == pytest.approx(trip.data["age_s"])


async def test_on_a_scaled_clock_a_readings_age_is_bounded_in_real_time_too() -> None:
    """At x5 the shipped 0.5 s would be 100 ms of real time: the bound is 0.3 s of real time
    (1.5 s of session time), recorded with the session and named in the trip."""
    rig = Rig(scale=5.0)
    rig.table.before = failing(
        "read_state", TableTimeout("virtual-1", "no answer"), after=1, times=10**6
    )
    finished = await rig.run()
    started = rig.records[0]
    assert isinstance(started, Started) and started.extra["staleness_s"] == 1.5
    assert finished.outcome is Outcome.TRIPPED
    [trip] = rig.events(EventKind.TRIP)
    tick = 5.0 / 50  # session seconds per tick at x5
    assert 1.5 < trip.data["age_s"] <= 1.5 + tick + 1e-9
    assert "(limit 1.5 s)" in trip.reason


async def test_a_table_error_while_starting_is_the_reason_and_the_table_is_released() -> None:
    rig = Rig()
    rig.table.before = failing("start", TableTimeout("virtual-1", "start: no answer within 0.2 s"))
    finished = await rig.run()
    assert finished.outcome is Outcome.INTERRUPTED
    assert finished.reason == "table error: table virtual-1: start: no answer within 0.2 s"
    assert rig.model.released


async def test_trips_speak_the_unit_the_loop_was_given() -> None:
    """A clinic that works in kgf reads its trips in kgf (the record's figures stay in newtons)."""
    rig = Rig()
    loop = rig.bare_loop(stream=rig.stream, operator_confirmed=True, unit=ForceUnit.KGF)
    holds = [0]

    def jolt(record: Record) -> None:
        if isinstance(record, Sample) and record.phase is Phase.HOLD:
            holds[0] += 1
            if holds[0] == 100:
                rig.model.jolt(rig.clock.now(), 7 * N_PER_LBF)  # over 5 lbf, under 10

    rig.stream.subscribe(type("Jolter", (), {"deliver": staticmethod(jolt)})())
    finished = await loop.run()
    assert finished.outcome is Outcome.TRIPPED and "exceeds target" in finished.reason
    assert "kgf" in finished.reason and "lbf" not in finished.reason, finished.reason


async def test_a_settings_change_before_the_start_is_refused_and_never_applied() -> None:
    """Before the run has identified its table there is nothing to check a change against: it is
    refused (not queued unchecked for the first tick), and the session runs its prescription."""
    rig = Rig()
    stronger = ForceProfile.from_dict({**SHORT, "hold_force": "250 lbf", "rest_force": "100 lbf"})
    [refusal] = rig.loop.update_profile(stronger, operator_confirmed=True)
    assert refusal == Violation(
        "session",
        "not started",
        "running",
        "the session has not started, so the change cannot be checked against its table; "
        "change the prescription and start again instead",
    )
    assert refusal.blocking and rig.records == []
    finished = await rig.run()
    assert finished.outcome is Outcome.COMPLETED
    assert max(s.target_n for s in rig.samples) == pytest.approx(40 * N_PER_LBF)
    assert not rig.events(EventKind.SETTINGS_CHANGED)


class Abandoned(BaseException):
    """Not an Exception, like SystemExit: what the loop's catch-all for bugs lets through."""


async def test_an_exit_before_the_first_tick_still_releases_and_records_why() -> None:
    """Whatever ends the run between the start and the first tick, even something that is not
    an Exception, the table is released and the record says the session ended before its first
    tick; the exit itself goes on up."""
    rig = Rig()

    def exit_at_start(name: str) -> None:
        if name == "start":
            raise Abandoned

    rig.table.before = exit_at_start
    with pytest.raises(Abandoned):
        await rig.run()
    finished = rig.records[-1]
    assert isinstance(finished, Finished) and finished.outcome is Outcome.INTERRUPTED
    assert finished.reason == "ended before the first tick" and finished.sample_count == 0
    assert rig.model.released and [n for n, _, _ in rig.table.calls][-1] == "stop"


async def test_a_refused_start_publishes_nothing_and_writes_nothing() -> None:
    rig = Rig(hold_force="250 lbf", rest_force="100 lbf")
    with pytest.raises(StartRefused) as info:
        await rig.run()
    assert info.value.reasons == [str(v) for v in info.value.violations if v.blocking]
    assert str(info.value).startswith("session not started: ")
    assert rig.records == [] and [n for n, _, _ in rig.table.calls] == ["identify"]


@pytest.mark.parametrize(
    ("tick_hz", "scale", "limit_s", "expected"),
    [
        (50.0, 1.0, 1.0, 1.0),  # the configured watchdog timeout
        (5.0, 1.0, 0.5, MIN_HEARTBEAT_TICKS * 0.2),  # five ticks of a slow rate
        (50.0, 20.0, 1.0, MIN_WATCHDOG_REAL_S * 20.0),  # half a real second on a scaled clock
    ],
)
def test_the_watchdog_timeout_is_the_largest_of_its_three_floors(
    tick_hz: float, scale: float, limit_s: float, expected: float
) -> None:
    clock = VirtualClock(scale=scale)
    limits = replace(SHIPPED, supervisor=replace(SHIPPED.supervisor, heartbeat_timeout_s=limit_s))
    loop = ControlLoop(
        ModelTable(TableModel(), clock),
        ForceProfile.from_dict(SHORT),
        patient=PATIENT,
        limits=limits,
        clock=clock,
        tick_hz=tick_hz,
    )
    assert loop.heartbeat_timeout_s == pytest.approx(expected)
    assert loop.tick_s == pytest.approx(scale / tick_hz)


def test_tick_rates_at_the_wire_bounds() -> None:
    assert default_tick_hz(0.01) == 50.0  # exactly half of 20 ms: 50 Hz still fits
    assert default_tick_hz(math.nextafter(0.01, 1.0)) == 25.0
    assert default_tick_hz(0.1) == 5.0
    # a slow link (line-v1 at 9600 baud: 126 ms a tick) runs at 5 Hz while the wire needs at
    # most two thirds of the period, and is refused past that, naming the option
    assert default_tick_hz(math.nextafter(0.1, 1.0)) == 5.0
    assert default_tick_hz(0.2 / 1.5) == 5.0
    with pytest.raises(ConfigError, match=r"one tick takes 133\.3 ms.*--tick-hz` \(at most 7 Hz\)"):
        default_tick_hz(math.nextafter(0.2 / 1.5, 1.0))
    with pytest.raises(ConfigError, match="no rate fits") as info:
        default_tick_hz(1.5)
    assert info.value.where == "tick rate for table"  # the field named when no table is given
    assert info.value.message == (
        "one tick takes 1500.0 ms on the wire; even 5 Hz (200 ms) leaves too little margin; use a "
        "faster link (a higher baud rate), or choose the control rate with `traction run "
        "--tick-hz` (no rate fits)"
    )
    with pytest.raises(ConfigError) as info:
        default_tick_hz(1.0)  # a tick of a whole second: 1 Hz is still a rate to name
    assert info.value.message.endswith("`traction run --tick-hz` (at most 1 Hz)")
    assert check_tick_hz(50.0, 0.02) == 50.0  # a tick exactly as long as the wire time
    with pytest.raises(ConfigError, match="use at most 49 Hz"):
        check_tick_hz(50.0, math.nextafter(0.02, 1.0))
    with pytest.raises(ConfigError, match="must be above zero"):
        check_tick_hz(0.0, 0.002)
    with pytest.raises(ConfigError, match="must be above zero"):
        check_tick_hz(math.nan, 0.002)


def test_a_slow_rate_is_allowed_and_a_refusal_names_the_table_and_the_numbers() -> None:
    assert check_tick_hz(0.5, 0.002, "t1") == 0.5  # one tick every two seconds is slow, not wrong
    with pytest.raises(ConfigError) as err:
        check_tick_hz(50.0, 0.021, "t1")
    assert err.value.where == "tick rate for t1"
    assert err.value.message == (
        "50 Hz gives 20.0 ms per tick but one tick (heartbeat, target, state) takes 21.0 ms on the "
        "wire; use at most 47 Hz (default 20 Hz)"
    )
    with pytest.raises(ConfigError) as err:  # a wire too slow for any standard rate
        check_tick_hz(10.0, 0.15, "t1")
    assert err.value.where == "tick rate for t1" and "even 5 Hz" in err.value.message
    with pytest.raises(ConfigError) as err:
        check_tick_hz(-1.0, 0.002, "t1")
    assert (err.value.where, err.value.message) == (
        "tick rate for t1",
        "-1.0 Hz must be above zero",
    )


def test_a_refused_start_lists_every_reason() -> None:
    refused = StartRefused(["table is not ready", "table is already running"])
    assert str(refused) == "session not started: table is not ready; table is already running"
    assert refused.violations == []


async def test_the_operators_requests_carry_their_default_reasons() -> None:
    rig = Rig(total_s=600)
    steps = iter(
        [
            lambda: rig.loop.pause(),
            lambda: rig.loop.resume(),
            lambda: rig.loop.stop(),
            lambda: rig.loop.release(),
        ]
    )
    since_hold = [0]

    def later(record: Record) -> None:
        if isinstance(record, Sample) and (since_hold[0] or record.phase is Phase.HOLD):
            since_hold[0] += 1
            if since_hold[0] % 50 == 0:
                next(steps, lambda: None)()

    rig.stream.subscribe(type("Operator", (), {"deliver": staticmethod(later)})())
    finished = await rig.run()
    assert [e.reason for e in rig.events(EventKind.PAUSE)] == ["operator pause"]
    assert [e.reason for e in rig.events(EventKind.RESUME)] == ["operator resume"]
    requested = rig.events(EventKind.STOP_REQUESTED)
    assert [(e.reason, e.data["kind"]) for e in requested] == [
        ("operator stop", "controlled"),
        ("operator emergency release", "release"),
    ]
    assert finished.outcome is Outcome.STOPPED and finished.reason == "operator emergency release"


async def test_a_stop_request_is_recorded_at_the_tick_that_takes_it() -> None:
    rig = Rig(total_s=600)
    asked: list[float] = []

    def later(record: Record) -> None:
        if isinstance(record, Sample) and record.phase is Phase.HOLD and not asked:
            asked.append(record.t)
            rig.loop.stop("patient asked")

    rig.stream.subscribe(type("Operator", (), {"deliver": staticmethod(later)})())
    finished = await rig.run()
    [requested] = rig.events(EventKind.STOP_REQUESTED)
    assert requested.t == pytest.approx(asked[0] + TICK)  # the next tick, on the session clock
    assert requested.data == {"kind": "controlled"} and finished.outcome is Outcome.STOPPED


async def test_a_second_pause_and_a_resume_while_running_change_nothing() -> None:
    """Requests that do not apply in the state they meet are no-ops: a resume while running neither
    resumes nor touches the settings, and a second pause does not undo the first."""
    rig = Rig(total_s=600)
    at: dict[str, float] = {}

    def later(record: Record) -> None:
        if not isinstance(record, Sample) or record.phase not in (Phase.HOLD, Phase.PAUSED):
            return
        if "resume-running" not in at:
            at["resume-running"] = record.t
            rig.loop.resume("nothing to resume")
        elif "pause" not in at and record.t > at["resume-running"] + 0.5:
            at["pause"] = record.t
            rig.loop.pause()
        elif "pause-again" not in at and record.t > at["pause"] + 0.5:
            at["pause-again"] = record.t
            rig.loop.pause("pressed again")
        elif "release" not in at and record.t > at["pause-again"] + 0.5:
            at["release"] = record.t
            at["paused"] = float(rig.loop.paused)
            rig.loop.release()

    rig.stream.subscribe(type("Operator", (), {"deliver": staticmethod(later)})())
    finished = await rig.run()
    assert finished.outcome is Outcome.STOPPED and finished.reason == "operator emergency release"
    assert [e.reason for e in rig.events(EventKind.PAUSE)] == ["operator pause"]
    assert rig.events(EventKind.RESUME) == [] and at["paused"] == 1.0
    assert rig.loop.profile == ForceProfile.from_dict({**SHORT, "total_s": 600})
    after_pause = [s for s in rig.samples if at["pause"] + TICK <= s.t <= at["release"]]
    assert after_pause and {s.phase for s in after_pause} == {Phase.PAUSED}


# --- settings changed live --------------------------------------------------------------------------


async def test_a_live_change_to_another_region_is_refused_and_recorded() -> None:
    rig = Rig(total_s=300)
    cervical = ForceProfile.from_dict({**SHORT, "region": "cervical", "total_s": 300})
    results: list[Any] = []

    def later(record: Record) -> None:
        if isinstance(record, Sample) and record.phase is Phase.HOLD and not results:
            results.append(rig.loop.update_profile(cervical, reason="typo"))
            rig.loop.release("done")

    rig.stream.subscribe(type("Changer", (), {"deliver": staticmethod(later)})())
    await rig.run()
    [violations] = results
    assert violations[0].field == "region" and violations[0].blocking
    assert violations[0].message == (
        "region cervical differs from the running session's lumbar; start a new session instead"
    )
    refused = rig.warnings("settings change refused")[0]
    assert refused.reason.startswith("settings change refused (typo): region cervical differs")
    blocking = [str(v) for v in violations if v.blocking]
    assert len(blocking) >= 2  # the region and the cervical limits: each named, in order
    assert refused.reason == "settings change refused (typo): " + "; ".join(blocking)
    assert refused.data["old"] == rig.loop.profile.to_dict()
    assert refused.data["new"] == cervical.to_dict()
    assert refused.data["violations"][0]["field"] == "region"
    assert not rig.events(EventKind.SETTINGS_CHANGED) and rig.loop.profile.region.value == "lumbar"


async def test_an_accepted_live_change_applies_at_the_next_tick_with_its_record() -> None:
    rig = Rig(total_s=300)
    lower = ForceProfile.from_dict({**SHORT, "hold_force": "30 lbf", "total_s": 300})
    asked: list[float] = []

    def later(record: Record) -> None:
        if isinstance(record, Sample) and record.phase is Phase.HOLD and not asked:
            asked.append(record.t)
            assert rig.loop.update_profile(lower, reason="patient asked") == []
        elif asked and isinstance(record, Sample) and record.t > asked[0] + 10:
            rig.loop.release("done")

    rig.stream.subscribe(type("Changer", (), {"deliver": staticmethod(later)})())
    await rig.run()
    [changed] = rig.events(EventKind.SETTINGS_CHANGED)
    assert changed.reason == "settings changed (patient asked)"
    assert changed.t == pytest.approx(asked[0] + TICK)  # the next tick
    assert changed.data["new"] == lower.to_dict() and changed.data["violations"] == []
    assert changed.data["profile_t"] == pytest.approx(rig.loop.profile_t, abs=15)
    assert rig.loop.profile == lower


# --- the table's own safety features ----------------------------------------------------------------


async def test_a_table_with_every_single_fault_feature_starts_without_a_warning() -> None:
    rig = Rig()
    assert rig.table.safety_features.missing == []
    finished = await rig.run()
    assert finished.outcome is Outcome.COMPLETED and rig.events(EventKind.WARNING) == []


async def test_a_table_without_single_fault_features_is_refused_unless_its_model_is_allowed() -> (
    None
):
    from devices.contract import SafetyFeatures

    bare = SafetyFeatures(False, False, False, False)
    rig = Rig()
    rig.table.safety_features = bare
    with pytest.raises(StartRefused) as info:
        await rig.run()
    [reason] = info.value.reasons
    assert reason == (
        "table virtual-1 (model 'SIM-TX1') lacks a second, independent force channel, a force "
        "limit enforced by the table, a table-side sample counter, an operator stop input, so one "
        "failed sensor could pull past the prescription; use a table (or map) with them, or allow "
        "this model in safety.toml [single_fault] allow_models"
    )
    assert rig.records == [] and "start" not in [n for n, _, _ in rig.table.calls]

    allowed = replace(SHIPPED, single_fault_exempt_models=frozenset({"SIM-TX1"}))
    rig = Rig(allowed)
    rig.table.safety_features = bare
    finished = await rig.run()
    assert finished.outcome is Outcome.COMPLETED
    [warning] = rig.warnings("table virtual-1 (model 'SIM-TX1') is not single-fault safe")
    assert warning.reason.endswith(
        "it lacks a second, independent force channel, a force limit enforced by the table, a "
        "table-side sample counter, an operator stop input; allowed by safety.toml [single_fault]"
    )
    assert warning.data == {"missing": bare.missing, "safety_features": bare.to_dict()}
    assert "set_force_limit" not in [n for n, _, _ in rig.table.calls]
    started = rig.records[0]
    assert isinstance(started, Started) and started.extra["table_force_limit_n"] is None
    assert warning.t == started.t  # recorded with the start, before any tick


@pytest.mark.parametrize(
    ("held", "refused"),
    [(0.0, False), (0.5, False), (0.75, True), (math.nan, True)],
    ids=["exact", "rounding", "off", "nan"],
)
async def test_the_force_limit_read_back_must_match_what_was_written(
    held: float, refused: bool
) -> None:
    rig = Rig()

    def tamper(name: str) -> None:
        if name == "read_force_limit":
            written = rig.model.force_limit_n or 0.0
            rig.model.force_limit_n = written + held if not math.isnan(held) else math.nan

    rig.table.before = tamper
    if not refused:
        assert (await rig.run()).outcome is Outcome.COMPLETED
        return
    with pytest.raises(StartRefused, match="after .* was written; check the table"):
        await rig.run()
    assert rig.records == []


async def test_a_table_that_refuses_the_force_limit_is_not_started() -> None:
    rig = Rig()
    rig.table.before = failing("set_force_limit", DeviceRejected("virtual-1", "limit refused", 3))
    with pytest.raises(StartRefused) as info:
        await rig.run()
    [reason] = info.value.reasons
    assert reason.startswith("table virtual-1 refused the force limit ")
    assert reason.endswith(
        "(limit refused (device error code 3)); check the table before treatment"
    )
    assert rig.records == [] and "start" not in [n for n, _, _ in rig.table.calls]


@pytest.mark.parametrize(("late", "overran"), [(0.4, False), (0.6, True)])
async def test_a_tick_is_an_overrun_from_one_and_a_half_periods_after_the_last(
    late: float, overran: bool
) -> None:
    rig = Rig()
    rig.clock.oversleep[300] = late * TICK  # the 300th wake-up comes late
    assert (await rig.run()).outcome is Outcome.COMPLETED
    warnings = rig.warnings("1 tick(s) overran")
    assert len(warnings) == int(overran) and rig.loop.overruns == int(overran)
    if overran:
        assert warnings[0].data["longest_gap_s"] == pytest.approx((1 + late) * TICK)
        assert warnings[0].data["period_s"] == TICK and warnings[0].data["overruns"] == 1


async def test_the_start_record_holds_the_patient_the_confirmation_and_every_warning() -> None:
    rig = Rig(angle_deg=45)  # outside the usual lumbar range: a warning, not a refusal
    await rig.run()
    started = rig.records[0]
    assert isinstance(started, Started)
    assert started.extra["patient"] == PATIENT.to_dict()
    assert started.extra["operator_confirmed"] is True
    [warning] = started.extra["warnings"]
    assert warning["field"] == "angle_deg" and warning["severity"] == "warn"
    [event] = rig.warnings("angle_deg 45 deg is outside")
    assert event.t == started.t and event.data == warning
    assert started.extra["safety_features"] == rig.table.safety_features.to_dict()
    assert started.profile == rig.loop.profile.to_dict() and started.limits == SHIPPED.to_dict()
    assert started.device == (await rig.table.identify()).to_dict()
    assert started.time_scale == 1.0 and started.table == "virtual-1"
    assert started.run_id == rig.loop.run_id and started.wall == rig.clock.wall(started.t)


def test_a_refused_rate_gives_its_period_and_wire_time_to_the_tenth_of_a_millisecond() -> None:
    with pytest.raises(ConfigError) as err:
        check_tick_hz(12.5, 0.09, "t1")
    assert err.value.message == (
        "12.5 Hz gives 80.0 ms per tick but one tick (heartbeat, target, state) takes 90.0 ms on "
        "the wire; use at most 11 Hz (default 5 Hz)"
    )
    with pytest.raises(ConfigError) as err:
        check_tick_hz(0.0, 0.002)
    assert err.value.where == "tick rate for table"  # when no table is named


def test_a_tick_rate_the_tables_wire_cannot_carry_names_the_table() -> None:
    rig = Rig()
    rig.table.wire_s = 1.5  # no standard rate fits
    with pytest.raises(ConfigError) as info:
        rig.bare_loop()
    assert info.value.where == "tick rate for virtual-1"
    rig.table.wire_s = 0.05
    with pytest.raises(ConfigError) as info:
        rig.bare_loop(tick_hz=50.0)  # 20 ms a tick for 50 ms on the wire
    assert info.value.where == "tick rate for virtual-1"


def test_the_stall_bound_is_never_under_two_ticks() -> None:
    """At a rate slower than any default (``--tick-hz 1``) two periods outlast the configured stall
    bound: a tick merely on time must not count as a stall."""
    loop = Rig().bare_loop(tick_hz=1.0)
    assert SHIPPED.supervisor.max_stall_s < 2.0 and loop.stall_bound_s == 2.0


async def test_a_loop_given_no_stream_has_its_own_to_subscribe_to() -> None:
    loop = Rig().bare_loop(operator_confirmed=True)
    seen: list[Record] = []
    loop.stream.subscribe(type("View", (), {"deliver": staticmethod(seen.append)})())
    finished = await loop.run()
    assert isinstance(seen[0], Started) and seen[-1] == finished
    # ... and, given no run id, one of its own, unlike any other loop's
    assert len(loop.run_id) == 32 and int(loop.run_id, 16) >= 0
    assert finished.run_id == seen[0].run_id == loop.run_id != Rig().loop.run_id


async def test_a_loop_not_told_of_the_operators_confirmation_has_none() -> None:
    rig = Rig()
    loop = rig.bare_loop({"hold_force": "65 lbf"}, stream=rig.stream)  # above lumbar's 60 lbf
    with pytest.raises(StartRefused) as info:
        await loop.run()
    assert any("an operator must confirm it" in reason for reason in info.value.reasons)
    assert rig.records == [] and "start" not in [n for n, _, _ in rig.table.calls]


async def test_a_live_change_needs_the_operators_confirmation_like_a_start_and_says_who_asked() -> (
    None
):
    rig = Rig(total_s=300)
    strong = ForceProfile.from_dict({**SHORT, "hold_force": "65 lbf", "total_s": 300})
    same = ForceProfile.from_dict({**SHORT, "hold_force": "35 lbf", "total_s": 300})
    cervical = ForceProfile.from_dict({**SHORT, "region": "cervical", "total_s": 300})
    results: list[Any] = []

    def later(record: Record) -> None:
        if isinstance(record, Sample) and record.phase is Phase.HOLD and not results:
            results.append(rig.loop.update_profile(strong))  # above 60 lbf, not confirmed
            results.append(rig.loop.update_profile(same))
            results.append(rig.loop.update_profile(cervical))
        elif results and isinstance(record, Sample) and record.t > rig.records[0].t + 30:
            rig.loop.release("done")

    rig.stream.subscribe(type("Changer", (), {"deliver": staticmethod(later)})())
    await rig.run()
    refused, accepted, region = results
    assert [v.field for v in refused if v.blocking] == ["hold_force"]
    assert "an operator must confirm it" in refused[0].message
    assert accepted == []
    assert (region[0].value, region[0].limit) == ("cervical", "lumbar")
    [changed] = rig.events(EventKind.SETTINGS_CHANGED)
    assert changed.reason == "settings changed (operator)"
    assert rig.warnings("settings change refused (operator): hold_force")


async def test_pause_resume_release_and_a_refused_change_are_recorded_when_they_happen() -> None:
    rig = Rig(total_s=300)
    cervical = ForceProfile.from_dict({**SHORT, "region": "cervical", "total_s": 300})
    at: dict[str, float] = {}
    paused_state: list[bool] = []

    def later(record: Record) -> None:
        if not isinstance(record, Sample) or record.phase not in (Phase.HOLD, Phase.PAUSED):
            return
        if "pause" not in at:
            at["pause"] = record.t
            rig.loop.pause()
            rig.loop.update_profile(cervical)
        elif "resume" not in at and record.t > at["pause"] + 1:
            at["resume"], at["profile_t"] = record.t, rig.loop.profile_t
            rig.loop.resume()
        elif "resume" in at and "release" not in at and record.t > at["resume"] + 1:
            paused_state.append(rig.loop.paused)
            at["release"] = record.t
            rig.loop.release()

    rig.stream.subscribe(type("Operator", (), {"deliver": staticmethod(later)})())
    await rig.run()
    [pause] = rig.events(EventKind.PAUSE)
    [resume] = rig.events(EventKind.RESUME)
    [release] = rig.events(EventKind.STOP_REQUESTED)
    assert pause.t == pytest.approx(at["pause"] + TICK) and set(pause.data) == {"profile_t"}
    assert resume.t == pytest.approx(at["resume"] + TICK)
    assert resume.data == {"profile_t": pytest.approx(at["profile_t"])}
    assert resume.data["profile_t"] == pause.data["profile_t"]  # the profile waited, to the bit
    assert release.t == pytest.approx(at["release"] + TICK) and release.data == {"kind": "release"}
    assert paused_state == [False] and rig.loop.paused is False
    [refused] = rig.warnings("settings change refused")
    assert refused.run_id == rig.loop.run_id and refused.t == pytest.approx(at["pause"])


async def test_a_controlled_stop_keeps_its_real_time_schedule_when_ticks_run_late() -> None:
    """Ticks three times too slow (a starved host, a slow link) keep force on the patient no
    longer than the prescribed ramp-down: while stopping the target comes down at the ramp rate
    in real time, never faster (a ramp, not a drop), while a ramp up stays one tick's ramp per
    tick (test above)."""
    rig = Rig(total_s=600)
    late = [False]

    def slow_reads(name: str) -> None:
        if late[0] and name == "read_state":
            rig.clock.advance(2 * TICK)  # each tick now takes three

    def stop_in_hold(record: Record) -> None:
        if isinstance(record, Sample) and record.phase is Phase.HOLD and not late[0]:
            late[0] = True
            rig.loop.stop("patient asked")

    rig.table.before = slow_reads
    rig.stream.subscribe(type("Stopper", (), {"deliver": staticmethod(stop_in_hold)})())
    finished = await rig.run()
    assert finished.outcome is Outcome.STOPPED and finished.reason == "patient asked"
    stopping = [s for s in rig.samples if s.phase is Phase.STOPPING]
    ramp = rig.loop.profile.ramp_n_per_s
    took = stopping[-1].t - stopping[0].t
    scheduled = stopping[0].target_n / ramp  # from the first step down to zero
    assert stopping[-1].target_n == 0.0 and len(stopping) > 10
    assert scheduled - 3 * TICK <= took <= scheduled + 6 * TICK  # per tick it took three times
    for a, b in zip(stopping, stopping[1:], strict=False):
        assert 0.0 <= a.target_n - b.target_n <= ramp * (b.t - a.t) * 1.01 + 1e-6
        if b.target_n > 0.0:  # not the last step, which stops at zero: never slower than the ramp
            assert a.target_n - b.target_n >= ramp * (b.t - a.t)


async def test_a_late_tick_while_stopping_is_caught_up_without_tripping_on_the_tables_lag() -> None:
    """One tick 0.8 s late while stopping (under the 0.9 s stall bound): the target catches up
    with the real-time ramp-down at once, 8 lbf lower, and the table follows at its motor's speed.
    That lag is the release the stop asked for, not a table pulling harder than told: the stop
    ends stopped, not tripped over target."""
    rig = Rig(total_s=600)
    stopped_at: list[int] = []

    def one_late_read(name: str) -> None:
        if stopped_at and name == "read_state":
            stopped_at[0] += 1
            if stopped_at[0] == 5:  # a few ticks into the ramp-down
                rig.clock.advance(0.8)

    def stop_in_hold(record: Record) -> None:
        if isinstance(record, Sample) and record.phase is Phase.HOLD and not stopped_at:
            stopped_at.append(0)
            rig.loop.stop("patient asked")

    rig.table.before = one_late_read
    rig.stream.subscribe(type("Stopper", (), {"deliver": staticmethod(stop_in_hold)})())
    finished = await rig.run()
    assert finished.outcome is Outcome.STOPPED, finished.reason
    stopping = [s for s in rig.samples if s.phase is Phase.STOPPING]
    drops = [a.target_n - b.target_n for a, b in zip(stopping, stopping[1:], strict=False)]
    assert max(drops) >= 7.9 * N_PER_LBF  # the catch-up happened in one tick


async def test_the_lag_allowed_while_stopping_is_not_allowed_on_the_profiles_own_ramp_down() -> (
    None
):
    """Only a stop may be judged against what was commanded in the last half second: on the
    profile's own ramp from hold to rest the target is what is commanded now. A jolt of 8 lbf,
    0.6 s into that ramp, is over the 5 lbf tolerance; measured against the half second before
    (5 lbf higher at 10 lbf/s) it would pass."""
    rig = Rig()
    ramp_ticks: list[int] = [0]

    def jolt_on_the_ramp_down(record: Record) -> None:
        if isinstance(record, Sample) and record.phase is Phase.RAMP_DOWN:
            ramp_ticks[0] += 1
            if ramp_ticks[0] == 30:
                rig.model.jolt(rig.clock.now(), 8 * N_PER_LBF)

    rig.stream.subscribe(type("Jolter", (), {"deliver": staticmethod(jolt_on_the_ramp_down)})())
    finished = await rig.run()
    assert finished.outcome is Outcome.TRIPPED and "exceeds target" in finished.reason, (
        finished.reason
    )
    assert rig.samples[-1].phase is Phase.RAMP_DOWN


async def test_a_table_pulling_harder_while_stopping_still_trips_over_target() -> None:
    """The lag allowed while stopping is measured from what was commanded in the last half
    second, never more: a jolt during the ramp-down is still over target."""
    rig = Rig(total_s=600)
    stopping_ticks: list[int] = []

    def jolt_while_stopping(record: Record) -> None:
        if isinstance(record, Sample) and record.phase is Phase.HOLD and not stopping_ticks:
            stopping_ticks.append(0)
            rig.loop.stop("patient asked")
        elif isinstance(record, Sample) and record.phase is Phase.STOPPING:
            stopping_ticks[0] += 1
            if stopping_ticks[0] == 40:  # 0.8 s into the ramp-down
                rig.model.jolt(rig.clock.now(), 12 * N_PER_LBF)  # under the table's own limit

    rig.stream.subscribe(type("Jolter", (), {"deliver": staticmethod(jolt_while_stopping)})())
    finished = await rig.run()
    assert finished.outcome is Outcome.TRIPPED
    assert "exceeds target" in finished.reason, finished.reason

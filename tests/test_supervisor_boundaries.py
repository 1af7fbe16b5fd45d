"""Every supervisor limit at its exact value: just below and at the limit pass, the next float above
trips, and each trip carries its evidence (target, limit, reading, fault and severity) as recorded.

Numbers are chosen to be exact in binary floating point, so "at the limit" means exactly that.
Readings are single-channel unless a test is about the second channel or the sample counter.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from devices.contract import TableState
from devices.limits import SupervisorLimits
from devices.records import EventKind
from devices.supervisor import STUCK_READINGS, Supervisor, Trip, TripKind
from devices.units import ForceUnit

LIMITS = SupervisorLimits(
    over_target_tolerance_n=20.0,
    hard_limit_margin_n=40.0,
    tracking_band_n=40.0,
    tracking_time_s=2.0,
    staleness_s=0.5,
    heartbeat_timeout_s=1.0,
    channel_disagreement_n=20.0,
    max_force_rate_n_per_s=400.0,
    force_rate_allowance_n=10.0,
    stuck_target_change_n=10.0,
    max_stall_s=0.9,
)
WIDE = replace(LIMITS, over_target_tolerance_n=100.0)  # lets "over" reach the tracking check
HARD = 300.0


def above(x: float) -> float:
    return math.nextafter(x, math.inf)


def below(x: float) -> float:
    return math.nextafter(x, -math.inf)


def reading(t: float, measured: float, **changes: object) -> TableState:
    state = TableState(
        t=t,
        measured_force_n=measured,
        target_force_n=measured,
        running=True,
        ready=False,
        released=False,
        fault="none",
        stop_switch_pressed=False,
        stop_switch_connected=True,
        watchdog_tripped=False,
    )
    return replace(state, **changes)


def supervisor(limits: SupervisorLimits = LIMITS, start_t: float = 0.0) -> Supervisor:
    return Supervisor(limits, HARD, start_t=start_t, unit=ForceUnit.N)


def tripped(trip: Trip | None, kind: TripKind) -> Trip:
    assert trip is not None, f"expected a {kind.value} trip, got none"
    assert trip.kind is kind, trip
    return trip


# --- the hard limit, on either channel ------------------------------------------------------------


@pytest.mark.parametrize("measured", [below(HARD), HARD])
def test_force_up_to_the_hard_limit_passes(measured: float) -> None:
    assert supervisor().check(reading(1.0, measured), 400.0, now=1.0) is None


def test_force_just_above_the_hard_limit_trips_with_its_evidence_and_a_locking_fault() -> None:
    state = reading(1.0, above(HARD))
    trip = tripped(supervisor().check(state, 400.0, now=1.25), TripKind.HARD_LIMIT)
    assert trip.reason == "measured 300.0 N above the hard limit 300.0 N"
    assert trip.t == 1.0 and trip.reading == state and trip.event_kind is EventKind.TRIP
    assert trip.data == {"target_n": 400.0, "limit_n": HARD, "force_n": above(HARD)}
    data = trip.event_data()
    assert (data["trip"], data["fault"], data["severity"]) == ("hard_limit", "hard_limit", "lock")
    assert data["fault_title"] == "force above the session's hard limit"
    assert data["reading"] == state.to_dict()


def test_the_redundant_channel_above_the_hard_limit_trips_naming_that_channel() -> None:
    assert supervisor().check(reading(1.0, HARD, redundant_force_n=HARD), 400.0, 1.0) is None
    state = reading(1.0, HARD, redundant_force_n=above(HARD))
    trip = tripped(supervisor().check(state, 400.0, now=1.0), TripKind.HARD_LIMIT)
    assert trip.reason == "redundant channel 300.0 N above the hard limit 300.0 N"
    assert trip.data["force_n"] == above(HARD)


def test_both_channels_equally_above_the_hard_limit_name_the_load_cell() -> None:
    state = reading(1.0, above(HARD), redundant_force_n=above(HARD))
    trip = tripped(supervisor().check(state, 400.0, now=1.0), TripKind.HARD_LIMIT)
    assert trip.reason == "measured 300.0 N above the hard limit 300.0 N"


# --- the two channels ------------------------------------------------------------------------------


@pytest.mark.parametrize("redundant", [80.0, 120.0], ids=["below", "above"])
def test_channels_disagreeing_by_exactly_the_band_pass(redundant: float) -> None:
    assert supervisor().check(reading(1.0, 100.0, redundant_force_n=redundant), 100.0, 1.0) is None


@pytest.mark.parametrize("redundant", [below(80.0), above(120.0)], ids=["below", "above"])
def test_channels_disagreeing_past_the_band_trip_with_both_values(redundant: float) -> None:
    state = reading(1.0, 100.0, redundant_force_n=redundant)
    trip = tripped(supervisor().check(state, 100.0, now=1.0), TripKind.CHANNEL_DISAGREEMENT)
    assert trip.data == {
        "target_n": 100.0,
        "band_n": 20.0,
        "measured_n": 100.0,
        "redundant_n": redundant,
    }
    assert trip.reason.startswith("load cell reads 100.0 N but the redundant channel")
    assert trip.event_data()["severity"] == "lock"


@pytest.mark.parametrize("channel", ["measured", "redundant"])
def test_a_force_that_is_not_a_number_on_either_channel_trips(channel: str) -> None:
    state = (
        reading(1.0, math.nan)
        if channel == "measured"
        else reading(1.0, 100.0, redundant_force_n=math.nan)
    )
    trip = tripped(supervisor().check(state, 100.0, now=1.0), TripKind.BAD_READING)
    assert trip.reason == f"{channel} force nan is not a number"


# --- force rising faster than a table can pull ------------------------------------------------------


def test_a_rise_of_exactly_the_allowed_amount_passes_and_more_trips_with_the_rate() -> None:
    # 400 N/s over 0.25 s plus 10 N of noise allowance: 110 N.
    s = supervisor(WIDE)
    assert s.check(reading(1.0, 100.0), 100.0, now=1.0) is None
    assert s.check(reading(1.25, 210.0), 210.0, now=1.25) is None
    s = supervisor(WIDE)
    assert s.check(reading(1.0, 100.0), 100.0, now=1.0) is None
    trip = tripped(s.check(reading(1.25, above(210.0)), 210.0, 1.25), TripKind.FORCE_RATE)
    assert trip.data["rise_n"] == above(210.0) - 100.0 and trip.data["dt_s"] == 0.25
    assert trip.data["max_rate_n_per_s"] == 400.0
    assert trip.reason == (
        "measured force rose 110.0 N in 0.250 s; a table can rise at most 110.0 N in that time"
    )


def test_a_rise_the_redundant_channel_shares_is_a_real_jolt_not_a_lying_sensor() -> None:
    # The load cell rises 150 N in 0.25 s (more than the 110 N allowed); the redundant channel
    # corroborates it when it rose at least that much less the 20 N band: 130 N.
    s = supervisor(WIDE)
    assert s.check(reading(1.0, 100.0, redundant_force_n=110.0), 100.0, 1.0) is None
    assert s.check(reading(1.25, 250.0, redundant_force_n=240.0), 250.0, now=1.25) is None
    s = supervisor(WIDE)
    assert s.check(reading(1.0, 100.0, redundant_force_n=110.25), 100.0, 1.0) is None
    lying = reading(1.25, 250.0, redundant_force_n=240.0)  # rose 129.75 N: not enough
    assert tripped(s.check(lying, 250.0, now=1.25), TripKind.FORCE_RATE)


# --- a load cell stuck while the target moves -------------------------------------------------------


def test_a_stuck_reading_trips_once_the_target_moved_the_bound_over_three_readings() -> None:
    assert STUCK_READINGS == 3
    s = supervisor()
    assert s.check(reading(1.0, 100.0), 100.0, now=1.0) is None
    assert s.check(reading(1.1, 100.0), 105.0, now=1.1) is None
    trip = tripped(s.check(reading(1.2, 100.0), 110.0, now=1.2), TripKind.STUCK_SENSOR)
    assert trip.data["readings"] == 3 and trip.data["target_moved_n"] == 10.0
    assert trip.reason == "load cell stuck at 100.0 N for 3 readings while the target moved 10.0 N"


def test_a_stuck_reading_while_the_target_moves_less_than_the_bound_passes() -> None:
    s = supervisor()
    for i, target in enumerate((100.0, 105.0, below(110.0), 100.0, 105.0)):
        t = 1.0 + i * 0.125
        assert s.check(reading(t, 100.0), target, now=t) is None


def test_a_changed_reading_restarts_the_stuck_count() -> None:
    s = supervisor()
    assert s.check(reading(1.0, 100.0), 100.0, now=1.0) is None
    assert s.check(reading(1.125, 100.0), 110.0, now=1.125) is None
    assert s.check(reading(1.25, 101.0), 120.0, now=1.25) is None  # moved: a new count
    assert s.check(reading(1.375, 101.0), 125.0, now=1.375) is None  # only two of 101.0


# --- over the target ------------------------------------------------------------------------------


@pytest.mark.parametrize("measured", [below(120.0), 120.0])
def test_force_up_to_target_plus_tolerance_passes(measured: float) -> None:
    assert supervisor().check(reading(1.0, measured), 100.0, now=1.0) is None


def test_force_just_above_target_plus_tolerance_trips_with_the_tolerance() -> None:
    state = reading(1.0, above(120.0))
    trip = tripped(supervisor().check(state, 100.0, now=1.0), TripKind.OVER_TARGET)
    assert trip.reason == "measured 120.0 N exceeds target 100.0 N by more than 20.0 N"
    assert trip.data == {"target_n": 100.0, "tolerance_n": 20.0}
    assert trip.reading == state and trip.event_data()["severity"] == "stop"


# --- tracking error held too long -------------------------------------------------------------


def test_an_error_exactly_at_the_band_never_starts_the_tracking_clock() -> None:
    s = supervisor(WIDE)
    for i in range(0, 21):  # 5 s at the band's edge, both sides
        t = 1.0 + i * 0.25
        assert s.check(reading(t, 160.0 if i % 2 else 240.0), 200.0, now=t) is None


@pytest.mark.parametrize(
    ("measured", "target"), [(0.0, above(40.0)), (above(40.0), 0.0)], ids=["under", "over"]
)
def test_an_error_past_the_band_trips_when_held_exactly_the_tracking_time(
    measured: float, target: float
) -> None:
    s = supervisor(WIDE)
    assert s.check(reading(1.0, measured), target, now=1.0) is None  # the clock starts here
    assert s.check(reading(2.0, measured), target, now=2.0) is None
    assert s.check(reading(below(3.0), measured), target, now=below(3.0)) is None
    state = reading(3.0, measured)
    trip = tripped(s.check(state, target, now=3.0), TripKind.TRACKING)
    assert trip.data == {"target_n": target, "band_n": 40.0, "held_s": 2.0}
    assert trip.reading == state
    assert trip.reason.endswith("by more than 40.0 N for 2.00 s (limit 2 s)")


def test_coming_back_inside_the_band_restarts_the_tracking_clock() -> None:
    s = supervisor()
    assert s.check(reading(1.0, 150.0), 200.0, now=1.0) is None
    assert s.check(reading(2.5, 160.0), 200.0, now=2.5) is None  # exactly at the band: inside
    assert s.check(reading(2.75, 150.0), 200.0, now=2.75) is None  # a new clock from 2.75
    assert s.check(reading(4.5, 150.0), 200.0, now=4.5) is None  # 1.75 s held: not yet
    trip = tripped(s.check(reading(4.75, 150.0), 200.0, now=4.75), TripKind.TRACKING)
    assert trip.data["held_s"] == 2.0


# --- stale, repeated, frozen and missing readings -------------------------------------------------


def test_a_reading_exactly_as_old_as_the_bound_passes_and_older_trips_with_its_age() -> None:
    assert supervisor().check(reading(1.0, 100.0), 100.0, now=1.5) is None
    state = reading(1.0, 100.0)
    trip = tripped(supervisor().check(state, 100.0, now=above(1.5)), TripKind.STALE)
    assert trip.data == {"target_n": 100.0, "age_s": above(1.5) - 1.0} and trip.reading == state
    assert trip.reason == "reading is 0.500 s old (limit 0.5 s)"


@pytest.mark.parametrize("t", [1.0, 0.5], ids=["same-time", "earlier"])
def test_a_reading_not_newer_than_the_last_good_one_trips(t: float) -> None:
    s = supervisor()
    assert s.check(reading(1.0, 100.0), 100.0, now=1.0) is None
    trip = tripped(s.check(reading(t, 100.0), 100.0, now=1.0), TripKind.STALE)
    assert trip.reason == f"reading at t={t:.3f} s repeats an earlier one"


def test_the_next_newer_reading_passes_and_becomes_the_last_good_one() -> None:
    s = supervisor()
    assert s.check(reading(1.0, 100.0), 100.0, now=1.0) is None
    assert s.check(reading(above(1.0), 100.0), 100.0, now=1.0) is None
    assert s.missing(above(1.0) + 0.5, "timeout") is None  # measured from the newer reading


def test_only_a_good_reading_counts_as_the_last_one() -> None:
    s = supervisor()
    assert s.check(reading(1.0, 100.0), 100.0, now=1.0) is None
    assert s.check(reading(2.0, 100.0, running=False), 100.0, now=2.0) is not None
    assert s.check(reading(1.5, 100.0), 100.0, now=1.5) is None  # 2.0 was never "last good"
    tripped(s.missing(2.25, "timeout"), TripKind.MISSING)  # 0.75 s after the good one at 1.5


def test_a_sample_counter_frozen_for_exactly_the_bound_passes_and_longer_trips() -> None:
    s = supervisor()
    assert s.check(reading(1.0, 100.0, sample_counter=7), 100.0, now=1.0) is None
    assert s.check(reading(1.25, 100.5, sample_counter=7), 100.0, now=1.25) is None
    assert s.check(reading(1.5, 101.0, sample_counter=7), 100.0, now=1.5) is None
    state = reading(above(1.5), 100.5, sample_counter=7)
    trip = tripped(s.check(state, 100.0, now=above(1.5)), TripKind.STALE)
    assert trip.data["sample_counter"] == 7 and trip.data["age_s"] == above(1.5) - 1.0
    assert trip.reason.startswith("the table's sample counter stayed at 7 for 0.500 s")


def test_a_sample_counter_that_moves_restarts_the_frozen_clock() -> None:
    s = supervisor()
    assert s.check(reading(1.0, 100.0, sample_counter=7), 100.0, now=1.0) is None
    assert s.check(reading(1.375, 100.5, sample_counter=8), 100.0, now=1.375) is None
    assert s.check(reading(1.75, 101.0, sample_counter=8), 100.0, now=1.75) is None  # 0.375 s


def test_missing_readings_count_from_the_start_until_the_first_good_one() -> None:
    s = supervisor(start_t=10.0)
    assert s.missing(10.5, "no answer") is None
    trip = tripped(s.missing(above(10.5), "no answer"), TripKind.MISSING)
    assert trip.t == above(10.5) and trip.reading is None
    assert trip.data == {"age_s": above(10.5) - 10.0, "error": "no answer"}
    assert trip.reason == "no valid reading for 0.500 s (limit 0.5 s): no answer"
    assert "reading" not in trip.event_data() and trip.event_data()["severity"] == "stop"


def test_missing_readings_count_from_the_last_good_one() -> None:
    s = supervisor()
    assert s.check(reading(1.0, 100.0), 100.0, now=1.0) is None
    assert s.missing(1.5, "timeout") is None
    tripped(s.missing(above(1.5), "timeout"), TripKind.MISSING)


# --- link, device and the loop itself --------------------------------------------------------------


def test_a_lost_link_trips_at_once_with_the_error() -> None:
    trip = supervisor().link_lost(2.0, "socket closed")
    assert (trip.kind, trip.reason, trip.t, trip.reading) == (
        TripKind.LINK_LOST,
        "link lost: socket closed",
        2.0,
        None,
    )
    assert trip.data == {"error": "socket closed"}
    assert trip.event_data() == {
        "trip": "link_lost",
        "fault": "link_lost",
        "severity": "stop",
        "fault_title": "link to the table lost",
        "error": "socket closed",
    }


def test_a_refused_command_trips_at_once_with_the_refusal() -> None:
    trip = supervisor().rejected(2.0, "illegal data value")
    assert (trip.kind, trip.reason, trip.t, trip.reading) == (
        TripKind.DEVICE_REJECTED,
        "table refused a command: illegal data value",
        2.0,
        None,
    )
    assert trip.data == {"error": "illegal data value"} and trip.event_kind is EventKind.TRIP


def test_a_stall_trips_with_its_gap_in_session_and_real_seconds() -> None:
    trip = supervisor().stalled(5.0, 4.0, 2.0, scale=20.0)
    assert trip.kind is TripKind.STALL and trip.t == 5.0
    assert trip.reason == "control loop stalled for 4.000 s (limit 2 s)"
    assert trip.data == {"gap_s": 4.0, "limit_s": 2.0, "real_s": 0.2}
    assert supervisor().stalled(5.0, 4.0, 2.0).data["real_s"] == 4.0  # a real-time clock


# --- the table's own status, and which reason wins ------------------------------------------------

STATUS = [
    ({"stop_switch_pressed": True}, TripKind.STOP_SWITCH, "patient pressed the stop switch"),
    (
        {"operator_stop_pressed": True},
        TripKind.OPERATOR_STOP,
        "operator pressed the table's stop button",
    ),
    (
        {"watchdog_tripped": True},
        TripKind.WATCHDOG,
        "table watchdog tripped: heartbeat lapsed on the table",
    ),
    ({"fault": "motor"}, TripKind.DEVICE_FAULT, "table fault: motor driver fault"),
    (
        {"stop_switch_connected": False},
        TripKind.STOP_SWITCH_DISCONNECTED,
        "patient stop switch disconnected",
    ),
    ({"measured_force_n": math.nan}, TripKind.BAD_READING, "measured force nan is not a number"),
    ({"measured_force_n": 400.0}, TripKind.HARD_LIMIT, "measured 400.0 N above the hard limit"),
    ({"redundant_force_n": 50.0}, TripKind.CHANNEL_DISAGREEMENT, "load cell reads"),
    ({"measured_force_n": 150.0}, TripKind.OVER_TARGET, "measured 150.0 N exceeds target"),
    ({"t": 0.25}, TripKind.STALE, "reading is 0.750 s old (limit 0.5 s)"),
    ({"running": False}, TripKind.NOT_RUNNING, "table stopped running on its own"),
]


@pytest.mark.parametrize("first", range(len(STATUS)), ids=[k.value for _, k, _ in STATUS])
def test_each_reason_wins_over_every_reason_after_it(first: int) -> None:
    """All causes from ``first`` on hold at once; the first one in the documented order is named,
    with its exact recorded reason and fault."""
    changes: dict[str, object] = {}
    for later, _, _ in reversed(STATUS[first:]):
        changes.update(later)
    state = replace(reading(1.0, 100.0), **changes)
    _, kind, reason = STATUS[first]
    trip = tripped(supervisor().check(state, 100.0, now=1.0), kind)
    assert trip.reason.startswith(reason), trip.reason
    assert trip.reading == state and trip.data["target_n"] == 100.0 and trip.t == state.t
    expected_fault = "motor" if kind is TripKind.DEVICE_FAULT else kind.value
    assert trip.event_data()["fault"] == expected_fault

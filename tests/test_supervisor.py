"""The supervisor over plain sequences of readings: each rule trips with its reason, its reading and
its fault (name and severity); reasons people read are in lbf, the data keeps newtons."""

from __future__ import annotations

from dataclasses import replace

import pytest

from devices.contract import TableState
from devices.faults import Severity
from devices.limits import SupervisorLimits
from devices.records import EventKind
from devices.supervisor import Supervisor, TripKind
from devices.units import ForceUnit

LIMITS = SupervisorLimits(
    over_target_tolerance_n=20.0,
    hard_limit_margin_n=40.0,
    tracking_band_n=40.0,
    tracking_time_s=2.0,
    staleness_s=0.5,
    heartbeat_timeout_s=1.0,
)
HARD = 300.0


def reading(t: float, measured: float, **changes: object) -> TableState:
    """A good reading at ``t``: the redundant channel agrees and the sample counter has moved."""
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
        redundant_force_n=measured - 0.5,
        sample_counter=int(t * 500) & 0xFFFF,
    )
    return replace(state, **changes)


def supervisor(unit: ForceUnit = ForceUnit.N) -> Supervisor:
    return Supervisor(LIMITS, HARD, start_t=0.0, unit=unit)


def test_good_readings_pass() -> None:
    s = supervisor()
    for i in range(1, 100):
        t = i * 0.1
        assert s.check(reading(t, 200.0 + (i % 5)), 200.0, now=t + 0.01) is None


def test_a_single_channel_table_is_supervised_without_the_redundant_checks() -> None:
    s = supervisor()
    for i in range(1, 30):
        t = i * 0.1
        state = reading(t, 200.0 + (i % 3), redundant_force_n=None, sample_counter=None)
        assert s.check(state, 200.0, now=t) is None


@pytest.mark.parametrize(
    ("changes", "kind", "reason", "named"),
    [
        (
            {"stop_switch_pressed": True, "fault": "stop_switch"},
            TripKind.STOP_SWITCH,
            "patient pressed the stop switch",
            ("stop_switch", Severity.STOP),
        ),
        (
            {"operator_stop_pressed": True, "fault": "operator_stop"},
            TripKind.OPERATOR_STOP,
            "operator pressed the table's stop button",
            ("operator_stop", Severity.STOP),
        ),
        (
            {"watchdog_tripped": True, "fault": "watchdog"},
            TripKind.WATCHDOG,
            "table watchdog tripped",
            ("watchdog", Severity.LOCK),
        ),
        (
            {"fault": "motor"},
            TripKind.DEVICE_FAULT,
            "table fault: motor driver fault",
            ("motor", Severity.LOCK),
        ),
        (
            {"fault": "overload"},
            TripKind.DEVICE_FAULT,
            "table fault: device overload",
            ("overload", Severity.LOCK),
        ),
        (
            {"fault": "force_limit"},
            TripKind.DEVICE_FAULT,
            "session force limit tripped",
            ("force_limit", Severity.LOCK),
        ),
        (
            {"stop_switch_connected": False},
            TripKind.STOP_SWITCH_DISCONNECTED,
            "patient stop switch disconnected",
            ("stop_switch_disconnected", Severity.STOP),
        ),
        (
            {"running": False},
            TripKind.NOT_RUNNING,
            "table stopped running on its own",
            ("not_running", Severity.STOP),
        ),
    ],
)
def test_status_trips(
    changes: dict[str, object], kind: TripKind, reason: str, named: tuple[str, Severity]
) -> None:
    s = supervisor()
    assert s.check(reading(1.0, 100.0), 100.0, now=1.0) is None
    bad = reading(1.1, 100.0, **changes)
    trip = s.check(bad, 100.0, now=1.1)
    assert trip is not None and trip.kind is kind and reason in trip.reason
    assert trip.reading == bad and trip.event_kind is EventKind.TRIP
    data = trip.event_data()
    assert data["reading"]["t"] == 1.1
    assert (data["fault"], data["severity"]) == (named[0], named[1].value)
    assert "code" not in str(data["fault"]) and str(data["reading"]["fault"]) == bad.fault


def test_hard_limit_trips_even_when_the_target_is_high() -> None:
    trip = supervisor().check(reading(1.0, 310.0), 300.0, now=1.0)
    assert trip is not None and trip.kind is TripKind.HARD_LIMIT
    assert trip.reason == "measured 310.0 N above the hard limit 300.0 N"
    assert trip.event_data()["severity"] == "lock"


def test_reasons_read_in_the_display_unit_and_the_data_keeps_newtons() -> None:
    trip = supervisor(ForceUnit.LBF).check(reading(1.0, 310.0), 300.0, now=1.0)
    assert trip is not None
    assert trip.reason == "measured 69.7 lbf above the hard limit 67.4 lbf"
    assert trip.data["limit_n"] == 300.0 and trip.data["force_n"] == 310.0


def test_the_hard_limit_watches_the_redundant_channel_too() -> None:
    """A load cell reading low cannot hide a tension the independent channel sees."""
    trip = supervisor().check(reading(1.0, 295.0, redundant_force_n=305.0), 300.0, now=1.0)
    assert trip is not None and trip.kind is TripKind.HARD_LIMIT
    assert trip.reason.startswith("redundant channel 305.0 N")


def test_channels_disagreeing_beyond_the_band_lock_the_table() -> None:
    s = supervisor()
    band = LIMITS.channel_disagreement_n
    assert s.check(reading(1.0, 100.0, redundant_force_n=100.0 + band - 1), 100.0, 1.0) is None
    trip = s.check(reading(1.1, 100.0, redundant_force_n=100.0 + band + 1), 100.0, 1.1)
    assert trip is not None and trip.kind is TripKind.CHANNEL_DISAGREEMENT
    data = trip.event_data()
    assert data["fault"] == "channel_disagreement" and data["severity"] == "lock"
    assert data["redundant_n"] == 100.0 + band + 1 and data["band_n"] == band


def test_a_load_cell_stuck_while_the_target_moves_trips_as_a_stuck_sensor() -> None:
    s = supervisor()
    step = LIMITS.stuck_target_change_n / 2 + 0.1  # the target moves; the reading does not
    trips = [
        s.check(reading(1.0 + i * 0.1, 66.72), 66.72 + i * step, 1.0 + i * 0.1) for i in range(3)
    ]
    assert trips[:2] == [None, None]
    trip = trips[2]
    assert trip is not None and trip.kind is TripKind.STUCK_SENSOR
    assert trip.event_data()["severity"] == "lock" and trip.data["readings"] == 3


def test_a_steady_reading_at_a_steady_target_is_not_stuck() -> None:
    s = supervisor()
    for i in range(20):
        assert s.check(reading(1.0 + i * 0.1, 66.7), 66.7, 1.0 + i * 0.1) is None


def test_force_rising_faster_than_a_table_can_pull_trips() -> None:
    """On a table with one channel this is the check left for a spiking load cell (with two, the
    channels disagree first)."""
    s = supervisor()
    single = {"redundant_force_n": None}
    assert s.check(reading(1.0, 100.0, **single), 100.0, 1.0) is None
    allowed = LIMITS.max_force_rate_n_per_s * 0.02 + LIMITS.force_rate_allowance_n
    spike = 100.0 + allowed + 5.0
    trip = s.check(reading(1.02, spike, **single), spike, 1.02)
    assert trip is not None and trip.kind is TripKind.FORCE_RATE
    assert trip.event_data()["fault"] == "implausible_force_rate"


def test_a_jolt_both_channels_see_is_judged_by_the_force_limits_not_as_a_sensor_fault() -> None:
    s = supervisor()
    assert s.check(reading(1.0, 100.0), 100.0, 1.0) is None
    jolt = reading(1.02, 160.0, redundant_force_n=160.5)
    trip = s.check(jolt, 100.0, 1.02)
    assert trip is not None and trip.kind is TripKind.OVER_TARGET


def test_a_sample_counter_that_stops_makes_the_reading_stale_whatever_its_value() -> None:
    """A frozen reading stamped with the host's clock is never old; the table's counter tells."""
    s = supervisor()
    for i in range(7):  # the reading and the counter hold; the host stamps each fresh
        t = 1.0 + i * 0.1
        result = s.check(reading(t, 100.0 + i % 2, sample_counter=4242), 100.0, t)
        if t - 1.0 <= LIMITS.staleness_s:
            assert result is None
    assert result is not None and result.kind is TripKind.STALE
    assert "sample counter stayed at 4242" in result.reason


def test_over_target_beyond_tolerance_trips() -> None:
    s = supervisor()
    assert s.check(reading(1.0, 119.0), 100.0, now=1.0) is None
    trip = s.check(reading(1.1, 121.0), 100.0, now=1.1)
    assert trip is not None and trip.kind is TripKind.OVER_TARGET
    assert trip.reason == "measured 121.0 N exceeds target 100.0 N by more than 20.0 N"


def test_tracking_error_trips_only_when_held_longer_than_the_time() -> None:
    s = supervisor()
    # Under target by 50 N (beyond the 40 N band) from t=1.0; back inside at 2.5 resets the timer.
    for t in (1.0, 1.5, 2.0):
        assert s.check(reading(t, 150.0), 200.0, now=t) is None
    assert s.check(reading(2.5, 190.0), 200.0, now=2.5) is None
    for t in (3.0, 4.0, 4.9):
        assert s.check(reading(t, 150.0), 200.0, now=t) is None
    trip = s.check(reading(5.0, 150.0), 200.0, now=5.0)
    assert trip is not None and trip.kind is TripKind.TRACKING
    assert "for 2.00 s (limit 2 s)" in trip.reason


def test_stale_reading_trips() -> None:
    trip = supervisor().check(reading(1.0, 100.0), 100.0, now=1.6)
    assert trip is not None and trip.kind is TripKind.STALE
    assert trip.reason == "reading is 0.600 s old (limit 0.5 s)"


def test_repeated_reading_trips() -> None:
    s = supervisor()
    assert s.check(reading(1.0, 100.0), 100.0, now=1.0) is None
    trip = s.check(reading(1.0, 100.0), 100.0, now=1.1)
    assert trip is not None and trip.kind is TripKind.STALE and "repeats" in trip.reason


def test_missing_readings_trip_after_the_staleness_bound() -> None:
    s = supervisor()
    assert s.check(reading(1.0, 100.0), 100.0, now=1.0) is None
    assert s.missing(1.3, "no answer") is None
    trip = s.missing(1.6, "no answer")
    assert trip is not None and trip.kind is TripKind.MISSING and trip.reading is None
    assert trip.reason == "no valid reading for 0.600 s (limit 0.5 s): no answer"


def test_link_lost_and_rejections_are_trips() -> None:
    s = supervisor()
    lost = s.link_lost(2.0, "socket closed")
    assert lost.kind is TripKind.LINK_LOST and lost.event_kind is EventKind.TRIP
    assert lost.event_data()["fault"] == "link_lost"
    assert lost.reason == "link lost: socket closed"
    refused = s.rejected(2.0, "illegal data value")
    assert refused.kind is TripKind.DEVICE_REJECTED and "refused" in refused.reason


def test_stop_switch_wins_over_the_fault_it_causes() -> None:
    both = reading(1.0, 500.0, stop_switch_pressed=True, fault="stop_switch")
    trip = supervisor().check(both, 100.0, now=1.0)
    assert trip is not None and trip.kind is TripKind.STOP_SWITCH


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_force_that_is_not_a_number_trips_at_once(bad: float) -> None:
    """NaN compares false with every limit; without this check it would pass as harmless."""
    trip = supervisor().check(reading(1.0, bad), 100.0, 1.0)
    assert trip is not None and trip.kind is TripKind.BAD_READING
    assert "is not a number" in trip.reason


def test_a_stall_is_a_named_trip() -> None:
    trip = supervisor().stalled(5.0, 1.2, 0.9)
    assert trip.kind is TripKind.STALL and trip.event_data()["fault"] == "stall"
    assert trip.reason == "control loop stalled for 1.200 s (limit 0.9 s)"

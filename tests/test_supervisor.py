"""The supervisor over plain sequences of readings: each rule trips with its reason and reading."""

from __future__ import annotations

from dataclasses import replace

import pytest

from devices.contract import TableState
from devices.limits import SupervisorLimits
from devices.records import EventKind
from devices.supervisor import Supervisor, TripKind

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
    state = TableState(
        t=t,
        measured_force_n=measured,
        target_force_n=measured,
        running=True,
        ready=False,
        released=False,
        fault_code=0,
        stop_switch_pressed=False,
        stop_switch_connected=True,
        watchdog_tripped=False,
    )
    return replace(state, **changes)


def supervisor() -> Supervisor:
    return Supervisor(LIMITS, HARD, start_t=0.0)


def test_good_readings_pass() -> None:
    s = supervisor()
    for i in range(1, 100):
        t = i * 0.1
        assert s.check(reading(t, 200.0 + (i % 5)), 200.0, now=t + 0.01) is None


@pytest.mark.parametrize(
    ("changes", "kind", "reason", "event"),
    [
        (
            {"stop_switch_pressed": True, "fault_code": 5},
            TripKind.STOP_SWITCH,
            "patient pressed the stop switch",
            EventKind.STOP_SWITCH,
        ),
        (
            {"watchdog_tripped": True, "fault_code": 4},
            TripKind.WATCHDOG,
            "table watchdog tripped",
            EventKind.FAULT,
        ),
        ({"fault_code": 2}, TripKind.DEVICE_FAULT, "device fault code 2", EventKind.FAULT),
        (
            {"stop_switch_connected": False},
            TripKind.STOP_SWITCH_DISCONNECTED,
            "patient stop switch disconnected",
            EventKind.TRIP,
        ),
        (
            {"running": False},
            TripKind.NOT_RUNNING,
            "table stopped running on its own",
            EventKind.TRIP,
        ),
    ],
)
def test_status_trips(
    changes: dict[str, object], kind: TripKind, reason: str, event: EventKind
) -> None:
    s = supervisor()
    assert s.check(reading(1.0, 100.0), 100.0, now=1.0) is None
    bad = reading(1.1, 100.0, **changes)
    trip = s.check(bad, 100.0, now=1.1)
    assert trip is not None and trip.kind is kind and reason in trip.reason
    assert trip.reading == bad and trip.event_kind is event
    assert trip.event_data()["reading"]["t"] == 1.1


def test_hard_limit_trips_even_when_the_target_is_high() -> None:
    trip = supervisor().check(reading(1.0, 310.0), 300.0, now=1.0)
    assert trip is not None and trip.kind is TripKind.HARD_LIMIT
    assert trip.reason == "measured 310.0 N above the hard limit 300.0 N"


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
    assert lost.kind is TripKind.LINK_LOST and lost.event_kind is EventKind.LINK_LOST
    assert lost.reason == "link lost: socket closed"
    refused = s.rejected(2.0, "illegal data value")
    assert refused.kind is TripKind.DEVICE_REJECTED and "refused" in refused.reason


def test_stop_switch_wins_over_the_fault_it_causes() -> None:
    both = reading(1.0, 500.0, stop_switch_pressed=True, fault_code=5)
    trip = supervisor().check(both, 100.0, now=1.0)
    assert trip is not None and trip.kind is TripKind.STOP_SWITCH


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_force_that_is_not_a_number_trips_at_once(bad: float) -> None:
    """NaN compares false with every limit; without this check it would pass as harmless."""
    trip = supervisor().check(reading(1.0, bad), 100.0, 1.0)
    assert trip is not None and trip.kind is TripKind.BAD_READING
    assert "is not a number" in trip.reason

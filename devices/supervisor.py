"""The supervisor: checks every reading of a running table and says when to let go.

It is deterministic and does no I/O: feed it readings (or the news that a reading failed) with the
session-clock time, and it returns a :class:`Trip` the first time something is wrong. The control
loop releases the table on any trip; tests drive it over plain sequences of ``TableState``.

Checks, in the order a reason is chosen when several hold at once: the patient stop switch, the
table's own watchdog, a device fault, a disconnected stop switch, the hard force limit, force above
the target by more than the tolerance, tracking error held beyond the band for too long, a stale or
repeated reading, and a table that stopped running on its own.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

from devices.contract import TableState
from devices.limits import SupervisorLimits
from devices.records import EventKind


class TripKind(enum.StrEnum):
    STOP_SWITCH = "stop_switch"
    STOP_SWITCH_DISCONNECTED = "stop_switch_disconnected"
    WATCHDOG = "watchdog"
    DEVICE_FAULT = "device_fault"
    HARD_LIMIT = "hard_limit"
    OVER_TARGET = "over_target"
    TRACKING = "tracking"
    STALE = "stale_reading"
    MISSING = "missing_reading"
    NOT_RUNNING = "not_running"
    BAD_READING = "bad_reading"
    LINK_LOST = "link_lost"
    DEVICE_REJECTED = "device_rejected"


_EVENT_KINDS = {
    TripKind.STOP_SWITCH: EventKind.STOP_SWITCH,
    TripKind.DEVICE_FAULT: EventKind.FAULT,
    TripKind.WATCHDOG: EventKind.FAULT,
    TripKind.LINK_LOST: EventKind.LINK_LOST,
}


@dataclass(frozen=True)
class Trip:
    """Why the table must be released now, and the reading (if any) that showed it."""

    kind: TripKind
    reason: str
    t: float
    reading: TableState | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def event_kind(self) -> EventKind:
        return _EVENT_KINDS.get(self.kind, EventKind.TRIP)

    def event_data(self) -> dict[str, Any]:
        d: dict[str, Any] = {"trip": self.kind.value, **self.data}
        if self.reading is not None:
            d["reading"] = self.reading.to_dict()
        return d


class Supervisor:
    """Stateful only in what the rules need: when tracking went bad, the last good reading."""

    def __init__(self, limits: SupervisorLimits, hard_limit_n: float, start_t: float) -> None:
        self.limits = limits
        self.hard_limit_n = hard_limit_n
        self._last_good_t = start_t
        self._last_reading_t: float | None = None
        self._tracking_since: float | None = None

    def check(self, state: TableState, target_n: float, now: float) -> Trip | None:
        """Judge one reading against the target the host commanded for it."""
        lim = self.limits
        m = state.measured_force_n

        def trip(kind: TripKind, reason: str, **data: Any) -> Trip:
            return Trip(kind, reason, state.t, state, {"target_n": target_n, **data})

        if state.stop_switch_pressed:
            return trip(TripKind.STOP_SWITCH, "patient pressed the stop switch")
        if state.watchdog_tripped:
            return trip(TripKind.WATCHDOG, "table watchdog tripped: heartbeat lapsed on the table")
        if state.faulted:
            return trip(TripKind.DEVICE_FAULT, f"device fault code {state.fault_code}")
        if not state.stop_switch_connected:
            return trip(TripKind.STOP_SWITCH_DISCONNECTED, "patient stop switch disconnected")
        if not math.isfinite(m):  # NaN compares false with every limit: never let it through
            return trip(TripKind.BAD_READING, f"measured force {m!r} is not a number")
        if m > self.hard_limit_n:
            return trip(
                TripKind.HARD_LIMIT,
                f"measured {m:.1f} N above the hard limit {self.hard_limit_n:.1f} N",
                limit_n=self.hard_limit_n,
            )
        if m > target_n + lim.over_target_tolerance_n:
            return trip(
                TripKind.OVER_TARGET,
                f"measured {m:.1f} N exceeds target {target_n:.1f} N by more than "
                f"{lim.over_target_tolerance_n:.1f} N",
                tolerance_n=lim.over_target_tolerance_n,
            )
        if abs(m - target_n) > lim.tracking_band_n:
            if self._tracking_since is None:
                self._tracking_since = state.t
            held = state.t - self._tracking_since
            if held >= lim.tracking_time_s:
                return trip(
                    TripKind.TRACKING,
                    f"measured {m:.1f} N off target {target_n:.1f} N by more than "
                    f"{lim.tracking_band_n:.1f} N for {held:.2f} s (limit {lim.tracking_time_s:g} s)",
                    band_n=lim.tracking_band_n,
                    held_s=held,
                )
        else:
            self._tracking_since = None
        age = now - state.t
        if age > lim.staleness_s:
            return trip(
                TripKind.STALE,
                f"reading is {age:.3f} s old (limit {lim.staleness_s:g} s)",
                age_s=age,
            )
        if self._last_reading_t is not None and state.t <= self._last_reading_t:
            return trip(TripKind.STALE, f"reading at t={state.t:.3f} s repeats an earlier one")
        if not state.running:
            return trip(TripKind.NOT_RUNNING, "table stopped running on its own")
        self._last_reading_t = state.t
        self._last_good_t = state.t
        return None

    def missing(self, now: float, error: str) -> Trip | None:
        """A reading failed (timeout, bad frame): trip once the last good one is too old."""
        age = now - self._last_good_t
        if age > self.limits.staleness_s:
            return Trip(
                TripKind.MISSING,
                f"no valid reading for {age:.3f} s (limit {self.limits.staleness_s:g} s): {error}",
                now,
                None,
                {"age_s": age, "error": error},
            )
        return None

    def link_lost(self, now: float, error: str) -> Trip:
        return Trip(TripKind.LINK_LOST, f"link lost: {error}", now, None, {"error": error})

    def rejected(self, now: float, error: str) -> Trip:
        return Trip(
            TripKind.DEVICE_REJECTED,
            f"table refused a command: {error}",
            now,
            None,
            {"error": error},
        )

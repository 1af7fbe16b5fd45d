"""The supervisor: checks every reading of a running table and says when to let go.

It is deterministic and does no I/O: feed it readings (or the news that a reading failed) with the
session-clock time, and it returns a :class:`Trip` the first time something is wrong. The control
loop releases the table on any trip; tests drive it over plain sequences of ``TableState``.

Checks, in the order a reason is chosen when several hold at once: the patient stop switch, the
operator's stop, the table's own watchdog, a device fault, a disconnected stop switch, a force that
is not a number, the hard force limit (on either force channel), the two channels disagreeing, a
force rising faster than the table can pull, a load cell stuck while the target moves, force above
the target, tracking error held too long, a stale reading (old, repeated, or a table sample counter
that stopped), and a table that stopped running on its own.

Every trip names its fault from :mod:`devices.faults` (name and severity). Reasons are for people,
so forces in them are in the display unit; the event data keeps newtons.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devices.contract import TableState
from devices.faults import Fault, fault
from devices.limits import SupervisorLimits
from devices.records import EventKind
from devices.units import ForceUnit, format_force

STUCK_READINGS = 3  # bit-identical readings in a row, with the target moving, make a stuck sensor


class TripKind(enum.StrEnum):
    """Which rule tripped. Each names a fault of the vocabulary, except ``device_fault``, whose
    fault is the one the table reported."""

    STOP_SWITCH = "stop_switch"
    OPERATOR_STOP = "operator_stop"
    STOP_SWITCH_DISCONNECTED = "stop_switch_disconnected"
    WATCHDOG = "watchdog"
    DEVICE_FAULT = "device_fault"
    HARD_LIMIT = "hard_limit"
    CHANNEL_DISAGREEMENT = "channel_disagreement"
    FORCE_RATE = "implausible_force_rate"
    STUCK_SENSOR = "stuck_sensor"
    OVER_TARGET = "over_target"
    TRACKING = "tracking"
    STALE = "stale_reading"
    MISSING = "missing_reading"
    NOT_RUNNING = "not_running"
    BAD_READING = "bad_reading"
    LINK_LOST = "link_lost"
    DEVICE_REJECTED = "device_rejected"
    STALL = "stall"


@dataclass(frozen=True)
class Trip:
    """Why the table must be released now, the fault it names, and the reading that showed it."""

    kind: TripKind
    reason: str
    t: float
    reading: TableState | None = None
    data: dict[str, Any] = field(default_factory=dict)
    fault_name: str = ""

    @property
    def fault(self) -> Fault:
        return fault(self.fault_name or self.kind.value)

    @property
    def event_kind(self) -> EventKind:
        """Every trip is a TRIP event, so whatever keys on trips (lockouts) sees them all."""
        return EventKind.TRIP

    def event_data(self) -> dict[str, Any]:
        named = self.fault
        d: dict[str, Any] = {
            "trip": self.kind.value,
            "fault": named.name,
            "severity": named.severity.value,
            "fault_title": named.title,
            **self.data,
        }
        if self.reading is not None:
            d["reading"] = self.reading.to_dict()
        return d


class Supervisor:
    """Stateful only in what the rules need: when tracking went bad, the last good reading, the
    last load-cell value and sample counter and since when they held."""

    def __init__(
        self,
        limits: SupervisorLimits,
        hard_limit_n: float,
        start_t: float,
        unit: ForceUnit = ForceUnit.LBF,
    ) -> None:
        self.limits = limits
        self.hard_limit_n = hard_limit_n
        self.unit = unit
        self._last_good_t = start_t
        self._last_reading_t: float | None = None
        self._tracking_since: float | None = None
        self._last_measured: tuple[float, float, float | None] | None = None  # (t, load, redundant)
        self._same: list[float] = []  # targets of the readings that repeated one value exactly
        self._counter: int | None = None
        self._counter_since = start_t

    def _f(self, force_n: float) -> str:
        return format_force(force_n, self.unit)

    def check(self, state: TableState, target_n: float, now: float) -> Trip | None:
        """Judge one reading against the target the host commanded for it."""
        lim = self.limits
        m = state.measured_force_n
        r = state.redundant_force_n
        f = self._f

        def trip(kind: TripKind, reason: str, fault_name: str = "", **data: Any) -> Trip:
            return Trip(kind, reason, state.t, state, {"target_n": target_n, **data}, fault_name)

        if state.stop_switch_pressed:
            return trip(TripKind.STOP_SWITCH, "patient pressed the stop switch")
        if state.operator_stop_pressed:
            return trip(TripKind.OPERATOR_STOP, "operator pressed the table's stop button")
        if state.watchdog_tripped:
            return trip(TripKind.WATCHDOG, "table watchdog tripped: heartbeat lapsed on the table")
        if state.faulted:
            named = fault(state.fault)
            return trip(TripKind.DEVICE_FAULT, f"table fault: {named.title}", named.name)
        if not state.stop_switch_connected:
            return trip(TripKind.STOP_SWITCH_DISCONNECTED, "patient stop switch disconnected")
        for channel, value in (("measured", m), ("redundant", r)):
            # NaN compares false with every limit: never let it through.
            if value is not None and not math.isfinite(value):
                return trip(TripKind.BAD_READING, f"{channel} force {value!r} is not a number")
        highest = max(m, r) if r is not None else m
        if highest > self.hard_limit_n:
            which = "redundant channel" if r is not None and r > m else "measured"
            return trip(
                TripKind.HARD_LIMIT,
                f"{which} {f(highest)} above the hard limit {f(self.hard_limit_n)}",
                limit_n=self.hard_limit_n,
                force_n=highest,
            )
        if r is not None and abs(m - r) > lim.channel_disagreement_n:
            return trip(
                TripKind.CHANNEL_DISAGREEMENT,
                f"load cell reads {f(m)} but the redundant channel {f(r)}: they disagree by more "
                f"than {f(lim.channel_disagreement_n)}",
                band_n=lim.channel_disagreement_n,
                measured_n=m,
                redundant_n=r,
            )
        rate_trip = self._rate(state, trip)
        if rate_trip is not None:
            return rate_trip
        if self._same and m == self._last_value():
            self._same.append(target_n)
        else:
            self._same = [target_n]
        moved = max(self._same) - min(self._same)
        if len(self._same) >= STUCK_READINGS and moved >= lim.stuck_target_change_n:
            return trip(
                TripKind.STUCK_SENSOR,
                f"load cell stuck at {f(m)} for {len(self._same)} readings while the target "
                f"moved {f(moved)}",
                readings=len(self._same),
                target_moved_n=moved,
            )
        self._last_measured = (state.t, m, r)
        if m > target_n + lim.over_target_tolerance_n:
            return trip(
                TripKind.OVER_TARGET,
                f"measured {f(m)} exceeds target {f(target_n)} by more than "
                f"{f(lim.over_target_tolerance_n)}",
                tolerance_n=lim.over_target_tolerance_n,
            )
        if abs(m - target_n) > lim.tracking_band_n:
            if self._tracking_since is None:
                self._tracking_since = state.t
            held = state.t - self._tracking_since
            if held >= lim.tracking_time_s:
                return trip(
                    TripKind.TRACKING,
                    f"measured {f(m)} off target {f(target_n)} by more than "
                    f"{f(lim.tracking_band_n)} for {held:.2f} s (limit {lim.tracking_time_s:g} s)",
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
        if state.sample_counter is not None:
            if state.sample_counter != self._counter:
                self._counter, self._counter_since = state.sample_counter, state.t
            elif state.t - self._counter_since > lim.staleness_s:
                held = state.t - self._counter_since
                return trip(
                    TripKind.STALE,
                    f"the table's sample counter stayed at {state.sample_counter} for "
                    f"{held:.3f} s (limit {lim.staleness_s:g} s): its readings are frozen",
                    age_s=held,
                    sample_counter=state.sample_counter,
                )
        if not state.running:
            return trip(TripKind.NOT_RUNNING, "table stopped running on its own")
        self._last_reading_t = state.t
        self._last_good_t = state.t
        return None

    def _last_value(self) -> float | None:
        return self._last_measured[1] if self._last_measured is not None else None

    def _rate(self, state: TableState, trip: Callable[..., Trip]) -> Trip | None:
        """Force rising faster than a table can pull (plus an allowance for noise) is a sensor
        lying, not physics, unless the independent channel rose with it (a real jolt, which the
        force limits judge)."""
        if self._last_measured is None:
            return None
        last_t, last_m, last_r = self._last_measured
        dt = state.t - last_t
        rise = state.measured_force_n - last_m
        lim = self.limits
        allowed = lim.max_force_rate_n_per_s * max(dt, 0.0) + lim.force_rate_allowance_n
        r = state.redundant_force_n
        corroborated = (
            r is not None and last_r is not None and r - last_r >= rise - lim.channel_disagreement_n
        )
        if rise > allowed and not corroborated:
            return trip(
                TripKind.FORCE_RATE,
                f"measured force rose {self._f(rise)} in {dt:.3f} s; a table can rise at most "
                f"{self._f(allowed)} in that time",
                rise_n=rise,
                dt_s=dt,
                max_rate_n_per_s=lim.max_force_rate_n_per_s,
            )
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

    def stalled(self, now: float, gap_s: float, bound_s: float, scale: float = 1.0) -> Trip:
        """The loop itself did not run for ``gap_s`` (session seconds, ``scale`` times real
        seconds), beyond ``bound_s``."""
        return Trip(
            TripKind.STALL,
            f"control loop stalled for {gap_s:.3f} s (limit {bound_s:g} s)",
            now,
            None,
            {"gap_s": gap_s, "limit_s": bound_s, "real_s": gap_s / scale},
        )

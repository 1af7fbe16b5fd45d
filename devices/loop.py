"""The control loop: runs one profile on one table, supervised, and publishes what happened.

Each tick, at a deadline (never ``sleep(period)``, which drifts): take pending requests (pause,
resume, stop, release, settings), compute the target, heartbeat, write the target if it changed, read
the state, supervise the reading, publish. The commanded target never moves faster than the profile's
ramp rate, so a live settings change or a resume ramps rather than jumps.

Whatever ends the run (the profile finishing, a trip, a stop request, an exception, a dropped link,
the task being cancelled), the ``finally`` releases the table in a shielded task with bounded retries
and publishes ``Finished``. If the link is dead the release cannot arrive; the table's own heartbeat
watchdog, armed before start, lets go within its timeout. The loop awaits only the table and the
clock: subscribers must enqueue and return, and one that raises is isolated by the stream.

Stalls are safe: the commanded target moves at most ramp rate x the nominal tick period per tick,
whatever real time elapsed, so a host frozen for 0.8 s resumes ramping instead of stepping (a
controlled stop comes down at the ramp rate in real time instead: late ticks never keep force on). Every
tick that starts later than 1.5 periods after the one before is an overrun; each run of overruns is
recorded as one warning with its count and the longest gap, and a gap beyond the supervisor's
``max_stall_s`` trips, whether the loop sees it at the next tick or in a tick's own calls (a host
frozen mid-call sees the call fail on the thaw: that is its stall, not the table's silence).

Before start, a table with the single-fault features gets the session's hard limit as its own force
limit, and the loop reads it back: a table that does not hold the limit written is not started. A
table without the features is refused unless ``configs/safety.toml`` allows its model, and then
every start warns.

Tick rates are real-time (the wire is real); on a scaled clock one tick spans ``scale / tick_hz``
seconds of session time. All supervisor bounds are session time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import uuid
from dataclasses import dataclass, replace
from typing import Any

import structlog

from devices.clock import Clock
from devices.contract import DeviceInfo, StopKind, Table, TableState
from devices.errors import ConfigError, DeviceRejected, LinkLost, TableError, TractionError
from devices.faults import fault
from devices.limits import (
    PatientFacts,
    SafetyLimits,
    Violation,
    blocking,
    validate,
    warnings,
)
from devices.profiles import ForceProfile
from devices.records import Event, EventKind, Finished, Outcome, Phase, Record, Sample, Started
from devices.stream import Stream
from devices.supervisor import Supervisor, Trip
from devices.units import ForceUnit, format_force

log = structlog.get_logger(__name__)

TICK_RATES_HZ = (50.0, 25.0, 20.0, 10.0, 5.0)
WIRE_MARGIN = 2.0  # the default rate leaves the wire at most half of each tick ...
# ... except on a slow link, where no standard rate leaves half (line-v1 at 9600 baud needs 126 ms a
# tick): there the slowest standard rate is the default if the wire needs at most two thirds of its
# period. The fault matrix (RELIABILITY.md) runs line-v1 at 9600 baud on this default.
SLOW_LINK_MARGIN = 1.5
MIN_HEARTBEAT_TICKS = 5  # the table's watchdog must outlast this many ticks
# ... and at least this much real time: on a scaled clock (simulators only) five ticks of session
# time can be a tenth of a real second, less than one garbage collection or export can stall us.
MIN_WATCHDOG_REAL_S = 0.5
# ... and the stall bound likewise, so a scaled clock does not turn a hiccup into a trip.
MIN_STALL_REAL_S = 0.5
# ... and a reading's age: at x5 the shipped 0.5 s would be 100 ms of real time, one busy moment
# of the machine. At x1 (every real table) the configured bound stands: it is above this.
MIN_STALENESS_REAL_S = 0.3
OVERRUN_FACTOR = 1.5  # a tick starting this many periods after the last one overran
FORCE_LIMIT_TOLERANCE_N = 0.5  # read-back may differ by register rounding (0.1 lbf), no more
_TARGET_EPS_N = 0.01
# While stopping, a reading is judged against the highest target in force this long before it
# (the one commanded before the reading's tick always counts: the table had it until then).
# A stop catches up with its real-time ramp-down after a late tick by lowering the target at once
# (at most ramp rate x the 0.9 s stall bound: 9 lbf at 10 lbf/s), and the table follows at its
# motor's speed (the simulators' 150 N/s: a third of a second for that). Force above the lowered
# target in that time is the release still under way, not a table pulling harder than told; a
# table pulling harder than anything commanded in the last half second still trips.
_STOP_LAG_S = 0.5


def default_tick_hz(wire_s: float, table: str = "table") -> float:
    """The fastest standard rate whose period is at least twice the tick's time on the wire; on a
    slow link, the slowest standard rate if its period is at least 1.5 times that time."""
    for hz in TICK_RATES_HZ:
        if 1.0 / hz >= WIRE_MARGIN * wire_s:
            return hz
    slowest = TICK_RATES_HZ[-1]
    if 1.0 / slowest >= SLOW_LINK_MARGIN * wire_s:
        return slowest
    most = f"at most {math.floor(1.0 / wire_s):g} Hz" if wire_s <= 1.0 else "no rate fits"
    raise ConfigError(
        f"tick rate for {table}",
        f"one tick takes {wire_s * 1000:.1f} ms on the wire; even {slowest:g} Hz "
        f"({1000 / slowest:.0f} ms) leaves too little margin; use a faster link (a higher baud "
        f"rate), or choose the control rate with `traction run --tick-hz` ({most})",
    )


def check_tick_hz(hz: float, wire_s: float, table: str = "table") -> float:
    """``hz`` if the wire can carry it, else a ConfigError with the numbers."""
    if not hz > 0:
        raise ConfigError(f"tick rate for {table}", f"{hz} Hz must be above zero")
    if 1.0 / hz < wire_s:
        raise ConfigError(
            f"tick rate for {table}",
            f"{hz:g} Hz gives {1000 / hz:.1f} ms per tick but one tick (heartbeat, target, "
            f"state) takes {wire_s * 1000:.1f} ms on the wire; use at most "
            f"{math.floor(1.0 / wire_s):g} Hz (default {default_tick_hz(wire_s, table):g} Hz)",
        )
    return hz


class StartRefused(TractionError):
    """The session cannot start: violations of the limits, or the table is not ready."""

    def __init__(self, reasons: list[str], violations: list[Violation] | None = None) -> None:
        self.reasons = reasons
        self.violations = violations or []
        super().__init__("session not started: " + "; ".join(reasons))


@dataclass(frozen=True)
class _Request:
    kind: str  # pause, resume, stop, release, profile
    reason: str
    profile: ForceProfile | None = None
    data: dict[str, Any] | None = None


class ControlLoop:
    """Runs ``profile`` on a connected ``table`` for one session; ``run()`` once.

    Control methods (``pause``, ``resume``, ``stop``, ``release``, ``request_stop``,
    ``update_profile``) are synchronous, safe to call from subscribers and other tasks on the same
    event loop, and take effect at the next tick.
    """

    def __init__(
        self,
        table: Table,
        profile: ForceProfile,
        *,
        patient: PatientFacts,
        limits: SafetyLimits,
        clock: Clock,
        stream: Stream | None = None,
        tick_hz: float | None = None,
        operator_confirmed: bool = False,
        run_id: str | None = None,
        release_attempts: int = 3,
        extra: dict[str, Any] | None = None,
        label: str | None = None,
        unit: ForceUnit = ForceUnit.LBF,
    ) -> None:
        self.table = table
        self.patient = patient
        self.limits = limits
        self.clock = clock
        self.stream = stream if stream is not None else Stream()
        wire = table.tick_wire_seconds
        self.tick_hz = (
            default_tick_hz(wire, table.name)
            if tick_hz is None
            else check_tick_hz(tick_hz, wire, table.name)
        )
        self.tick_s = clock.scale / self.tick_hz  # session seconds per tick
        self.heartbeat_timeout_s = max(
            limits.supervisor.heartbeat_timeout_s,
            MIN_HEARTBEAT_TICKS * self.tick_s,
            MIN_WATCHDOG_REAL_S * clock.scale,
        )
        self.stall_bound_s = max(
            limits.supervisor.max_stall_s, MIN_STALL_REAL_S * clock.scale, 2 * self.tick_s
        )
        self.staleness_s = max(limits.supervisor.staleness_s, MIN_STALENESS_REAL_S * clock.scale)
        self.unit = unit  # for reasons people read; data stays in newtons
        self.operator_confirmed = operator_confirmed
        self.run_id = run_id or uuid.uuid4().hex
        self.release_attempts = max(1, release_attempts)
        self.extra = dict(extra or {})
        self.label = label or table.name  # how the clinic names the table in the record
        self._profile = profile
        self._device: DeviceInfo | None = None
        self._requests: list[_Request] = []
        self._started = False
        self._samples = 0
        self._paused = False
        self._profile_t = 0.0
        self._stop_reason = ""
        self.overruns = 0  # ticks that overran, over the whole run
        self._run_count = 0  # the current run of overruns ...
        self._run_longest = 0.0  # ... and its longest gap (session seconds)
        self.outcome: Outcome | None = None
        self.reason = ""

    # ----- control from outside (next tick) ---------------------------------------------------
    @property
    def profile(self) -> ForceProfile:
        return self._profile

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def profile_t(self) -> float:
        """Seconds into the profile (the session clock, which waits while paused)."""
        return self._profile_t

    def pause(self, reason: str = "operator pause") -> None:
        """Hold the current force; the profile's clock waits until ``resume``."""
        self._requests.append(_Request("pause", reason))

    def resume(self, reason: str = "operator resume") -> None:
        self._requests.append(_Request("resume", reason))

    def stop(self, reason: str = "operator stop") -> None:
        """Controlled stop: ramp to zero at the profile's rate, then release; outcome stopped."""
        self.request_stop(StopKind.CONTROLLED, reason)

    def release(self, reason: str = "operator emergency release") -> None:
        """Emergency release at the next tick; outcome stopped."""
        self.request_stop(StopKind.RELEASE, reason)

    def request_stop(self, kind: StopKind, reason: str) -> None:
        """Stop the session (controlled ramp-down or immediate release), for any caller with a
        reason: the operator, the recorder when the journal cannot be written, a view."""
        # anything but an explicit release stops under control: a stop request never fails
        self._requests.append(_Request("release" if kind is StopKind.RELEASE else "stop", reason))

    def update_profile(
        self, profile: ForceProfile, operator_confirmed: bool = False, reason: str = "operator"
    ) -> list[Violation]:
        """Change settings live. Returns every violation; with none blocking, the change applies
        at the next tick (ramping to the new curve) and is recorded as an event; otherwise it is
        refused and the refusal recorded. Before the start (the table not yet identified) every
        change is refused: unchecked, it would apply at the first tick."""
        if self._device is None:  # nothing to check it against yet, and no record to note it in
            return [
                Violation(
                    "session",
                    "not started",
                    "running",
                    "the session has not started, so the change cannot be checked against its "
                    "table; change the prescription and start again instead",
                )
            ]
        violations: list[Violation] = []
        if profile.region is not self._profile.region:
            violations.append(
                Violation(
                    "region",
                    profile.region.value,
                    self._profile.region.value,
                    f"region {profile.region.value} differs from the running session's "
                    f"{self._profile.region.value}; start a new session instead",
                )
            )
        violations += validate(profile, self.patient, self.limits, self._device, operator_confirmed)
        data = {
            "old": self._profile.to_dict(),
            "new": profile.to_dict(),
            "violations": [v.to_dict() for v in violations],
        }
        if blocking(violations):
            self._publish(
                Event(
                    self.run_id,
                    self.clock.now(),
                    EventKind.WARNING,
                    f"settings change refused ({reason}): "
                    + "; ".join(str(v) for v in blocking(violations)),
                    data,
                )
            )
        else:
            self._requests.append(_Request("profile", reason, profile, data))
        return violations

    # ----- the run ----------------------------------------------------------------------------
    async def run(self) -> Finished:
        """Validate, start, tick until the end, release. Raises :class:`StartRefused` (nothing
        started) if a limit is violated or the table is not ready; otherwise always returns the
        ``Finished`` record, except that cancellation is re-raised after the release."""
        if self._started:
            raise RuntimeError("a ControlLoop runs once; build a new one for the next session")
        self._started = True
        device = await self.table.identify()
        self._device = device
        violations = validate(
            self._profile, self.patient, self.limits, device, self.operator_confirmed
        )
        if blocking(violations):
            raise StartRefused([str(v) for v in blocking(violations)], violations)
        before = await self.table.read_state()
        not_ready = _not_ready(before)
        if not_ready:
            raise StartRefused(not_ready)
        hard_limit = self.limits.hard_limit_n(self._profile, device)
        features = self.table.safety_features
        single_fault_warning = self._check_features(device)
        force_limit = await self._arm_force_limit(hard_limit) if features.force_limit else None

        t0 = self.clock.now()
        self._publish(
            Started(
                run_id=self.run_id,
                t=t0,
                wall=self.clock.wall(t0),
                table=self.label,
                device=device.to_dict(),
                profile=self._profile.to_dict(),
                limits=self.limits.to_dict(),
                tick_hz=self.tick_hz,
                time_scale=self.clock.scale,
                extra={
                    **self.extra,
                    "patient": self.patient.to_dict(),
                    "operator_confirmed": self.operator_confirmed,
                    "warnings": [v.to_dict() for v in warnings(violations)],
                    "heartbeat_timeout_s": self.heartbeat_timeout_s,
                    "hard_limit_n": hard_limit,
                    "table_force_limit_n": force_limit,
                    "safety_features": features.to_dict(),
                    "max_stall_s": self.stall_bound_s,
                    "staleness_s": self.staleness_s,
                    "tick_wire_s": self.table.tick_wire_seconds,
                },
            )
        )
        for warning in warnings(violations):
            self._event(t0, EventKind.WARNING, str(warning), warning.to_dict())
        if single_fault_warning:
            self._event(
                t0,
                EventKind.WARNING,
                single_fault_warning,
                {"missing": features.missing, "safety_features": features.to_dict()},
            )

        outcome, reason = Outcome.INTERRUPTED, "ended before the first tick"
        cancelled = False
        try:
            await self.table.set_heartbeat_timeout(self.heartbeat_timeout_s)
            await self.table.set_target(0.0)
            await self.table.heartbeat()
            await self.table.start()
            outcome, reason = await self._ticks(
                Supervisor(
                    replace(self.limits.supervisor, staleness_s=self.staleness_s),
                    hard_limit,
                    t0,
                    self.unit,
                )
            )
        except asyncio.CancelledError:
            cancelled = True
            reason = "control task cancelled"
        except TableError as error:
            reason = f"table error: {error}"
        except Exception as error:  # any bug still ends with a released table and a record
            log.exception("control loop failed", run_id=self.run_id)
            reason = f"control loop error: {type(error).__name__}: {error}"
        finally:
            finished = await self._finish(outcome, reason)
        if cancelled:
            raise asyncio.CancelledError
        return finished

    async def _ticks(self, supervisor: Supervisor) -> tuple[Outcome, str]:
        start = last = self.clock.now()
        k = 0
        commanded = 0.0
        written: float | None = 0.0
        stopping = False
        phase: Phase | None = None
        missing_streak = 0
        recent: collections.deque[tuple[float, float]] = collections.deque()  # (t, commanded)
        while True:
            now = self.clock.now()
            dt = max(0.0, now - last)
            last = now
            # 0. the loop's own timing: a stall trips, an overrun is counted
            if k > 0:
                if dt > self.stall_bound_s:
                    self._close_overruns(now)
                    stall = supervisor.stalled(now, dt, self.stall_bound_s, self.clock.scale)
                    self._event(stall.t, stall.event_kind, stall.reason, stall.event_data())
                    return Outcome.TRIPPED, stall.reason
                if dt > OVERRUN_FACTOR * self.tick_s:
                    self.overruns += 1
                    self._run_count += 1
                    self._run_longest = max(self._run_longest, dt)
                else:
                    self._close_overruns(now)
            # 1. requests
            for request in self._take_requests():
                ended = self._apply(request, now)
                if ended is not None:
                    return ended
                if request.kind == "stop":
                    stopping = True
            # 2. where the profile is, and the target to command
            profile = self._profile
            if not self._paused and not stopping:
                self._profile_t += dt
            wanted, tick_phase = profile.target_at(self._profile_t)
            if stopping:
                wanted, tick_phase = 0.0, Phase.STOPPING
            elif self._paused:
                wanted, tick_phase = commanded, Phase.PAUSED
            # Up per tick, never per elapsed time: after a stall the target ramps on, it never
            # steps. Down while stopping, at the ramp rate in real time: ticks that run late (a
            # starved host, a slow link) must not keep force on the patient longer than the
            # prescribed ramp-down, and a lower force is the safe direction.
            step = profile.ramp_n_per_s * self.tick_s * 1.001 + 1e-6
            down = max(step, profile.ramp_n_per_s * dt * 1.001) if stopping else step
            commanded = min(commanded + step, max(commanded - down, wanted))
            recent.append((now, commanded))
            while len(recent) > 1 and recent[1][0] <= now - _STOP_LAG_S:
                recent.popleft()  # in force until recent[1] was commanded: long enough ago
            # 3. the wire
            trip: Trip | None = None
            state: TableState | None = None
            try:
                await self.table.heartbeat()
                if written is None or abs(commanded - written) > _TARGET_EPS_N:
                    await self.table.set_target(commanded)
                    written = commanded
                state = await self.table.read_state()
            except LinkLost as error:
                trip = supervisor.link_lost(self.clock.now(), str(error))
            except DeviceRejected as error:
                trip = supervisor.rejected(self.clock.now(), str(error))
            except TableError as error:  # timeout or garbled reply: one missed reading
                missing_streak += 1
                written = None  # unknown whether it arrived: write it again next tick
                trip = supervisor.missing(self.clock.now(), str(error))
                if trip is None and missing_streak == 1:
                    self._event(self.clock.now(), EventKind.WARNING, f"reading missed: {error}")
            # A tick whose calls outlasted the stall bound is a stall as well: the host was frozen
            # or starved mid-call (a call failing on the thaw says nothing about the table).
            called = self.clock.now()
            spent = called - now
            # 4. supervise and publish
            if state is not None:
                if missing_streak:
                    self._event(
                        state.t,
                        EventKind.WARNING,
                        f"readings resumed after {missing_streak} missed",
                        {"missed": missing_streak},
                    )
                    missing_streak = 0
                if tick_phase != phase:
                    self._event(
                        state.t,
                        EventKind.PHASE,
                        f"phase {tick_phase.value}",
                        {"phase": tick_phase.value, "from": phase.value if phase else None},
                    )
                    phase = tick_phase
                self._samples += 1
                self._publish(
                    Sample(
                        self.run_id,
                        self._samples,
                        state.t,
                        commanded,
                        state.measured_force_n,
                        tick_phase,
                        profile.cycle_at(self._profile_t),
                    )
                )
                judged = max(c for _, c in recent) if stopping else commanded
                # Aged as of the calls' end: a host frozen later in this tick (publishing) has
                # not let the reading go stale, it has stalled, and the next tick trips on that.
                trip = supervisor.check(state, judged, called)
            if spent > self.stall_bound_s:
                trip = supervisor.stalled(called, spent, self.stall_bound_s, self.clock.scale)
            if trip is not None:
                self._close_overruns(trip.t)  # what led up to the trip comes before it
                self._event(trip.t, trip.event_kind, trip.reason, trip.event_data())
                return Outcome.TRIPPED, trip.reason
            if commanded <= _TARGET_EPS_N and state is not None:
                if stopping:
                    return Outcome.STOPPED, self._stop_reason
                if tick_phase is Phase.DONE:
                    return Outcome.COMPLETED, "profile completed"
            # 5. the next deadline (a late tick skips to the next one ahead: no catch-up burst)
            k += 1
            deadline = start + k * self.tick_s
            after = self.clock.now()
            if after > deadline:
                k = math.floor((after - start) / self.tick_s) + 1
                deadline = start + k * self.tick_s
            await self.clock.sleep_until(deadline)

    def _close_overruns(self, now: float) -> None:
        """Record the run of overruns that just ended (if any) as one warning."""
        if not self._run_count:
            return
        count, longest = self._run_count, self._run_longest
        self._run_count, self._run_longest = 0, 0.0
        period_ms = 1000 / self.tick_hz
        longest_ms = 1000 * longest / self.clock.scale
        self._event(
            now,
            EventKind.WARNING,
            f"{count} tick(s) overran their {period_ms:.0f} ms period; the longest gap was "
            f"{longest_ms:.0f} ms (the target still moved at most one tick's ramp per tick)",
            {
                "overruns": count,
                "longest_gap_s": longest,
                "longest_gap_real_s": longest / self.clock.scale,
                "period_s": self.tick_s,
                "total_overruns": self.overruns,
            },
        )

    def _check_features(self, device: DeviceInfo) -> str:
        """Refuse a table without the single-fault features unless its model is allowed; for an
        allowed one, the warning every start records."""
        missing = self.table.safety_features.missing
        if not missing:
            return ""
        lacks = ", ".join(missing)
        if device.model not in self.limits.single_fault_exempt_models:
            raise StartRefused(
                [
                    f"table {self.table.name} (model {device.model!r}) lacks {lacks}, so one "
                    "failed sensor could pull past the prescription; use a table (or map) with "
                    "them, or allow this model in safety.toml [single_fault] allow_models"
                ]
            )
        return (
            f"table {self.table.name} (model {device.model!r}) is not single-fault safe: it lacks "
            f"{lacks}; allowed by safety.toml [single_fault]"
        )

    async def _arm_force_limit(self, limit_n: float) -> float:
        """Write the session's force limit to the table and read it back; refuse to start unless
        the table holds what was written."""
        try:
            await self.table.set_force_limit(limit_n)
        except DeviceRejected as error:
            raise StartRefused(
                [
                    f"table {self.table.name} refused the force limit "
                    f"{format_force(limit_n, self.unit)} ({error.message}); check the table "
                    "before treatment"
                ]
            ) from None
        held = await self.table.read_force_limit()
        if not math.isfinite(held) or abs(held - limit_n) > FORCE_LIMIT_TOLERANCE_N:
            raise StartRefused(
                [
                    f"table {self.table.name} holds a force limit of {format_force(held, self.unit)}"
                    f" after {format_force(limit_n, self.unit)} was written; check the table "
                    "before treatment"
                ]
            )
        return held

    def _take_requests(self) -> list[_Request]:
        requests, self._requests = self._requests, []
        # An emergency release goes first: nothing else matters once it is asked for.
        return sorted(requests, key=lambda r: r.kind != "release")

    def _apply(self, request: _Request, now: float) -> tuple[Outcome, str] | None:
        if request.kind == "release":
            self._event(now, EventKind.STOP_REQUESTED, request.reason, {"kind": "release"})
            return Outcome.STOPPED, request.reason
        if request.kind == "stop":
            if not self._stop_reason:
                self._stop_reason = request.reason
                self._event(now, EventKind.STOP_REQUESTED, request.reason, {"kind": "controlled"})
        elif request.kind == "pause" and not self._paused:
            self._paused = True
            self._event(now, EventKind.PAUSE, request.reason, {"profile_t": self._profile_t})
        elif request.kind == "resume" and self._paused:
            self._paused = False
            self._event(now, EventKind.RESUME, request.reason, {"profile_t": self._profile_t})
        elif request.profile is not None:  # a settings change, the one request carrying a profile
            self._profile = request.profile
            self._event(
                now,
                EventKind.SETTINGS_CHANGED,
                f"settings changed ({request.reason})",
                {**(request.data or {}), "profile_t": self._profile_t},
            )
        return None

    # ----- the end ----------------------------------------------------------------------------
    async def _finish(self, outcome: Outcome, reason: str) -> Finished:
        self._close_overruns(self.clock.now())
        release = asyncio.ensure_future(self._release_table())
        while True:
            try:
                released, detail = await asyncio.shield(release)
                break
            except asyncio.CancelledError:
                continue  # cancelled again while releasing: the release still finishes
        now = self.clock.now()
        if released:
            self._event(now, EventKind.RELEASED, "table released", {"detail": detail})
        else:
            self._event(
                now,
                EventKind.WARNING,
                f"release not confirmed ({detail}); the table's watchdog releases it within "
                f"{self.heartbeat_timeout_s:g} s of the last heartbeat",
                {"heartbeat_timeout_s": self.heartbeat_timeout_s},
            )
        self.outcome, self.reason = outcome, reason
        finished = Finished(self.run_id, now, self.clock.wall(now), outcome, reason, self._samples)
        self._publish(finished)
        return finished

    async def _release_table(self) -> tuple[bool, str]:
        errors = []
        for attempt in range(1, self.release_attempts + 1):
            try:
                await self.table.stop(StopKind.RELEASE)
                return True, f"attempt {attempt}"
            except TableError as error:
                errors.append(str(error))
            except Exception as error:
                errors.append(f"{type(error).__name__}: {error}")
        return False, "; ".join(errors)

    # ----- publishing -------------------------------------------------------------------------
    def _event(
        self, t: float, kind: EventKind, reason: str, data: dict[str, Any] | None = None
    ) -> None:
        self._publish(Event(self.run_id, t, kind, reason, dict(data or {})))

    def _publish(self, record: Record) -> None:
        with contextlib.suppress(Exception):  # the stream isolates subscribers; belt and braces
            self.stream.publish(record)


def _not_ready(state: TableState) -> list[str]:
    reasons = []
    if not state.stop_switch_connected:
        reasons.append("patient stop switch is not connected; connect it before treatment")
    if state.stop_switch_pressed:
        reasons.append("patient stop switch is pressed; reset it and clear the fault")
    if state.operator_stop_pressed:
        reasons.append("the table's operator stop is pressed; reset it and clear the fault")
    if state.faulted:
        reasons.append(f"table reports a fault: {fault(state.fault).title}; clear it first")
    if state.running:
        reasons.append("table is already running")
    if not (reasons or state.ready):
        reasons.append("table is not ready")
    return reasons

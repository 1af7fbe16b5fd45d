"""The physics and firmware behaviour of a simulated traction table, independent of any wire.

The motor pulls the cord through a patient modelled as a spring and damper; a closed loop on the load
cell moves the motor toward the target force, limited in speed (its slew rate in N/s) and by the rated
force. The load cell adds offset and noise. The firmware side mirrors what real tables do: a start
needs a connected stop switch and no fault; the patient stop switch, the operator's stop button, a
fault or a lapsed heartbeat release tension at once and latch until cleared; a controlled stop ramps
down, then releases.

Single-fault safety lives here too. A second force channel (a motor-current force estimate) is
independent of the load cell: its own offset and noise, its own faults. The session force limit the
host writes is enforced on that channel by the firmware itself: above it the table releases and
latches ``FAULT_FORCE_LIMIT`` whatever the host commands, so a stuck or lying load cell cannot pull
past it. A sample counter advances with every load-cell sample (``sample_hz``), so a frozen
measurement shows as a counter that stops. ``tension_n`` is the true cord tension: what tests assert,
never what any sensor says.

The model integrates lazily: ``advance(now)`` steps from the last time up to ``now`` in small fixed
steps, so the state is right whenever a protocol server looks, and the watchdog fires at the moment
the heartbeat lapsed, not when someone next asks.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

# Fault codes reported by the simulated firmware (documented in the register map and protocol).
FAULT_NONE = 0
FAULT_OVERLOAD = 1  # firmware's own force limit tripped
FAULT_MOTOR = 2  # motor driver fault (injected)
FAULT_LOAD_CELL = 3  # load-cell fault (injected)
FAULT_WATCHDOG = 4  # heartbeat lapsed; tension released
FAULT_STOP_SWITCH = 5  # patient stop switch pressed; tension released
FAULT_FORCE_LIMIT = 6  # the independent channel went above the session force limit; released
FAULT_OPERATOR_STOP = 7  # the operator's stop button pressed; tension released

# The fault vocabulary's name (devices.faults) of each code, for the protocol servers.
FAULT_NAMES = {
    FAULT_NONE: "none",
    FAULT_OVERLOAD: "overload",
    FAULT_MOTOR: "motor",
    FAULT_LOAD_CELL: "load_cell",
    FAULT_WATCHDOG: "watchdog",
    FAULT_STOP_SWITCH: "stop_switch",
    FAULT_FORCE_LIMIT: "force_limit",
    FAULT_OPERATOR_STOP: "operator_stop",
}

_STEP = 0.002  # integration step, seconds of session time


class Command(enum.IntEnum):
    """Command register values (also the line protocol's verbs)."""

    NONE = 0
    START = 1
    STOP_CONTROLLED = 2
    RELEASE = 3
    CLEAR_FAULT = 4


class CommandRefused(Exception):
    """The firmware refuses a command or value (a Modbus server answers exception 3)."""


@dataclass
class TableSpec:
    """What a simulated table is: identity and the physics constants."""

    model: str = "SIM-TX1"
    serial_number: str = "SIM-0001"
    firmware: str = "1.4.2"
    manufacturer: str = "Traction Simulators"
    rated_max_force_n: float = 900.0  # about 200 lbf
    slew_n_per_s: float = 150.0  # how fast the motor can change the tension
    release_n_per_s: float = 3000.0  # how fast an immediate release drops the tension
    controlled_stop_n_per_s: float = 60.0  # ramp rate of a controlled stop
    stiffness_n_per_m: float = 8000.0  # patient + harness as a spring
    damping_n_s_per_m: float = 100.0  # ... and a damper
    loop_gain_per_s: float = 12.0  # load-cell loop gain
    noise_n: float = 0.8  # load-cell noise, standard deviation
    offset_n: float = 0.3  # load-cell zero offset
    heartbeat_timeout_s: float = 1.0
    overload_margin_n: float = 45.0  # firmware trips when tension exceeds rating by this much
    redundant_noise_n: float = 0.8  # second channel (motor-current estimate), standard deviation
    redundant_offset_n: float = -0.4  # ... and its own zero offset
    sample_hz: float = 500.0  # load-cell samples per second of session time (the counter's rate)


class Faults:
    """Faults injectable while running (the wire-level ones live in the protocol servers).

    Sensor faults: ``stuck_load_cell`` (the reading holds one value while samples go on),
    ``frozen`` (sampling stops: reading and counter hold), ``drift_n_per_s`` (offset creeping),
    ``spike_n`` (noisy: a share ``spike_chance`` of readings jump by this much), and
    ``redundant_stuck`` (the second channel alone fails, reading this value).
    """

    def __init__(self) -> None:
        self.stuck_load_cell: float | None = None  # reading stuck at this value
        self.frozen: tuple[float, int] | None = None  # (reading, counter) held by a hung sampler
        self.drift_n_per_s: float = 0.0  # load-cell offset creeping
        self.spike_n: float = 0.0  # spikes added to some readings (0: none)
        self.spike_chance: float = 0.3
        self.redundant_stuck: float | None = None  # second channel failed, reading this value
        self.runaway: bool = False  # motor ignores the target and pulls toward the rating
        self.fault_code: int = FAULT_NONE  # a fault the firmware raises now


@dataclass(frozen=True)
class TraceRow:
    """One line of the table-side log: the truth at session time ``t``, not what a sensor says."""

    t: float
    tension_n: float
    measured_n: float
    redundant_n: float
    running: bool
    released: bool
    fault_code: int


class TableModel:
    """One simulated table's state, advanced on the session clock."""

    def __init__(self, spec: TableSpec | None = None, seed: int = 1, now: float = 0.0) -> None:
        self.spec = spec or TableSpec()
        self.faults = Faults()
        self._rng = random.Random(seed)
        self._t = now
        self._x = 0.0  # cord extension beyond slack, metres
        self._v = 0.0
        self.target_n = 0.0
        self.running = False
        self.released = True
        self.stopping = False
        self.fault_code = FAULT_NONE
        self.stop_switch_connected = True
        self.stop_switch_pressed = False
        self.operator_stop_pressed = False
        self.watchdog_tripped = False
        self.force_limit_n: float | None = None  # session force limit; None until the host sets it
        self.peak_tension_n = 0.0  # highest true tension since built (what tests assert)
        self.trace: list[TraceRow] | None = None  # the table-side log, once start_trace() is called
        self._trace_period = 0.01
        self._next_trace_t = now
        self.heartbeat_timeout_s = self.spec.heartbeat_timeout_s
        self.heartbeat_counter = 0
        self._last_heartbeat = now
        self._drift = 0.0
        self._stop_ref = 0.0

    # ----- what a protocol server reads -------------------------------------------------------
    @property
    def tension_n(self) -> float:
        """True cord tension."""
        return max(
            0.0, self.spec.stiffness_n_per_m * self._x + self.spec.damping_n_s_per_m * self._v
        )

    def measured_n(self) -> float:
        """What the load cell reports now (offset, drift, noise, spikes, or a stuck value)."""
        if self.faults.frozen is not None:
            return self.faults.frozen[0]
        if self.faults.stuck_load_cell is not None:
            return self.faults.stuck_load_cell
        noisy = (
            self.tension_n
            + self.spec.offset_n
            + self._drift
            + self._rng.gauss(0.0, self.spec.noise_n)
        )
        if self.faults.spike_n and self._rng.random() < self.faults.spike_chance:
            noisy += self.faults.spike_n
        return max(0.0, noisy)

    def _load_cell_clean(self) -> float:
        """The load cell without its noise: what the firmware's own force loop acts on."""
        if self.faults.frozen is not None:
            return self.faults.frozen[0]
        if self.faults.stuck_load_cell is not None:
            return self.faults.stuck_load_cell
        return self.tension_n + self._drift

    def redundant_n(self) -> float:
        """What the second, independent force channel reports now."""
        if self.faults.redundant_stuck is not None:
            return self.faults.redundant_stuck
        return max(0.0, self._redundant_clean() + self._rng.gauss(0.0, self.spec.redundant_noise_n))

    def _redundant_clean(self) -> float:
        """The second channel without its noise: what the firmware's force limit acts on."""
        if self.faults.redundant_stuck is not None:
            return self.faults.redundant_stuck
        return self.tension_n + self.spec.redundant_offset_n

    @property
    def sample_counter(self) -> int:
        """Load-cell samples taken, modulo 65536; it stops while sampling is frozen."""
        if self.faults.frozen is not None:
            return self.faults.frozen[1]
        return int(self._t * self.spec.sample_hz) & 0xFFFF

    @property
    def ready(self) -> bool:
        return (
            not self.running
            and self.fault_code == FAULT_NONE
            and self.stop_switch_connected
            and not self.stop_switch_pressed
            and not self.operator_stop_pressed
        )

    def start_trace(self, period_s: float = 0.01) -> list[TraceRow]:
        """Log the true tension (and both channels without noise) every ``period_s`` of session
        time from now on, as an independent logger on the table would; returns the growing log."""
        if not period_s > 0:
            raise ValueError(f"trace period {period_s} must be above zero")
        self.trace = []
        self._trace_period = period_s
        self._next_trace_t = self._t
        return self.trace

    # ----- commands ---------------------------------------------------------------------------
    def set_target(self, force_n: float) -> None:
        if not 0.0 <= force_n <= self.spec.rated_max_force_n:
            raise CommandRefused(
                f"target {force_n:.1f} N outside 0..{self.spec.rated_max_force_n:.1f} N (rated)"
            )
        self.target_n = force_n

    def command(self, command: int, now: float) -> None:
        self.advance(now)
        if command == Command.START:
            if not self.ready:
                raise CommandRefused(
                    "start refused: table not ready (fault, stop switch or running)"
                )
            self.running = True
            self.released = False
            self.stopping = False
            self.watchdog_tripped = False
            self._last_heartbeat = now
        elif command == Command.STOP_CONTROLLED:
            if self.running:
                self.stopping = True
                self._stop_ref = min(self.target_n, self.tension_n)
        elif command == Command.RELEASE:
            self._release()
        elif command == Command.CLEAR_FAULT:
            if self.faults.fault_code != FAULT_NONE:
                raise CommandRefused(f"fault {self.faults.fault_code} still present")
            self.fault_code = FAULT_NONE
            self.stop_switch_pressed = False
            self.operator_stop_pressed = False
            self.watchdog_tripped = False
        elif command == Command.NONE:
            pass
        else:
            raise CommandRefused(f"unknown command {command}")

    def heartbeat(self, now: float, counter: int | None = None) -> None:
        self.advance(now)
        self.heartbeat_counter = (
            (self.heartbeat_counter + 1) & 0xFFFF if counter is None else counter
        )
        self._last_heartbeat = now

    def set_force_limit(self, force_n: float) -> None:
        """The session's force limit, enforced on the independent channel (0 < limit <= rating)."""
        if not 0.0 < force_n <= self.spec.rated_max_force_n:
            raise CommandRefused(
                f"force limit {force_n:.1f} N outside 0..{self.spec.rated_max_force_n:.1f} N"
            )
        self.force_limit_n = force_n

    def set_heartbeat_timeout(self, seconds: float) -> None:
        if not 0.05 <= seconds <= 10.0:
            raise CommandRefused(f"heartbeat timeout {seconds:.3f} s outside 0.05..10 s")
        self.heartbeat_timeout_s = seconds

    def press_stop_switch(self, now: float) -> None:
        self.advance(now)
        self.stop_switch_pressed = True
        self._trip(FAULT_STOP_SWITCH)

    def press_operator_stop(self, now: float) -> None:
        """The operator's stop button on the table (separate from the patient's switch)."""
        self.advance(now)
        self.operator_stop_pressed = True
        self._trip(FAULT_OPERATOR_STOP)

    # ----- sensor faults (injectable at run time) --------------------------------------------
    def stick_load_cell(self, now: float) -> None:
        """The load cell's reading sticks at its value now; samples (and the counter) go on."""
        self.advance(now)
        self.faults.stuck_load_cell = self.measured_n()

    def freeze_readings(self, now: float) -> None:
        """Load-cell sampling hangs: reading and sample counter hold their values now."""
        self.advance(now)
        self.faults.frozen = (self.measured_n(), self.sample_counter)

    def jolt(self, now: float, extra_n: float) -> None:
        """The patient moves: the true tension jumps by ``extra_n`` at once (both channels see
        it); the force loop then pulls back toward the target."""
        self.advance(now)
        self._x += max(0.0, extra_n) / self.spec.stiffness_n_per_m

    def power_cycle(self, now: float) -> None:
        """Power lost and back: tension released, every latch and the session's force limit
        forgotten, as a table fresh from power-on holds none of them."""
        self.advance(now)
        self._release()
        self.fault_code = FAULT_NONE
        self.stop_switch_pressed = False
        self.operator_stop_pressed = False
        self.watchdog_tripped = False
        self.force_limit_n = None
        self.target_n = 0.0
        self.heartbeat_timeout_s = self.spec.heartbeat_timeout_s

    def fail_redundant_channel(self, now: float, reading_n: float = 0.0) -> None:
        """The second force channel alone fails, reading ``reading_n`` from now on."""
        self.advance(now)
        self.faults.redundant_stuck = reading_n

    # ----- time ------------------------------------------------------------------------------
    def advance(self, now: float) -> None:
        """Integrate the physics from the last call up to ``now``."""
        while self._t < now:
            dt = min(_STEP, now - self._t)
            self._step(dt)
            self._t += dt

    def _release(self) -> None:
        self.running = False
        self.stopping = False
        self.released = True

    def _trip(self, code: int) -> None:
        self._release()
        if self.fault_code == FAULT_NONE:
            self.fault_code = code

    def _step(self, dt: float) -> None:
        spec = self.spec
        t = self._t + dt
        self._drift += self.faults.drift_n_per_s * dt
        if self.faults.fault_code != FAULT_NONE and self.fault_code == FAULT_NONE:
            self._trip(self.faults.fault_code)
        if self.running and t - self._last_heartbeat > self.heartbeat_timeout_s:
            self.watchdog_tripped = True
            self._trip(FAULT_WATCHDOG)
        if self.tension_n > spec.rated_max_force_n + spec.overload_margin_n:
            self._trip(FAULT_OVERLOAD)
        if (
            not self.released
            and self.force_limit_n is not None
            and self._redundant_clean() > self.force_limit_n
        ):
            self._trip(FAULT_FORCE_LIMIT)
        self.peak_tension_n = max(self.peak_tension_n, self.tension_n)
        if self.trace is not None and t >= self._next_trace_t:
            self._next_trace_t += self._trace_period
            self.trace.append(
                TraceRow(
                    t,
                    self.tension_n,
                    self._load_cell_clean(),
                    self._redundant_clean(),
                    self.running,
                    self.released,
                    self.fault_code,
                )
            )

        if self.released:
            # A release drops the cord at full speed rather than through the force loop.
            self._v = -spec.release_n_per_s / spec.stiffness_n_per_m if self._x > 0.0 else 0.0
            self._x = max(0.0, self._x + self._v * dt)
            return
        if self.stopping:
            self._stop_ref = max(0.0, self._stop_ref - spec.controlled_stop_n_per_s * dt)
            reference, rate = self._stop_ref, spec.slew_n_per_s
            if self._stop_ref <= 0.0 and self.tension_n < 1.0:
                self._release()
        elif self.faults.runaway:
            reference, rate = spec.rated_max_force_n + 2 * spec.overload_margin_n, spec.slew_n_per_s
        else:
            reference, rate = self.target_n, spec.slew_n_per_s

        # The motor's closed loop acts on the (possibly faulty) load cell, as real firmware would;
        # speed is limited so the tension changes at most ``rate`` N/s.
        sensed = self._load_cell_clean()
        error = reference - sensed
        speed_limit = rate / spec.stiffness_n_per_m
        v = max(
            -speed_limit, min(speed_limit, spec.loop_gain_per_s * error / spec.stiffness_n_per_m)
        )
        self._x = max(0.0, self._x + v * dt)
        self._v = v if self._x > 0.0 else 0.0

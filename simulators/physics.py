"""The physics and firmware behaviour of a simulated traction table, independent of any wire.

The motor pulls the cord through a patient modelled as a spring and damper; a closed loop on the load
cell moves the motor toward the target force, limited in speed (its slew rate in N/s) and by the rated
force. The load cell adds offset and noise. The firmware side mirrors what real tables do: a start
needs a connected stop switch and no fault; the patient stop switch, a fault or a lapsed heartbeat
release tension at once and latch until cleared; a controlled stop ramps down, then releases.

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


class Faults:
    """Faults injectable while running (the wire-level ones live in the protocol servers)."""

    def __init__(self) -> None:
        self.stuck_load_cell: float | None = None  # reading frozen at this value
        self.drift_n_per_s: float = 0.0  # load-cell offset creeping
        self.runaway: bool = False  # motor ignores the target and pulls toward the rating
        self.fault_code: int = FAULT_NONE  # a fault the firmware raises now


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
        self.watchdog_tripped = False
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
        """What the load cell reports now (offset, drift, noise, or a stuck value)."""
        if self.faults.stuck_load_cell is not None:
            return self.faults.stuck_load_cell
        noisy = (
            self.tension_n
            + self.spec.offset_n
            + self._drift
            + self._rng.gauss(0.0, self.spec.noise_n)
        )
        return max(0.0, noisy)

    @property
    def ready(self) -> bool:
        return (
            not self.running
            and self.fault_code == FAULT_NONE
            and self.stop_switch_connected
            and not self.stop_switch_pressed
        )

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

    def set_heartbeat_timeout(self, seconds: float) -> None:
        if not 0.05 <= seconds <= 10.0:
            raise CommandRefused(f"heartbeat timeout {seconds:.3f} s outside 0.05..10 s")
        self.heartbeat_timeout_s = seconds

    def press_stop_switch(self, now: float) -> None:
        self.advance(now)
        self.stop_switch_pressed = True
        self._trip(FAULT_STOP_SWITCH)

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
        sensed = (
            self.tension_n if self.faults.stuck_load_cell is None else self.faults.stuck_load_cell
        )
        error = reference - sensed
        speed_limit = rate / spec.stiffness_n_per_m
        v = max(
            -speed_limit, min(speed_limit, spec.loop_gain_per_s * error / spec.stiffness_n_per_m)
        )
        self._x = max(0.0, self._x + v * dt)
        self._v = v if self._x > 0.0 else 0.0

"""A simulated table on a virtual clock, for control-loop tests that must be exact and fast.

The wire tests (test_loop.py) run the loop against a real Modbus server in scaled real time. These
helpers instead put the same physics model (:class:`simulators.physics.TableModel`) behind the
:class:`devices.contract.Table` interface in-process, on a clock that jumps to each deadline: a
ten-minute profile runs in well under a second, every tick lands exactly where the loop asked, and
a test can make a call fail, or take time, at the tick it chooses. Only the physical table is
simulated; the loop, the supervisor and the profile are the real ones.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from devices.contract import FULL_SAFETY, DeviceInfo, SafetyFeatures, StopKind, TableState
from devices.errors import DeviceRejected, TableError
from simulators.physics import FAULT_NAMES, Command, CommandRefused, TableModel


class VirtualClock:
    """Session time that moves only when the loop sleeps (to its deadline) or a test says so."""

    def __init__(self, start: float = 0.0, scale: float = 1.0) -> None:
        self._now = start
        self._scale = scale
        self._wall0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
        self.sleeps: list[float] = []  # every deadline the loop slept until
        self.oversleep: dict[int, float] = {}  # sleep number -> seconds it wakes up late

    @property
    def scale(self) -> float:
        return self._scale

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Time passes without the loop sleeping: a slow wire, a stalled process."""
        self._now += seconds

    async def sleep_until(self, deadline: float) -> None:
        self.sleeps.append(deadline)
        self._now = max(self._now, deadline) + self.oversleep.get(len(self.sleeps), 0.0)
        await asyncio.sleep(0)

    def wall(self, t: float) -> datetime:
        return self._wall0 + timedelta(seconds=t)


Hook = Callable[[str], None]


@dataclass
class ModelTable:
    """The Table contract over a :class:`TableModel`, with every call recorded.

    ``before`` runs before each call with the method's name and may raise (a timeout, a refusal,
    a dropped link) or advance the clock (wire time). The firmware's refusals become
    :class:`DeviceRejected`, as a Modbus exception reply would.
    """

    model: TableModel
    clock: VirtualClock
    wire_s: float = 0.002
    safety_features: SafetyFeatures = FULL_SAFETY
    before: Hook | None = None
    calls: list[tuple[str, float, object]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return "virtual-1"

    @property
    def tick_wire_seconds(self) -> float:
        return self.wire_s

    def _call(self, method: str, arg: object = None) -> float:
        self.calls.append((method, self.clock.now(), arg))  # every attempt, failed ones too
        if self.before is not None:
            self.before(method)
        now = self.clock.now()
        self.model.advance(now)
        return now

    def writes(self, method: str) -> list[tuple[float, object]]:
        return [(t, arg) for name, t, arg in self.calls if name == method]

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def identify(self) -> DeviceInfo:
        self._call("identify")
        spec = self.model.spec
        return DeviceInfo(
            spec.model, spec.serial_number, spec.firmware, spec.rated_max_force_n, spec.manufacturer
        )

    async def read_state(self) -> TableState:
        now = self._call("read_state")
        m = self.model
        return TableState(
            t=now,
            measured_force_n=m.measured_n(),
            target_force_n=m.target_n,
            running=m.running,
            ready=m.ready,
            released=m.released,
            fault=FAULT_NAMES.get(m.fault_code, "unknown_device_fault"),
            stop_switch_pressed=m.stop_switch_pressed,
            stop_switch_connected=m.stop_switch_connected,
            watchdog_tripped=m.watchdog_tripped,
            operator_stop_pressed=m.operator_stop_pressed,
            redundant_force_n=m.redundant_n() if self.safety_features.redundant_force else None,
            sample_counter=m.sample_counter if self.safety_features.sample_counter else None,
        )

    def _firmware(self, action: Callable[[], None], what: str) -> None:
        try:
            action()
        except CommandRefused as refused:
            raise DeviceRejected(self.name, f"{what} refused: {refused}", 3) from None

    async def set_target(self, force_n: float) -> None:
        self._call("set_target", force_n)
        self._firmware(lambda: self.model.set_target(force_n), "target")

    async def start(self) -> None:
        now = self._call("start")
        self._firmware(lambda: self.model.command(Command.START, now), "start")

    async def stop(self, kind: StopKind) -> None:
        now = self._call("stop", kind)
        command = Command.RELEASE if kind is StopKind.RELEASE else Command.STOP_CONTROLLED
        self._firmware(lambda: self.model.command(command, now), "stop")

    async def clear_fault(self) -> None:
        now = self._call("clear_fault")
        self._firmware(lambda: self.model.command(Command.CLEAR_FAULT, now), "clear fault")

    async def heartbeat(self) -> None:
        now = self._call("heartbeat")
        self.model.heartbeat(now)

    async def set_force_limit(self, force_n: float) -> None:
        self._call("set_force_limit", force_n)
        self._firmware(lambda: self.model.set_force_limit(force_n), "force limit")

    async def read_force_limit(self) -> float:
        self._call("read_force_limit")
        held = self.model.force_limit_n
        return math.nan if held is None else held

    async def set_heartbeat_timeout(self, seconds: float) -> None:
        self._call("set_heartbeat_timeout", seconds)
        self._firmware(lambda: self.model.set_heartbeat_timeout(seconds), "heartbeat timeout")


def failing(method: str, error: TableError, *, times: int = 1, after: int = 0) -> Hook:
    """A ``before`` hook: ``method`` raises ``error`` on its calls number after+1 .. after+times."""
    seen = [0]

    def hook(name: str) -> None:
        if name != method:
            return
        seen[0] += 1
        if after < seen[0] <= after + times:
            raise error

    return hook

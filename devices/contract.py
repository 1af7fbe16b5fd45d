"""The table contract every driver implements, and the values it exchanges.

The control loop, the recorder and the application see only this interface; which wire a table uses
(Modbus TCP, Modbus RTU, the line protocol) is decided when it is opened from its URL.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable


class StopKind(enum.StrEnum):
    """How a table should stop: a controlled ramp to zero, or letting go at once."""

    CONTROLLED = "controlled"
    RELEASE = "release"


@dataclass(frozen=True)
class DeviceInfo:
    """What ``identify()`` reports: enough to name the device in a clinical note."""

    model: str
    serial_number: str
    firmware: str
    rated_max_force_n: float
    manufacturer: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TableState:
    """One reading of a table.

    ``t`` is the host clock's monotonic reading taken when the reply arrived (session time on a scaled
    clock). Forces are newtons. ``fault_code`` is 0 when there is no fault.
    """

    t: float
    measured_force_n: float
    target_force_n: float
    running: bool
    ready: bool
    released: bool
    fault_code: int
    stop_switch_pressed: bool
    stop_switch_connected: bool
    watchdog_tripped: bool

    @property
    def faulted(self) -> bool:
        return self.fault_code != 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Table(Protocol):
    """One traction table, whatever its wire.

    Every method may raise a :class:`devices.errors.TableError` subclass; none blocks longer than
    the driver's own short timeout.
    """

    @property
    def name(self) -> str:
        """A short label (the URL without secrets) used in errors, logs and events."""
        ...

    @property
    def tick_wire_seconds(self) -> float:
        """Estimated time on the wire for one control tick: heartbeat, target write, state read."""
        ...

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def identify(self) -> DeviceInfo: ...

    async def read_state(self) -> TableState: ...

    async def set_target(self, force_n: float) -> None: ...

    async def start(self) -> None: ...

    async def stop(self, kind: StopKind) -> None: ...

    async def clear_fault(self) -> None: ...

    async def heartbeat(self) -> None: ...

    async def set_heartbeat_timeout(self, seconds: float) -> None: ...

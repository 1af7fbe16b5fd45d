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
class SafetyFeatures:
    """What a table offers beyond the basics for single-fault safety (IEC 60601-1).

    ``redundant_force``: a second force channel, independent of the load cell, in every state read.
    ``force_limit``: a per-session force limit the host writes and reads back, enforced by the table
    itself on that independent channel. ``sample_counter``: a table-side counter in every state
    read that advances with each new sample, so a frozen reading is seen as stale.
    ``operator_stop``: an operator stop input separate from the patient's switch.
    """

    redundant_force: bool
    force_limit: bool
    sample_counter: bool
    operator_stop: bool

    @property
    def missing(self) -> list[str]:
        """Plain words for each feature the table lacks (empty when it has them all)."""
        words = {
            "redundant_force": "a second, independent force channel",
            "force_limit": "a force limit enforced by the table",
            "sample_counter": "a table-side sample counter",
            "operator_stop": "an operator stop input",
        }
        return [text for key, text in words.items() if not getattr(self, key)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FULL_SAFETY = SafetyFeatures(True, True, True, True)


@dataclass(frozen=True)
class TableState:
    """One reading of a table.

    ``t`` is the host clock's monotonic reading taken when the reply arrived (session time on a scaled
    clock). Forces are newtons. ``fault`` is a name from :mod:`devices.faults` (``"none"`` when
    there is no fault): drivers translate device codes, so no raw code travels above them.
    ``redundant_force_n`` is the table's second, independent force channel and ``sample_counter``
    its own count of samples taken; both are ``None`` on a table without them.
    """

    t: float
    measured_force_n: float
    target_force_n: float
    running: bool
    ready: bool
    released: bool
    fault: str
    stop_switch_pressed: bool
    stop_switch_connected: bool
    watchdog_tripped: bool
    operator_stop_pressed: bool = False
    redundant_force_n: float | None = None
    sample_counter: int | None = None

    @property
    def faulted(self) -> bool:
        return self.fault != "none"

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

    @property
    def safety_features(self) -> SafetyFeatures:
        """Which single-fault safety features this table has (from its map or protocol)."""
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

    async def set_force_limit(self, force_n: float) -> None:
        """Write the session's force limit, which the table enforces on its independent channel
        (releasing and latching ``force_limit`` when it is exceeded, whatever the host does)."""
        ...

    async def read_force_limit(self) -> float:
        """The force limit the table holds now, in newtons (to check the write arrived)."""
        ...

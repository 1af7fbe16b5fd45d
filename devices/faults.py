"""One fault vocabulary for every table and every transport, with a severity for each fault.

Tables report faults as device codes that differ from model to model (a TracTek watchdog is 0x24, a
generic-v1 one is 4). Drivers translate those codes into the names below at the edge, through the
register map's ``[status.fault_code.values]`` or line-v1's fixed table, so nothing above a driver
ever sees or shows a raw code. The supervisor's own trips (hard limit, stale reading, stall...) are
named from the same vocabulary, so a record, the live display, the API and a lockout all speak it.

Severity says what a fault means for the table once the session has released it:

- ``info``: worth recording, nothing to do;
- ``warning``: shown to the operator, the session goes on;
- ``stop``: the session ends released; the next one may start once the cause is gone;
- ``lock``: the table stays locked on the workstation until a clinician acknowledges the alarm
  (hard limit, stuck or disagreeing sensors, the table's watchdog, device overload...).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.StrEnum):
    """How serious a fault is, least to most; ``Severity.LOCK.rank`` > ``Severity.STOP.rank``."""

    INFO = "info"
    WARNING = "warning"
    STOP = "stop"
    LOCK = "lock"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


@dataclass(frozen=True)
class Fault:
    """A named fault: ``title`` is the words a person reads; ``device`` says a table reports it
    (it may appear in a register map or line-v1), otherwise only the host's supervisor raises it."""

    name: str
    severity: Severity
    title: str
    device: bool = False

    def to_dict(self) -> dict[str, str]:
        return {"fault": self.name, "severity": self.severity.value, "title": self.title}


NONE = "none"  # the name a state carries when the table reports no fault

_ALL = (
    # ----- reported by tables (device codes translate into these) ----------------------------
    Fault("overload", Severity.LOCK, "device overload: the table's own force limit tripped", True),
    Fault("force_limit", Severity.LOCK, "the table's session force limit tripped", True),
    Fault("motor", Severity.LOCK, "motor driver fault", True),
    Fault("load_cell", Severity.LOCK, "load-cell fault reported by the table", True),
    Fault("watchdog", Severity.LOCK, "table watchdog: the host's heartbeat lapsed", True),
    Fault("stop_switch", Severity.STOP, "patient pressed the stop switch", True),
    Fault("operator_stop", Severity.STOP, "operator pressed the table's stop button", True),
    Fault(
        "unknown_device_fault",
        Severity.LOCK,
        "the table reported a fault code its map does not name",
        True,
    ),
    # ----- raised by the host's supervisor and control loop ---------------------------------
    Fault("hard_limit", Severity.LOCK, "force above the session's hard limit"),
    Fault("over_target", Severity.STOP, "force above the target by more than the tolerance"),
    Fault("tracking", Severity.STOP, "force off target for too long"),
    Fault("stuck_sensor", Severity.LOCK, "load-cell reading stuck while the target moved"),
    Fault("channel_disagreement", Severity.LOCK, "the two force channels disagree"),
    Fault("implausible_force_rate", Severity.LOCK, "force changed faster than the table can pull"),
    Fault("bad_reading", Severity.LOCK, "the table sent a force that is not a number"),
    Fault("stale_reading", Severity.STOP, "readings stopped advancing"),
    Fault("missing_reading", Severity.STOP, "no valid reading for too long"),
    Fault("stall", Severity.STOP, "the host's control loop stalled"),
    Fault("stop_switch_disconnected", Severity.STOP, "patient stop switch disconnected"),
    Fault("not_running", Severity.STOP, "the table stopped running on its own"),
    Fault("link_lost", Severity.STOP, "link to the table lost"),
    Fault("device_rejected", Severity.STOP, "the table refused a command"),
)
FAULTS: dict[str, Fault] = {fault.name: fault for fault in _ALL}
DEVICE_FAULTS: frozenset[str] = frozenset(f.name for f in _ALL if f.device)


def fault(name: str) -> Fault:
    """The fault called ``name``; KeyError names the vocabulary if there is none."""
    try:
        return FAULTS[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a fault name; known: {', '.join(FAULTS)}") from None


def device_fault_name(code: int, names_by_code: dict[int, str]) -> str:
    """Translate a device's fault ``code`` through its table of ``code -> vocabulary name``.

    0 is :data:`NONE`; a code the table of names does not know is ``unknown_device_fault`` (a
    lock: an undocumented fault is treated as the worst kind).
    """
    if code == 0:
        return NONE
    return names_by_code.get(code, "unknown_device_fault")

"""The records the control loop publishes, in the spirit of bluesky's documents.

A run is ``Started`` (everything needed to document it), then ``Sample`` and ``Event`` records in
time order, then ``Finished``. Subscribers (recorder, live display, HTTP stream) consume the same
records; nothing else carries what the table did.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


class Phase(enum.StrEnum):
    """Where a profile is at a moment of the session."""

    RAMP_UP = "ramp_up"
    HOLD = "hold"
    RAMP_DOWN = "ramp_down"
    REST = "rest"
    PROGRESSION = "progression"
    REGRESSION = "regression"
    PAUSED = "paused"
    STOPPING = "stopping"
    DONE = "done"


class EventKind(enum.StrEnum):
    """Things that happen during a session other than a sample."""

    PHASE = "phase"
    PAUSE = "pause"
    RESUME = "resume"
    SETTINGS_CHANGED = "settings_changed"
    STOP_REQUESTED = "stop_requested"
    TRIP = "trip"
    STOP_SWITCH = "stop_switch"
    LINK_LOST = "link_lost"
    LINK_BACK = "link_back"
    FAULT = "fault"
    RELEASED = "released"
    WARNING = "warning"


class Outcome(enum.StrEnum):
    """How a session ended."""

    COMPLETED = "completed"
    STOPPED = "stopped"
    TRIPPED = "tripped"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Started:
    """First record of a run: the full settings snapshot."""

    run_id: str
    t: float
    wall: datetime
    table: str
    device: dict[str, Any]
    profile: dict[str, Any]
    limits: dict[str, Any]
    tick_hz: float
    time_scale: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["wall"] = self.wall.isoformat()
        return d


@dataclass(frozen=True)
class Sample:
    """One tick: the moment the reading arrived, the target then in force, what the table measured."""

    run_id: str
    seq: int
    t: float
    target_n: float
    measured_n: float
    phase: Phase
    cycle: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Event:
    """Something that happened, with the reason and the reading or values behind it."""

    run_id: str
    t: float
    kind: EventKind
    reason: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Finished:
    """Last record of a run."""

    run_id: str
    t: float
    wall: datetime
    outcome: Outcome
    reason: str
    sample_count: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["wall"] = self.wall.isoformat()
        return d


Record = Started | Sample | Event | Finished


def record_name(record: Record) -> str:
    """The document name of a record: started, sample, event or finished."""
    return type(record).__name__.lower()

"""Events as journalled and stored: each with its place in the session's event sequence.

A module of its own, free of the database, so that a treatment process can journal events
without loading the store (:mod:`session.treatment_process` starts in a fraction of the time).
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.records import Event


@dataclass(frozen=True)
class NumberedEvent:
    """An event with its position in the session's event sequence (events carry no seq of their own)."""

    seq: int
    event: Event

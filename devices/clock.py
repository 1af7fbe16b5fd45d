"""The one seam for time.

Control uses the monotonic clock only. A :class:`ScaledClock` runs session time faster than real time
so a 20-minute prescription runs in seconds against a simulator that uses the same clock; the code
under test does not change. Wall-clock time is derived for documentation, never used for control.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Session time in seconds (monotonic), and a way to wait for a moment of it."""

    @property
    def scale(self) -> float: ...

    def now(self) -> float: ...

    async def sleep_until(self, deadline: float) -> None: ...

    def wall(self, t: float) -> datetime: ...


class ScaledClock:
    """Monotonic clock running ``scale`` times faster than real time (1.0 is real time).

    ``wall(t)`` maps a session time to the UTC wall-clock moment at which it happened: the real start
    plus the *real* time elapsed, so recorded moments never lie in the future (a time-scaled session
    keeps its session-time length separately, in its samples and its ``time_scale``).
    """

    def __init__(self, scale: float = 1.0) -> None:
        if not scale > 0:
            raise ValueError(f"time scale must be > 0, got {scale}")
        self._scale = float(scale)
        self._real0 = time.monotonic()
        self._wall0 = datetime.now(UTC)

    @property
    def scale(self) -> float:
        return self._scale

    def now(self) -> float:
        return (time.monotonic() - self._real0) * self._scale

    async def sleep_until(self, deadline: float) -> None:
        delay = (deadline - self.now()) / self._scale
        await asyncio.sleep(max(0.0, delay))

    def real_seconds(self, session_seconds: float) -> float:
        """How long ``session_seconds`` of session time takes in real time."""
        return session_seconds / self._scale

    def wall(self, t: float) -> datetime:
        return self._wall0 + timedelta(seconds=t / self._scale)


def monotonic_clock() -> ScaledClock:
    """The real-time clock used with real tables."""
    return ScaledClock(1.0)


def format_seconds(seconds: float) -> str:
    """A duration as people read it: at most three significant digits ("0.255 s", "1.5 s"),
    whole seconds from 100 s on, so computed timeouts never print as "0.254688 s"."""
    if abs(seconds) >= 100:
        return f"{seconds:.0f} s"
    return f"{seconds:.3g} s"

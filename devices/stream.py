"""Fan-out of the control loop's records to any number of subscribers without ever blocking a tick.

``publish`` is synchronous and calls each subscriber's ``deliver``, which must only enqueue. A
subscriber that raises is reported and kept isolated: one broken view cannot stop the loop or the
recorder.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import Protocol

import structlog

from devices.records import Finished, Record

log = structlog.get_logger(__name__)


class Subscriber(Protocol):
    def deliver(self, record: Record) -> None:
        """Take one record. Must not block or await; enqueue and return."""
        ...


class Stream:
    """The records of one run, published to every subscriber in order."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def publish(self, record: Record) -> list[BaseException]:
        """Deliver ``record`` to every subscriber; return the errors of those that failed."""
        errors: list[BaseException] = []
        for subscriber in list(self._subscribers):
            try:
                subscriber.deliver(record)
            except Exception as exc:  # isolation is the point: the loop must go on
                log.error("subscriber failed", subscriber=repr(subscriber), error=str(exc))
                errors.append(exc)
        return errors


class LatestQueue:
    """An async subscriber for views (live display, HTTP stream) that may fall behind.

    Holds at most ``maxlen`` records; when full the oldest *sample* is dropped, never an event or the
    start/finish records, so a slow screen still sees every trip. The recorder does not use this: it
    keeps everything.
    """

    def __init__(self, maxlen: int = 1000) -> None:
        self._items: collections.deque[Record] = collections.deque()
        self._maxlen = maxlen
        self._ready = asyncio.Event()
        self.dropped = 0
        self.finished = False

    def deliver(self, record: Record) -> None:
        if len(self._items) >= self._maxlen:
            for i, item in enumerate(self._items):
                if type(item).__name__ == "Sample":
                    del self._items[i]
                    self.dropped += 1
                    break
        self._items.append(record)
        self._ready.set()

    async def get(self) -> Record:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    async def __aiter__(self) -> AsyncIterator[Record]:
        while True:
            record = await self.get()
            yield record
            if isinstance(record, Finished):
                return

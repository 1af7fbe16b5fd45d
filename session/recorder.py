"""The recorder: the control loop's stream, written to the store without ever holding up a tick.

``deliver`` only appends to an in-memory buffer. A flush task writes the buffer in batches at least
every ``flush_interval`` seconds, in a worker thread, so a slow or absent database never blocks the
event loop. While the database stalls or is down, records wait in the buffer and a warning event is
recorded; when it answers again they are all written, followed by a second warning saying how long
it was away. Before the buffer reaches its limit the recorder asks the control loop to stop
(``on_overflow``), so the session ends safely rather than outgrowing what it can keep. No record is
ever dropped: past the limit the buffer keeps growing and says so in the log.

On ``Finished`` everything is flushed, the outcome recorded and the session sealed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import structlog

from devices.contract import StopKind
from devices.records import Event, EventKind, Finished, Record, Sample, Started
from session.models import TreatmentSession
from session.seal import seal
from session.store import NumberedEvent, SessionContext, Store, StoreError

log = structlog.get_logger(__name__)

OverflowCallback = Callable[[StopKind, str], None]
"""The control loop's ``request_stop(kind, reason)``."""

Item = Started | Sample | NumberedEvent | Finished


@dataclass(frozen=True)
class RecorderStats:
    """What the recorder has done so far, for the live view and tests."""

    buffered: int
    written_samples: int
    stalls: int
    overflow_requested: bool
    finished: bool


class Recorder:
    """A :class:`devices.stream.Subscriber` that keeps every record of one session.

    Use inside a running event loop: ``start()`` (or ``async with``) begins the flush task;
    ``wait_finished()`` returns the seal once ``Finished`` is written; ``close()`` flushes what is
    left. ``buffer_limit`` is the number of records held in memory before the session is stopped;
    the stop is requested ``stop_margin`` records earlier so the ramp-down still fits.
    """

    def __init__(
        self,
        store: Store,
        context: SessionContext,
        on_overflow: OverflowCallback,
        *,
        flush_interval: float = 0.25,
        buffer_limit: int = 30_000,
        stop_margin: int | None = None,
        stall_warning_after: float = 1.0,
        max_batch: int = 5_000,
    ) -> None:
        if not 0 < flush_interval <= 0.25:
            raise ValueError(f"flush_interval {flush_interval} s must be in (0, 0.25]")
        if buffer_limit < 10:
            raise ValueError(f"buffer_limit {buffer_limit} must be at least 10 records")
        self._store = store
        self._context = context
        self._on_overflow = on_overflow
        self._interval = flush_interval
        self._limit = buffer_limit
        margin = buffer_limit // 5 if stop_margin is None else stop_margin
        if not 0 <= margin < buffer_limit:
            raise ValueError(f"stop_margin {margin} must be in [0, buffer_limit={buffer_limit})")
        self._stop_at = buffer_limit - margin
        self._stall_after = stall_warning_after
        self._max_batch = max_batch

        self._buffer: collections.deque[Item] = collections.deque()
        self._event_seq = itertools.count()
        self._run_id: str | None = None
        self._last_t = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._finished: asyncio.Future[str] | None = None
        self._closing = False
        self._finishing = False
        self._stall_since: float | None = None
        self._stalls = 0
        self._written_samples = 0
        self._overflow_requested = False
        self._past_limit_logged = False

    # --- the subscriber side: never blocks --------------------------------------------------------

    def deliver(self, record: Record) -> None:
        if isinstance(record, Started):
            self._run_id = record.run_id
        self._last_t = max(self._last_t, record.t)
        if isinstance(record, Event):
            self._buffer.append(NumberedEvent(next(self._event_seq), record))
        else:
            self._buffer.append(record)
        if isinstance(record, Finished):
            self._wake.set()
        self._watch_buffer()

    def _watch_buffer(self) -> None:
        size = len(self._buffer)
        if size >= self._stop_at and not self._overflow_requested:
            self._request_stop(
                f"recording buffer holds {size} of {self._limit} records while the database "
                "is not keeping up; stopping so that no sample is lost"
            )
        if size > self._limit and not self._past_limit_logged:
            self._past_limit_logged = True
            log.error("recording buffer past its limit; still keeping every record", size=size)

    def _request_stop(self, reason: str) -> None:
        self._overflow_requested = True
        self._warn(reason, {"buffered": len(self._buffer), "limit": self._limit})
        try:
            self._on_overflow(StopKind.CONTROLLED, reason)
        except Exception as exc:  # the stop request must not break delivery
            log.error("on_overflow failed", error=str(exc))

    def _warn(self, reason: str, data: dict[str, object]) -> None:
        """Record a warning event of the recorder's own in the session's event stream.

        It goes before a ``Finished`` still waiting in the buffer, so the seal covers it. Once the
        ``Finished`` is being written the record is closed: the warning is only logged.
        """
        log.warning(reason, **data)
        if self._run_id is None or self._finishing:
            return
        event = NumberedEvent(
            next(self._event_seq),
            Event(self._run_id, self._last_t, EventKind.WARNING, reason, dict(data)),
        )
        if self._buffer and isinstance(self._buffer[-1], Finished):
            self._buffer.insert(len(self._buffer) - 1, event)
        else:
            self._buffer.append(event)

    # --- the flush task ------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._finished = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._run(), name="session-recorder")

    async def __aenter__(self) -> Recorder:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def session_id(self) -> str | None:
        return self._run_id

    def stats(self) -> RecorderStats:
        return RecorderStats(
            buffered=len(self._buffer),
            written_samples=self._written_samples,
            stalls=self._stalls,
            overflow_requested=self._overflow_requested,
            finished=self._finished is not None and self._finished.done(),
        )

    async def wait_finished(self) -> str:
        """Wait until ``Finished`` is written and the session sealed; return the seal."""
        self.start()
        assert self._finished is not None
        return await asyncio.shield(self._finished)

    async def close(self) -> None:
        """Write everything still buffered and stop the flush task.

        Waits as long as the database needs; bound it with ``asyncio.timeout`` if need be. On a
        timeout the records stay buffered (see :meth:`stats`), never discarded, and the flush task
        keeps trying.
        """
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        await asyncio.shield(self._task)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            await self._drain()
            if self._closing and not self._buffer:
                return

    async def _drain(self) -> None:
        while self._buffer:
            batch = self._next_batch()
            write = asyncio.ensure_future(asyncio.to_thread(self._write, batch))
            done, _ = await asyncio.wait({write}, timeout=self._stall_after)
            if not done:
                self._stalled("the database has not answered a write")
            try:
                digest = await write
            except StoreError as exc:
                self._stalled(f"the store refused a write: {exc}")
                if not self._overflow_requested:
                    self._request_stop(f"recording refused by the store: {exc}")
                return
            except Exception as exc:  # a dropped or failing database: keep the batch, retry
                self._stalled(f"database write failed: {exc}")
                return
            for _ in batch:
                self._buffer.popleft()
            self._written_samples += sum(isinstance(item, Sample) for item in batch)
            self._recovered()
            if digest is not None and self._finished is not None and not self._finished.done():
                self._finished.set_result(digest)

    def _next_batch(self) -> list[Item]:
        """Up to ``max_batch`` records before the ``Finished``; the ``Finished`` alone, last, so
        every warning the recorder adds before it is sealed with the session."""
        batch: list[Item] = []
        for item in itertools.islice(self._buffer, self._max_batch):
            if isinstance(item, Finished):
                if not batch:
                    self._finishing = True
                    batch.append(item)
                break
            batch.append(item)
        return batch

    def _stalled(self, reason: str) -> None:
        if self._stall_since is not None:
            return
        self._stall_since = time.monotonic()
        self._stalls += 1
        self._warn(
            f"{reason}; records wait in memory until it is back",
            {"buffered": len(self._buffer), "limit": self._limit},
        )

    def _recovered(self) -> None:
        if self._stall_since is None:
            return
        away = time.monotonic() - self._stall_since
        self._stall_since = None
        self._warn(
            f"database back after {away:.1f} s; waiting records written",
            {"away_s": round(away, 3), "buffered": len(self._buffer)},
        )

    def _write(self, batch: list[Item]) -> str | None:
        """Write one batch in order (worker thread); return the seal if the session finished."""
        samples: list[Sample] = []
        events: list[NumberedEvent] = []
        sealed: str | None = None
        for item in batch:
            if isinstance(item, Started):
                self._store.create_session(item, self._context)
            elif isinstance(item, Sample):
                samples.append(item)
            elif isinstance(item, NumberedEvent):
                events.append(item)
            else:
                self._store.add_batch(item.run_id, samples, events)
                samples, events = [], []
                sealed = self._finish(item)
        if samples or events:
            run_id = samples[0].run_id if samples else events[0].event.run_id
            self._store.add_batch(run_id, samples, events)
        return sealed

    def _finish(self, finished: Finished) -> str:
        row = self._store.get_session(finished.run_id)
        if row.seal_digest is not None:  # a retry after the seal was written
            return row.seal_digest
        row = self._store.finish(finished)
        if row.sample_count != finished.sample_count:
            log.warning(
                "stored sample count differs from the loop's",
                stored=row.sample_count,
                published=finished.sample_count,
            )
        return seal(self._store, finished.run_id)


def recover_interrupted(store: Store, workstation: str) -> list[TreatmentSession]:
    """At start-up: mark this workstation's unfinished sessions interrupted and seal them."""
    recovered = store.recover_interrupted(workstation)
    for row in recovered:
        seal(store, row.id)
        log.warning(
            "session interrupted",
            session=row.id,
            last_sample_t=row.last_sample_t,
            samples=row.sample_count,
        )
    return [store.get_session(row.id) for row in recovered]

"""The recorder: the control loop's stream, journalled first, then written to the store, without
ever holding up a tick.

``deliver`` only queues the record for the session's journal (:mod:`session.journal`). Two tasks
take it from there, each off the event loop's thread:

- the journal task writes the queue to the journal file and ``fsync``\\ s it at least every
  ``flush_interval`` seconds, so a process killed outright loses at most that much;
- the ingest task reads the journal back in bounded batches and writes them to the store. While
  the database stalls or is down, records simply wait in the journal (on disk, not in memory) and a
  warning event is recorded; when it answers again they are all written, followed by a second
  warning saying how long it was away. A database away for hours never stops the treatment.

On ``Finished`` the outcome is recorded and the session sealed; then the journal is removed. The
journal is the session's lease: while this process holds it, no recovery takes the session for
dead. If the journal itself cannot be written (the disk is full), ``on_failure`` asks the control
loop to stop, and the records wait in memory until the disk takes them.

When the control loop runs in the treatment process (:mod:`session.control_host`),
that process writes the journal (``journal_sink`` given): the recorder here only makes the journal
up front, ingests it, and hands its own warnings to the sink to be journalled there.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import structlog

from devices.contract import StopKind
from devices.records import Event, EventKind, Finished, Record, Sample, Started
from session.journal import Item, JournalReader, JournalWriter
from session.seal import seal
from session.store import NumberedEvent, SessionContext, Store

log = structlog.get_logger(__name__)

FailureCallback = Callable[[StopKind, str], None]
"""The control loop's ``request_stop(kind, reason)``."""

JournalSink = Callable[[str, dict[str, object]], None]
"""Where the recorder's own warnings go when another process writes the journal."""


@dataclass(frozen=True)
class RecorderStats:
    """What the recorder has done so far, for the live view and tests.

    ``buffered`` counts records published but not yet in the store (they wait in the journal).
    """

    buffered: int
    written_samples: int
    stalls: int
    journal_failed: bool
    finished: bool


class Recorder:
    """A :class:`devices.stream.Subscriber` that keeps every record of one session.

    Use inside a running event loop: ``start()`` (or ``async with``) begins the tasks;
    ``wait_finished()`` returns the seal once ``Finished`` is written; ``close()`` writes what is
    left. ``open_journal(run_id)`` before the run makes the journal (and takes the lease) up
    front, so a journal that cannot be made refuses the start instead of failing mid-session.
    """

    def __init__(
        self,
        store: Store,
        context: SessionContext,
        on_failure: FailureCallback,
        *,
        journal_dir: Path,
        flush_interval: float = 0.25,
        stall_warning_after: float = 1.0,
        max_batch: int = 5_000,
        journal_sink: JournalSink | None = None,
    ) -> None:
        if not 0 < flush_interval <= 0.25:
            raise ValueError(f"flush_interval {flush_interval} s must be in (0, 0.25]")
        if max_batch < 1:
            raise ValueError(f"max_batch {max_batch} must be at least 1")
        self._store = store
        self._context = context
        self._on_failure = on_failure
        self._journal_dir = journal_dir
        self._interval = flush_interval
        self._stall_after = stall_warning_after
        self._max_batch = max_batch
        self._sink = journal_sink

        self._journal: JournalWriter | None = None
        self._reader: JournalReader | None = None
        self._event_seq = itertools.count()
        self._run_id: str | None = None
        self._last_t = 0.0
        self._delivered = 0
        self._stored = 0
        self._finished_delivered = False
        self._finishing = False
        self._late: list[NumberedEvent] = []  # own warnings raised after Finished was journalled
        self._write_wake = asyncio.Event()
        self._journal_lock = asyncio.Lock()
        self._ingest_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._finished: asyncio.Future[str] | None = None
        self._closing = False
        self._writer_done = False
        self._stall_since: float | None = None
        self._stalls = 0
        self._written_samples = 0
        self._journal_failed = False

    # --- the subscriber side: never blocks --------------------------------------------------------

    def open_journal(self, run_id: str) -> Path:
        """Make this session's journal now and hold its lease (raises OSError if it cannot)."""
        if self._journal is None:
            self._journal = JournalWriter.create(self._journal_dir, run_id, self._context)
            self._run_id = run_id
        return self._journal.path

    def deliver(self, record: Record) -> None:
        if isinstance(record, Started):
            try:
                self.open_journal(record.run_id)
            except OSError as exc:
                self._journal_trouble(f"the session's journal cannot be made: {exc}")
                raise
        if self._journal is None:
            raise RuntimeError("the recorder got a record before its session's Started")
        self._last_t = max(self._last_t, record.t)
        if isinstance(record, Event):
            numbered = NumberedEvent(next(self._event_seq), record)  # in step with the writer's
            if self._sink is None:
                self._journal.append(numbered)
        elif self._sink is None:
            self._journal.append(record)
        self._delivered += 1
        if isinstance(record, Finished):
            self._finished_delivered = True
            self._write_wake.set()

    def _warn(self, reason: str, data: dict[str, object]) -> None:
        """Record a warning event of the recorder's own in the session's event stream.

        Journalled like the loop's own events while the session runs; once ``Finished`` is
        journalled it is written just before the outcome, and once the outcome is being written
        the record is closed: the warning is only logged.
        """
        log.warning(reason, **data)
        if self._run_id is None or self._journal is None or self._finishing:
            return
        if self._sink is not None and not self._finished_delivered:
            self._sink(reason, dict(data))  # it comes back numbered, as the writer's own event
            return
        event = NumberedEvent(
            next(self._event_seq),
            Event(self._run_id, self._last_t, EventKind.WARNING, reason, dict(data)),
        )
        if self._finished_delivered:
            self._late.append(event)
        else:
            self._journal.append(event)
            self._delivered += 1

    def _journal_trouble(self, reason: str) -> None:
        if self._journal_failed:
            return
        self._journal_failed = True
        log.error(reason)
        try:
            self._on_failure(StopKind.CONTROLLED, f"{reason}; stopping so that nothing is lost")
        except Exception as exc:  # the stop request must not break delivery
            log.error("on_failure failed", error=str(exc))

    # --- the tasks ---------------------------------------------------------------------------

    def start(self) -> None:
        if not self._tasks:
            self._finished = asyncio.get_running_loop().create_future()
            self._tasks = [asyncio.create_task(self._run_ingest(), name="session-ingest")]
            if self._sink is None:
                self._tasks.append(asyncio.create_task(self._run_journal(), name="session-journal"))
            else:
                self._writer_done = True  # the treatment process writes the journal

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

    @property
    def journal_path(self) -> Path | None:
        return None if self._journal is None else self._journal.path

    def journal_fd(self) -> int:
        """The journal's locked descriptor, to share the lease with the process that writes it."""
        if self._journal is None:
            raise RuntimeError("open_journal first")
        return self._journal.fileno()

    def stats(self) -> RecorderStats:
        return RecorderStats(
            buffered=self._delivered - self._stored,
            written_samples=self._written_samples,
            stalls=self._stalls,
            journal_failed=self._journal_failed,
            finished=self._finished is not None and self._finished.done(),
        )

    async def wait_finished(self) -> str:
        """Wait until ``Finished`` is written and the session sealed; return the seal."""
        self.start()
        assert self._finished is not None
        return await asyncio.shield(self._finished)

    async def close(self) -> None:
        """Journal and store everything published, then stop the tasks.

        Waits as long as the database needs; bound it with ``asyncio.timeout`` if need be. On a
        timeout the records stay in the journal, never discarded, and the tasks keep trying; if
        the process ends first, the next start ingests the journal.
        """
        if not self._tasks:
            if self._journal is not None and self._delivered == 0:
                self._journal.remove()  # made up front, and the session never started
            return
        self._closing = True
        self._write_wake.set()
        self._ingest_wake.set()
        await asyncio.shield(asyncio.gather(*self._tasks))

    async def _run_journal(self) -> None:
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._write_wake.wait(), self._interval)
                self._write_wake.clear()
                written = await self._write_journal()
                if (self._closing and written) or (self._journal and self._journal.closed):
                    return
        finally:
            self._writer_done = True
            self._ingest_wake.set()

    async def _write_journal(self) -> bool:
        """Put what is queued on disk; True when nothing is left queued. One write at a time
        (the ingest writes what is left once the writer has stopped), so records reach the
        disk in the order they were taken."""
        async with self._journal_lock:
            journal = self._journal
            if journal is None or journal.closed:  # not begun, or sealed and removed
                return True
            data = journal.take()
            if not data:
                return True
            try:
                await asyncio.to_thread(journal.write, data)
            except OSError as exc:
                journal.put_back(data)
                self._journal_trouble(f"the session's journal cannot be written: {exc}")
                return False
            self._ingest_wake.set()
            return True

    async def _run_ingest(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ingest_wake.wait(), self._interval)
            self._ingest_wake.clear()
            writer_done = self._writer_done  # read before ingesting: all it wrote is on disk
            if writer_done and self._sink is None:
                # The writer stops once closing has put everything on disk; a warning of the
                # recorder's own raised since (an outage while closing) would stay in memory.
                await self._write_journal()
            caught_up = await self._ingest()
            if self._finished is not None and self._finished.done():
                return
            if self._closing and writer_done and caught_up:
                if self._sink is None and self._delivered > self._stored:
                    continue  # warnings of its own raised in this pass: store them first
                self._let_go()
                return

    def _let_go(self) -> None:
        """Closing without a sealed session: remove an empty journal, or keep the journal on
        disk and release its lease for the next start to recover."""
        if self._journal is None:
            return
        if self._delivered == 0 and self._stored == 0:
            self._journal.remove()
        else:
            log.warning("recorder closed before its session finished; journal kept for recovery")
            self._journal.close()
        if self._reader is not None:
            self._reader.close()

    async def _ingest(self) -> bool:
        """Store what the journal holds beyond what is stored; True once caught up."""
        if self._journal is None:
            return True
        if self._reader is None:
            self._reader = JournalReader(self._journal.path)
        reader = self._reader
        while True:
            items, end = await asyncio.to_thread(reader.peek, self._max_batch)
            if not items:
                return True
            if not await self._store_batch(items):
                return False
            reader.advance(end)
            self._stored += len(items)
            self._written_samples += sum(isinstance(item, Sample) for item in items)
            self._recovered()
            if isinstance(items[-1], Finished):
                await self._seal(items[-1])
                return True

    async def _store_batch(self, batch: list[Item]) -> bool:
        if isinstance(batch[0], Finished) and self._late:
            late, self._late = self._late, []
            self._finishing = True
            if not await self._store_batch(list(late)):
                self._late = late + self._late
                self._finishing = False
                return False
        if isinstance(batch[0], Finished):
            self._finishing = True
        write = asyncio.ensure_future(asyncio.to_thread(self._write, batch))
        done, _ = await asyncio.wait({write}, timeout=self._stall_after)
        if not done:
            self._stalled(f"the database has not answered a write within {self._stall_after:g} s")
        try:
            await write
        except Exception as exc:  # a dropped, failing or refusing database: retry later
            self._finishing = False
            self._stalled(f"database write failed: {exc}")
            return False
        return True

    async def _seal(self, finished: Finished) -> None:
        """Seal (not watched as a stall: a long session takes a while to digest), then drop the
        journal: everything it held is in the store."""
        while True:
            try:
                digest = await asyncio.to_thread(self._seal_now, finished)
                break
            except Exception as exc:
                self._stalled(f"sealing failed: {exc}")
                await asyncio.sleep(self._interval)
        self._recovered()
        assert self._journal is not None and self._reader is not None
        self._reader.close()
        self._journal.remove()
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(digest)

    def _stalled(self, reason: str) -> None:
        if self._stall_since is not None:
            return
        self._stall_since = time.monotonic()
        self._stalls += 1
        self._warn(
            f"{reason}; records wait in the journal until it is back",
            {"waiting": self._delivered - self._stored},
        )

    def _recovered(self) -> None:
        if self._stall_since is None:
            return
        away = time.monotonic() - self._stall_since
        self._stall_since = None
        self._warn(
            f"database back after {away:.1f} s; waiting records written",
            {"away_s": round(away, 3), "waiting": self._delivered - self._stored},
        )

    def _write(self, batch: list[Item]) -> None:
        """Write one batch in order (worker thread)."""
        write_batch(self._store, self._context, batch)

    def _seal_now(self, finished: Finished) -> str:
        row = self._store.get_session(finished.run_id)
        if row.seal_digest is not None:  # a retry after the seal was written
            return row.seal_digest
        return seal(self._store, finished.run_id)


def write_batch(store: Store, context: SessionContext, batch: list[Item]) -> None:
    """Write journalled records to the store, idempotently (a batch retried after a late
    acknowledgement, or ingested again after a crash, changes nothing)."""
    samples: list[Sample] = []
    events: list[NumberedEvent] = []
    for item in batch:
        if isinstance(item, Started):
            store.create_session(item, context)
        elif isinstance(item, Sample):
            samples.append(item)
        elif isinstance(item, NumberedEvent):
            events.append(item)
        else:
            _flush(store, samples, events)
            samples, events = [], []
            _finish(store, item)
    _flush(store, samples, events)


def _flush(store: Store, samples: list[Sample], events: list[NumberedEvent]) -> None:
    if samples or events:
        run_id = samples[0].run_id if samples else events[0].event.run_id
        store.add_batch(run_id, samples, events)


def _finish(store: Store, finished: Finished) -> None:
    if store.get_session(finished.run_id).outcome is not None:  # a retry: already recorded
        return
    row = store.finish(finished)
    if row.sample_count != finished.sample_count:
        log.warning(
            "stored sample count differs from the loop's",
            stored=row.sample_count,
            published=finished.sample_count,
        )

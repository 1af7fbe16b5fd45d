"""A treatment: one session's control loop, run in the workstation's control host.

The workstation hands each session to its control host (:mod:`session.control_host`, started by
:mod:`session.treatment_proxy`) as two pipes and the session's journal, already made and locked,
and writes one :class:`Order` line down the first pipe. :func:`serve` then holds the table
connection (opened here from the table's URL), the profile, the supervisor and the heartbeat, and
nothing else: no database, no HTTP, no views, so no export, query or bug in the workstation can
delay a tick or take the session with it.

Channel, one JSON line per message. In (commands): ``{"op": "pause" | "resume" | "stop" |
"release" | "warn" | "settings", ...}``. Out (records): every record as its journal line
(:func:`session.journal.encode`, events numbered), ``{"k": "reply", "id", "violations"}`` for a
settings change, ``{"k": "refused" | "error", ...}`` when nothing could start, and last
``{"k": "end", "status"}``, the session's exit status (0: ran and journalled everything).

Records are journalled here (fsync at the flush interval), so the journal is written by the
process that is running the table whatever happens to the workstation. The flock on the journal
is shared with the workstation (one open file, a descriptor in each process): the session's lease
is held while either side holds it. If the commands reach their end (the workstation is gone),
the session ends with a controlled stop and release; the journal stays for the next start's
recovery.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import pickle
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import structlog

from devices.clock import ScaledClock
from devices.contract import StopKind
from devices.errors import TractionError
from devices.heap import set_aside_once
from devices.limits import PatientFacts, SafetyLimits
from devices.loop import ControlLoop, StartRefused
from devices.opening import open_device
from devices.priority import leave_real_time, run_in_real_time, scheduling
from devices.profiles import ForceProfile
from devices.records import Event, EventKind, Finished, Record, Sample
from devices.stream import Stream
from devices.units import ForceUnit
from session.journal import MAX_LINE_BYTES, Item, JournalWriter
from session.numbered import NumberedEvent

log = structlog.get_logger(__name__)

T = TypeVar("T")

OUTBOX_LIMIT = 4 * 1024 * 1024  # a parent this far behind gets no samples (they are journalled)
SAMPLE_BATCH_S = 0.05  # samples reach the parent at most this late (real time), in one write
DRAIN_S = 5.0
EXIT_REFUSED = 3
EXIT_ERROR = 1


def pack(value: object) -> str:
    """A typed value (profile, limits, patient facts) for the order line. Pickled: both ends run
    this same code, the pipe is private to them, and the values arrive exactly as checked."""
    return base64.b64encode(pickle.dumps(value)).decode()


def unpack(text: str, kind: type[T]) -> T:
    value = pickle.loads(base64.b64decode(text))  # noqa: S301 - our own parent, a private pipe
    if not isinstance(value, kind):
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Order:
    """Everything a treatment needs, as JSON (the control host shares no memory with the
    workstation)."""

    wire_url: str  # the table's own URL (a sim:// table's simulator is the parent's)
    run_id: str
    profile: str  # packed ForceProfile
    patient: str  # packed PatientFacts
    limits: str  # packed SafetyLimits
    journal_path: str
    journal_fd: int  # the workstation's; the host's own arrives beside the pipes
    time_scale: float = 1.0
    tick_hz: float | None = None
    operator_confirmed: bool = False
    flush_interval: float = 0.25
    label: str | None = None
    unit: str = ForceUnit.LBF.value
    extra: dict[str, Any] = field(default_factory=dict)
    real_time_priority: int = 10  # SCHED_FIFO where allowed, on a x1 clock; 0: niceness only

    def to_line(self) -> bytes:
        return json.dumps(asdict(self), default=str, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> Order:
        return cls(**json.loads(line))


async def open_channel(
    read_fd: int, write_fd: int
) -> tuple[asyncio.StreamReader, asyncio.BaseTransport, asyncio.StreamWriter]:
    """One side of a session's channel, over the pipe ends it holds (both now owned by the
    streams): the lines it reads, the transport under them (to close when the side is done) and
    the lines it writes. The workstation reads records and writes commands; the host the other way
    round."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
    incoming, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
    )
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(write_fd, "wb", buffering=0)
    )
    return reader, incoming, asyncio.StreamWriter(transport, protocol, None, loop)


class Ahead:
    """Whether the control host runs in real time: while it holds at least one session on a x1
    clock that asks for it (every real table), where the system allows it.

    It starts once that session's table is connected, so the burst of CPU before (the driver's
    imports, the connection) never holds a core from everything else. On a scaled clock (a demo,
    a test) a loop ticks ``time_scale`` times as often, at x20 1000 ticks a second, most of a
    core: such a session alone leaves the host at its niceness. The last real-time session to end
    puts every thread back under ordinary scheduling: writing up and closing are no tick's
    business."""

    def __init__(self) -> None:
        self.holders = 0

    def enter(self, order: Order) -> tuple[bool, str]:
        """Take ``order``'s session into account; whether it holds real time, and how the host
        now runs (for the session's record)."""
        holds = order.time_scale == 1.0 and order.real_time_priority > 0
        if holds:
            self.holders += 1
            run_in_real_time(order.real_time_priority)
        return holds, scheduling()

    def leave(self) -> None:
        """A session that held real time has ended."""
        self.holders -= 1
        if self.holders == 0:
            leave_real_time()


class Outbox:
    """Sends each record to the parent without ever waiting for it.

    Samples go in batches, every ``SAMPLE_BATCH_S`` of real time: one pipe write (and one wake-up
    of the parent) for a batch instead of one per tick, where a live view refreshes a few times
    a second anyway. Everything else (events, the start and end of the session, replies) goes at
    once, after the samples held before it, so the parent sees every record in order. A parent
    that stops reading (busy, or gone) gets no more samples until it catches up; everything
    else is always queued. Everything is in the journal regardless."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._held: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self.dropped = 0  # samples the parent never got (they are in the journal)

    def send(self, line: bytes, droppable: bool = False) -> None:
        if droppable:
            self._held.append(line)
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(SAMPLE_BATCH_S, self.flush)
            return
        self.flush()
        self._write(line)

    def send_doc(self, doc: dict[str, Any]) -> None:
        self.send(json.dumps(doc, default=str, separators=(",", ":")).encode() + b"\n")

    def flush(self) -> None:
        """Send the samples held so far (or count them dropped, for a parent this far behind)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        held, self._held = self._held, []
        if not held:
            return
        if self._writer.transport.get_write_buffer_size() > OUTBOX_LIMIT:
            self.dropped += len(held)
            return
        self._write(b"".join(held))

    def _write(self, data: bytes) -> None:
        if not self._writer.transport.is_closing():
            self._writer.write(data)

    async def close(self) -> None:
        """Hand the parent what is held and queued (bounded: a parent that is gone reads
        nothing)."""
        self.flush()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(DRAIN_S):
                await self._writer.drain()
        self._writer.close()


class Journaller:
    """The stream's subscriber in the treatment process: numbers events, queues every record for
    the journal and the parent, and puts the journal on disk at least every ``interval`` seconds.
    A journal that cannot be written stops the session (controlled): nothing unrecorded runs."""

    def __init__(self, journal: JournalWriter, interval: float, outbox: Outbox) -> None:
        self._journal = journal
        self._interval = interval
        self._outbox = outbox
        self._seq = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._failed = False
        self.short = False  # closed with records that never reached the disk
        self.stop_session: Callable[[StopKind, str], None] | None = None  # the loop's, once made

    def deliver(self, record: Record) -> None:
        item: Item
        if isinstance(record, Event):
            item = NumberedEvent(self._seq, record)
            self._seq += 1
        else:
            item = record
        line = self._journal.append(item)
        self._outbox.send(line, droppable=isinstance(record, Sample))
        if isinstance(record, Finished):
            self._wake.set()

    async def run(self) -> None:
        """Write what is queued at every interval (or at once for ``Finished``); once closing,
        until nothing is left, however much was queued while a write was under way."""
        while True:
            if not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            data = self._journal.take()
            if not data:
                if self._closing:
                    return
                continue
            try:
                await asyncio.to_thread(self._journal.write, data)
            except Exception as exc:  # a full disk, or no memory left for the writing thread
                self._journal.put_back(data)
                if not self._failed and self.stop_session is not None:
                    reason = f"the session's journal cannot be written: {exc}"
                    log.error(reason)
                    self.stop_session(StopKind.CONTROLLED, f"{reason}; stopping so nothing is lost")
                self._failed = True
                if self._closing:
                    self.short = True  # the exit status says so: the parent recovers the rest
                    return
                await asyncio.sleep(self._interval)

    async def close(self, task: asyncio.Task[None]) -> None:
        """Write what is queued and stop."""
        self._closing = True
        self._wake.set()
        await task


async def _obey(
    reader: asyncio.StreamReader, loop: ControlLoop, stream: Stream, outbox: Outbox
) -> None:
    """Carry out the parent's commands; at the end of stdin (the parent is gone) stop. If the
    channel itself fails (out of memory, say), the operator's controls no longer reach the table:
    release it."""
    try:
        await _commands(reader, loop, stream, outbox)
    except Exception as exc:
        loop.release(f"the command channel failed ({type(exc).__name__}: {exc}): released")


async def _commands(
    reader: asyncio.StreamReader, loop: ControlLoop, stream: Stream, outbox: Outbox
) -> None:
    while True:
        try:
            line = await reader.readline()
        except (ValueError, OSError) as exc:  # a line too long, or the pipe broke
            log.error("command channel failed", error=str(exc))
            line = b""
        if not line.endswith(b"\n"):
            loop.stop("the workstation process ended: controlled stop")
            return
        try:
            command = json.loads(line)
            op = command["op"]
            reason = str(command.get("reason") or f"operator {op}")
        except (ValueError, KeyError, TypeError) as exc:
            log.error("unreadable command ignored", error=str(exc))
            continue
        if op == "pause":
            loop.pause(reason)
        elif op == "resume":
            loop.resume(reason)
        elif op == "stop":
            loop.stop(reason)
        elif op == "release":
            loop.release(reason)
        elif op == "warn":
            data = dict(command.get("data") or {})
            stream.publish(Event(loop.run_id, loop.clock.now(), EventKind.WARNING, reason, data))
        elif op == "settings":
            try:
                profile = unpack(command["profile"], ForceProfile)
                violations = loop.update_profile(
                    profile, bool(command.get("operator_confirmed")), reason
                )
                doc = {
                    "k": "reply",
                    "id": command.get("id"),
                    "violations": [v.to_dict() for v in violations],
                }
            except (TractionError, KeyError, TypeError, ValueError, pickle.PickleError) as exc:
                doc = {"k": "reply", "id": command.get("id"), "error": str(exc)}
            outbox.send_doc(doc)
        else:
            log.error("unknown command ignored", op=op)


async def serve(
    order: Order,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    ahead: Ahead,
    running: set[ControlLoop],
) -> int:
    """Run the ordered session to its end: commands in on ``reader``, records out on ``writer``,
    the last of them the session's exit status (also returned). ``running`` holds the loop while
    it runs, so that the host can release every table at once. The host's descriptor on the
    journal is closed before the end is sent: from then on only the workstation holds the lease."""
    outbox = Outbox(writer)
    clock = ScaledClock(order.time_scale)
    journal = JournalWriter(Path(order.journal_path), order.journal_fd)
    stream = Stream()
    journaller = Journaller(journal, order.flush_interval, outbox)
    writing = asyncio.create_task(journaller.run(), name="journal")
    status = 0
    try:
        table = open_device(order.wire_url, clock)
        loop = ControlLoop(
            table,
            unpack(order.profile, ForceProfile),
            patient=unpack(order.patient, PatientFacts),
            limits=unpack(order.limits, SafetyLimits),
            clock=clock,
            stream=stream,
            tick_hz=order.tick_hz,
            operator_confirmed=order.operator_confirmed,
            run_id=order.run_id,
            extra=order.extra,
            label=order.label,
            unit=ForceUnit(order.unit),
        )
        await table.connect()
    except TractionError as exc:
        outbox.send_doc({"k": "error", "message": str(exc)})
        await journaller.close(writing)
        journal.close()
        outbox.send_doc({"k": "end", "status": EXIT_ERROR})
        await outbox.close()
        return EXIT_ERROR
    # The host's start-up is over: its heap would otherwise be traversed by every full
    # collection, a pause of every session in the middle of a tick. Set aside once only: a later
    # session's start-up, and what an ended one leaves, must stay collectable.
    loop.extra["heap_set_aside"] = set_aside_once()
    holds_real_time, loop.extra["scheduling"] = ahead.enter(order)
    stream.subscribe(journaller)
    journaller.stop_session = loop.request_stop
    commands = asyncio.create_task(_obey(reader, loop, stream, outbox), name="commands")
    running.add(loop)
    try:
        try:
            await loop.run()
        finally:  # released: the rest (journal, closing) is no tick's business
            running.discard(loop)
            if holds_real_time:
                ahead.leave()
    except StartRefused as refused:
        outbox.send_doc(
            {
                "k": "refused",
                "reasons": refused.reasons,
                "violations": [v.to_dict() for v in refused.violations],
            }
        )
        status = EXIT_REFUSED
    except TractionError as exc:  # before the start: nothing moved
        outbox.send_doc({"k": "error", "message": str(exc)})
        status = EXIT_ERROR
    except Exception:  # a bug: the loop has released the table; the journal holds the rest
        log.exception("treatment failed", session=order.run_id)
        status = EXIT_ERROR
    finally:
        commands.cancel()
        await journaller.close(writing)
        journal.close()
        with contextlib.suppress(Exception):
            await table.close()
        status = EXIT_ERROR if journaller.short else status
        outbox.send_doc({"k": "end", "status": status})
        await outbox.close()
    return status

"""The workstation's handle on a treatment process (:mod:`session.treatment_process`).

:class:`TreatmentProcess` offers the control loop's controls (pause, resume, stop, release,
request_stop, update_profile) and sends each as one line down the child's stdin; it reads the
child's records from its stdout and publishes them on a local :class:`devices.stream.Stream`, so
the recorder, the lockout watch, the live display and the HTTP stream subscribe as they always did.

The child is started in a session of its own (a Ctrl-C at the terminal reaches only the parent,
which relays it as a stop or a release) with the journal's locked descriptor passed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from devices.contract import StopKind
from devices.errors import ConfigError, TractionError
from devices.limits import PatientFacts, SafetyLimits, Severity, Violation
from devices.loop import StartRefused
from devices.profiles import ForceProfile
from devices.records import Event, EventKind, Finished, Record, Started
from devices.stream import Stream
from devices.units import ForceUnit
from session.journal import MAX_LINE_BYTES, decode
from session.numbered import NumberedEvent
from session.treatment_process import Order, pack

log = structlog.get_logger(__name__)

DEFAULT_MEMORY_LIMIT = 1024**3
REPLY_TIMEOUT_S = 5.0
WIND_DOWN_S = 30.0  # from Finished to the process's exit: the journal's last flush, then closing


class TreatmentGone(TractionError):
    """The treatment process is not running (ended, or not yet started): nothing was sent."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"session {run_id}: its treatment process is not running")


@dataclass
class ProcessEnd:
    """How the treatment process ended: the ``Finished`` it sent, if any, and its exit status
    (negative: the signal that killed it)."""

    returncode: int
    started: Started | None = None
    finished: Finished | None = None
    refused: StartRefused | None = None
    error: str | None = None

    @property
    def clean(self) -> bool:
        """It ran to its end and put everything in the journal."""
        return self.returncode == 0 and self.finished is not None

    def cause(self) -> str:
        if self.returncode < 0:
            return f"the treatment process was killed by signal {-self.returncode}"
        return f"the treatment process ended with status {self.returncode}"


def _violation(d: dict[str, Any]) -> Violation:
    return Violation(d["field"], d["value"], d["limit"], d["message"], Severity(d["severity"]))


@dataclass
class TreatmentProcess:
    """One session's control loop, run in a child process; ``run()`` once."""

    wire_url: str
    profile: ForceProfile
    patient: PatientFacts
    limits: SafetyLimits
    stream: Stream
    time_scale: float = 1.0
    tick_hz: float | None = None
    operator_confirmed: bool = False
    flush_interval: float = 0.25
    label: str | None = None
    unit: ForceUnit = ForceUnit.LBF
    extra: dict[str, Any] = field(default_factory=dict)
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._queued: list[bytes] = []  # commands given before the process started
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._ended = False
        self.paused = False
        self.end: ProcessEnd | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    # --- controls (the ControlLoop's, over the channel) ----------------------------------------

    def pause(self, reason: str = "operator pause") -> None:
        self._send({"op": "pause", "reason": reason})

    def resume(self, reason: str = "operator resume") -> None:
        self._send({"op": "resume", "reason": reason})

    def stop(self, reason: str = "operator stop") -> None:
        self._send({"op": "stop", "reason": reason})

    def release(self, reason: str = "operator emergency release") -> None:
        self._send({"op": "release", "reason": reason})

    def request_stop(self, kind: StopKind, reason: str) -> None:
        if kind is StopKind.RELEASE:
            self.release(reason)
        else:
            self.stop(reason)

    def warn(self, reason: str, data: dict[str, object]) -> None:
        """Have a warning of the workstation's own (a database stall) recorded in the session."""
        self._send({"op": "warn", "reason": reason, "data": data})

    async def update_profile(
        self, profile: ForceProfile, operator_confirmed: bool = False, reason: str = "operator"
    ) -> list[Violation]:
        """Change settings live; the treatment process checks them and answers with every
        violation (with a blocking one nothing changed, and the refusal is recorded)."""
        if self._process is None or self._ended:
            raise TreatmentGone(self.run_id)
        ident = next(self._ids)
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[ident] = reply
        self._send(
            {
                "op": "settings",
                "id": ident,
                "profile": pack(profile),
                "operator_confirmed": operator_confirmed,
                "reason": reason,
            }
        )
        try:
            async with asyncio.timeout(REPLY_TIMEOUT_S):
                doc = await reply
        finally:
            self._replies.pop(ident, None)
        if "error" in doc:
            raise ConfigError("settings", str(doc["error"]))
        return [_violation(v) for v in doc["violations"]]

    def _send(self, doc: dict[str, Any]) -> None:
        line = json.dumps(doc, default=str, separators=(",", ":")).encode() + b"\n"
        if self._process is None:
            self._queued.append(line)
            return
        stdin = self._process.stdin
        if self._ended or stdin is None or stdin.is_closing():
            log.warning("command for an ended treatment process dropped", op=doc["op"])
            return
        stdin.write(line)

    # --- the run ---------------------------------------------------------------------------------

    async def run(self, journal_path: Path, journal_fd: int) -> ProcessEnd:
        """Start the process on the session's journal (locked on ``journal_fd``), relay its records
        until it ends, and say how it ended. Cancelling releases the table and closes the
        channel (the process then ends on its own)."""
        if self._process is not None:
            raise RuntimeError("a TreatmentProcess runs once")
        order = Order(
            wire_url=self.wire_url,
            run_id=self.run_id,
            profile=pack(self.profile),
            patient=pack(self.patient),
            limits=pack(self.limits),
            journal_path=str(journal_path),
            journal_fd=journal_fd,
            time_scale=self.time_scale,
            tick_hz=self.tick_hz,
            operator_confirmed=self.operator_confirmed,
            flush_interval=self.flush_interval,
            label=self.label,
            unit=self.unit.value,
            extra=self.extra,
            memory_limit_bytes=self.memory_limit_bytes,
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "session.treatment_process",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            pass_fds=(journal_fd,),
            start_new_session=True,
            limit=MAX_LINE_BYTES,
        )
        self._process = process
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(order.to_line() + b"".join(self._queued))
        self._queued.clear()
        end = ProcessEnd(returncode=0)
        try:
            await self._relay(process.stdout, end, until_finished=True)
            try:  # after Finished it only writes the journal's tail and closes: a bounded wait
                async with asyncio.timeout(WIND_DOWN_S):
                    await self._relay(process.stdout, end, until_finished=False)
                    end.returncode = await process.wait()
            except TimeoutError:
                log.error("treatment process did not end after its session; killed", pid=self.pid)
                process.kill()
                end.returncode = await process.wait()
        except asyncio.CancelledError:
            self.release("the workstation's treatment task was cancelled")
            process.stdin.close()
            raise
        finally:
            self._ended = True
            for reply in self._replies.values():
                if not reply.done():
                    reply.set_exception(TreatmentGone(self.run_id))
            if not process.stdin.is_closing():
                process.stdin.close()
        self.end = end
        return end

    async def _relay(
        self, stdout: asyncio.StreamReader, end: ProcessEnd, until_finished: bool
    ) -> None:
        """Publish the process's records until its end of file (or, if asked, its Finished)."""
        async for line in stdout:
            try:
                self._take(line, end)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("unreadable line from the treatment process", error=str(exc))
            if until_finished and end.finished is not None:
                return

    def _take(self, line: bytes, end: ProcessEnd) -> None:
        if not line.startswith(b"["):
            doc = json.loads(line)
            kind = doc.get("k")
            if kind == "reply":
                reply = self._replies.get(doc.get("id"))
                if reply is not None and not reply.done():
                    reply.set_result(doc)
                return
            if kind == "refused":
                violations = [_violation(v) for v in doc["violations"]]
                end.refused = StartRefused(list(doc["reasons"]), violations)
                return
            if kind == "error":
                end.error = str(doc["message"])
                return
        item = decode(line, self.run_id)
        record: Record = item.event if isinstance(item, NumberedEvent) else item
        if isinstance(record, Started):
            end.started = record
        elif isinstance(record, Finished):
            end.finished = record
        elif isinstance(record, Event) and record.kind in (EventKind.PAUSE, EventKind.RESUME):
            self.paused = record.kind is EventKind.PAUSE
        with contextlib.suppress(Exception):  # the stream isolates subscribers; belt and braces
            self.stream.publish(record)

"""The workstation's handle on a treatment run in its control host (:mod:`session.control_host`).

:class:`TreatmentProcess` offers the control loop's controls (pause, resume, stop, release,
request_stop, update_profile) and sends each as one line down the session's command pipe; it
reads the session's records from its record pipe and publishes them on a local
:class:`devices.stream.Stream`, so the recorder, the lockout watch, the live display and the HTTP
stream subscribe as they always did.

The host (:mod:`session.control_hosts`) runs in a session of its own: a Ctrl-C at the terminal
reaches only the workstation, which relays it as a stop or a release. The session's pipes and the
journal's locked descriptor are handed to it over its socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
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
from session.control_hosts import ControlHost, control_host
from session.journal import decode
from session.numbered import NumberedEvent
from session.treatment_process import EXIT_ERROR, Order, open_channel, pack

log = structlog.get_logger(__name__)

DEFAULT_MEMORY_LIMIT = 1024**3
REPLY_TIMEOUT_S = 5.0
WIND_DOWN_S = 30.0  # from Finished to the session's end: the journal's last flush, then closing
HOST_EXIT_S = 5.0  # a session's records ended without its end: how long the host may take to die


class TreatmentGone(TractionError):
    """The treatment is not running (ended, or not yet started): nothing was sent."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"session {run_id}: its treatment is not running")


@dataclass
class ProcessEnd:
    """How the treatment ended: the ``Finished`` it sent, if any, and its exit status (the one
    it sent, or, if the control host died first, the host's: negative, the signal that killed
    it)."""

    returncode: int
    started: Started | None = None
    finished: Finished | None = None
    refused: StartRefused | None = None
    error: str | None = None
    ended: bool = False  # the session's end arrived
    host_lost: bool = False  # the records ended without it

    @property
    def clean(self) -> bool:
        """It ran to its end and put everything in the journal."""
        return self.returncode == 0 and self.finished is not None and not self.host_lost

    def cause(self) -> str:
        if self.returncode < 0:
            return f"the treatment process was killed by signal {-self.returncode}"
        if self.host_lost:
            return f"the treatment process lost the session (status {self.returncode})"
        return f"the treatment process ended with status {self.returncode}"


def _violation(d: dict[str, Any]) -> Violation:
    return Violation(d["field"], d["value"], d["limit"], d["message"], Severity(d["severity"]))


@dataclass
class TreatmentProcess:
    """One session's control loop, run in the workstation's control host; ``run()`` once."""

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
        self._host: ControlHost | None = None
        self._commands: asyncio.StreamWriter | None = None
        self._queued: list[bytes] = []  # commands given before the process started
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._ended = False
        self.paused = False
        self.end: ProcessEnd | None = None

    @property
    def pid(self) -> int | None:
        """The control host's process (every treatment of this workstation runs in it)."""
        return None if self._host is None else self._host.pid

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
        if self._commands is None or self._ended:
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
        if self._commands is None:
            self._queued.append(line)
            return
        if self._ended or self._commands.is_closing():
            log.warning("command for an ended treatment dropped", op=doc["op"])
            return
        self._commands.write(line)

    # --- the run ---------------------------------------------------------------------------------

    async def run(self, journal_path: Path, journal_fd: int) -> ProcessEnd:
        """Hand the session to the control host on its journal (locked on ``journal_fd``), relay
        its records until it ends, and say how it ended. Cancelling releases the table and closes
        the commands (the session then ends on its own)."""
        if self._host is not None:
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
        )
        host = control_host(self.memory_limit_bytes)
        records, incoming, commands = await self._hand_over(host, journal_fd)
        self._host, self._commands = host, commands
        commands.write(order.to_line() + b"".join(self._queued))
        self._queued.clear()
        end = ProcessEnd(returncode=0)
        try:
            await self._relay(records, end, until_finished=True)
            try:  # after Finished it only writes the journal's tail and closes: a bounded wait
                async with asyncio.timeout(WIND_DOWN_S):
                    await self._relay(records, end, until_finished=False)
            except TimeoutError:
                log.error("treatment did not end after its session", pid=self.pid)
                end.returncode, end.host_lost = EXIT_ERROR, True
            if end.host_lost:
                status = await host.exit_status(HOST_EXIT_S)
                end.returncode = EXIT_ERROR if status is None else status
        except asyncio.CancelledError:
            self.release("the workstation's treatment task was cancelled")
            commands.close()
            raise
        finally:
            self._ended = True
            for reply in self._replies.values():
                if not reply.done():
                    reply.set_exception(TreatmentGone(self.run_id))
            if not commands.is_closing():
                commands.close()
            incoming.close()
        self.end = end
        return end

    async def _hand_over(
        self, host: ControlHost, journal_fd: int
    ) -> tuple[asyncio.StreamReader, asyncio.BaseTransport, asyncio.StreamWriter]:
        """Make the session's pipes, give the host its ends and the journal, keep ours."""
        commands_in, commands_out = os.pipe()
        records_in, records_out = os.pipe()
        try:
            host.hand_over(commands_in, records_out, journal_fd)
        except OSError as exc:
            os.close(commands_out)
            os.close(records_in)
            raise StartRefused([f"the control process did not take the session: {exc}"]) from exc
        finally:
            os.close(commands_in)
            os.close(records_out)
        return await open_channel(records_in, commands_out)

    async def _relay(
        self, records: asyncio.StreamReader, end: ProcessEnd, until_finished: bool
    ) -> None:
        """Publish the session's records until its end (or, if asked, its Finished). Records that
        stop without the end mean the host is gone."""
        if end.ended:
            return
        async for line in records:
            try:
                self._take(line, end)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("unreadable line from the treatment", error=str(exc))
            if end.ended or (until_finished and end.finished is not None):
                return
        end.host_lost = True

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
            if kind == "end":
                end.returncode, end.ended = int(doc["status"]), True
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

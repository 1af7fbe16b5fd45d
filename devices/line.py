"""A table speaking the line-v1 ASCII protocol over a serial port (``line:///dev/ttyUSB1?baud=9600``).

All serial I/O runs in one dedicated worker thread per table, so requests are strictly one at a time
even when a caller gives up waiting, and the event loop never blocks. Each exchange discards stale
input, writes one request and reads until the reply with the same sequence number arrives or the
timeout (real seconds, the ``timeout`` URL parameter) runs out. Wire failures become typed errors
naming the table; after the port vanishes, every request tries to open it again, so the driver
reconnects by itself when the port comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import termios
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import serial
import structlog

from devices.clock import Clock, format_seconds
from devices.contract import FULL_SAFETY, DeviceInfo, SafetyFeatures, StopKind, TableState
from devices.errors import ConfigError, DeviceRejected, LinkLost, ProtocolError, TableTimeout
from devices.faults import device_fault_name
from devices.lineproto import (
    FAULT_NAMES,
    MAX_FRAME,
    NO_SEQUENCE,
    AckReply,
    ErrorReply,
    FrameError,
    IdentityReply,
    LimitReply,
    LineReceiver,
    ReceivedLine,
    Reply,
    Request,
    StateReply,
    Status,
    Verb,
    decode_reply,
    format_sequence,
    to_decinewtons,
    wire_seconds,
)
from devices.linkcauses import serial_cause
from devices.urls import TableAddress

PROTOCOL = "line-v1"
DEFAULT_BAUD = 9600
DEFAULT_TIMEOUT_S = 0.3
_POLL_S = 0.02  # longest single blocking read, so the exchange deadline is checked often
_PORT_ERRORS = (serial.SerialException, OSError, termios.error)

T = TypeVar("T")
log = structlog.get_logger(__name__)


class LineTable:
    """:class:`devices.contract.Table` over line-v1; open it with :func:`open_line_table`."""

    def __init__(
        self, port: str, baud: int, timeout_s: float, clock: Clock, name: str, url: str = ""
    ) -> None:
        self.url = url  # what it was opened from: another process opens it again from this
        self._port_path = port
        self._baud = baud
        self._timeout_s = timeout_s
        self._clock = clock
        self._name = name
        self._serial: serial.Serial | None = None
        self._wanted = False  # connect() called and close() not: reopen after a lost port
        self._sequence = 0
        self._heartbeats = 0
        self._worker: ThreadPoolExecutor | None = None

    # ----- contract -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def tick_wire_seconds(self) -> float:
        """Heartbeat, target write and state read: requests and replies at their longest."""
        seq = "FF"
        frames = (
            Request(seq, Verb.HEARTBEAT, 65535).encode(),
            AckReply(seq).encode(),
            Request(seq, Verb.SET_TARGET, 99999).encode(),
            AckReply(seq).encode(),
            Request(seq, Verb.READ_STATE).encode(),
            StateReply(seq, 9999.9, 9999.9, Status(0xFF), 255, 9999.9, 65535).encode(),
        )
        return wire_seconds(sum(len(frame) for frame in frames), self._baud)

    @property
    def safety_features(self) -> SafetyFeatures:
        """line-v1 has them all: both force channels and the sample counter in every ``ST``, the
        ``FL``/``FQ`` force limit and the operator stop bit."""
        return FULL_SAFETY

    async def connect(self) -> None:
        self._wanted = True
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"line {self._name}")
        await self._in_worker(self._ensure_open)

    async def close(self) -> None:
        self._wanted = False
        worker, self._worker = self._worker, None
        if worker is not None:
            await asyncio.get_running_loop().run_in_executor(worker, self._drop_port)
            worker.shutdown(wait=False)

    async def identify(self) -> DeviceInfo:
        reply = await self._exchange(Verb.IDENTIFY, None, IdentityReply)
        return DeviceInfo(
            model=reply.model,
            serial_number=reply.serial_number,
            firmware=reply.firmware,
            rated_max_force_n=reply.rated_max_force_n,
            manufacturer=reply.manufacturer,
        )

    async def read_state(self) -> TableState:
        reply = await self._exchange(Verb.READ_STATE, None, StateReply)
        status = reply.status
        fault = device_fault_name(reply.fault_code, FAULT_NAMES)
        if fault == "unknown_device_fault":  # the raw code stays here, in the log, for diagnosis
            log.warning("unknown device fault code", table=self._name, code=reply.fault_code)
        return TableState(
            t=self._clock.now(),
            measured_force_n=reply.measured_force_n,
            target_force_n=reply.target_force_n,
            running=Status.RUNNING in status,
            ready=Status.READY in status,
            released=Status.RELEASED in status,
            fault=fault,
            stop_switch_pressed=Status.STOP_SWITCH_PRESSED in status,
            stop_switch_connected=Status.STOP_SWITCH_CONNECTED in status,
            watchdog_tripped=Status.WATCHDOG_TRIPPED in status,
            operator_stop_pressed=Status.OPERATOR_STOP_PRESSED in status,
            redundant_force_n=reply.redundant_force_n,
            sample_counter=reply.sample_counter,
        )

    async def set_target(self, force_n: float) -> None:
        try:
            value = to_decinewtons(force_n)
        except FrameError as error:
            raise ProtocolError(self._name, f"cannot send target: {error}") from None
        await self._exchange(Verb.SET_TARGET, value, AckReply)

    async def start(self) -> None:
        await self._exchange(Verb.START, None, AckReply)

    async def stop(self, kind: StopKind) -> None:
        verb = Verb.RELEASE if kind is StopKind.RELEASE else Verb.STOP_CONTROLLED
        await self._exchange(verb, None, AckReply)

    async def clear_fault(self) -> None:
        await self._exchange(Verb.CLEAR_FAULT, None, AckReply)

    async def heartbeat(self) -> None:
        self._heartbeats = (self._heartbeats + 1) & 0xFFFF
        await self._exchange(Verb.HEARTBEAT, self._heartbeats, AckReply)

    async def set_heartbeat_timeout(self, seconds: float) -> None:
        milliseconds = round(seconds * 1000)
        if not 0 <= milliseconds <= 99_999:
            raise ProtocolError(
                self._name,
                f"heartbeat timeout {format_seconds(seconds)} outside the line-v1 range 0..99.999 s",
            )
        await self._exchange(Verb.HEARTBEAT_TIMEOUT, milliseconds, AckReply)

    async def set_force_limit(self, force_n: float) -> None:
        try:
            value = to_decinewtons(force_n)
        except FrameError as error:
            raise ProtocolError(self._name, f"cannot send force limit: {error}") from None
        await self._exchange(Verb.FORCE_LIMIT, value, AckReply)

    async def read_force_limit(self) -> float:
        reply = await self._exchange(Verb.FORCE_LIMIT_QUERY, None, LimitReply)
        return reply.force_limit_n

    # ----- one exchange ---------------------------------------------------------------------
    async def _exchange(self, verb: Verb, argument: int | None, expected: type[T]) -> T:
        if not self._wanted:
            raise LinkLost(self._name, "not connected; call connect() first")
        self._sequence = (self._sequence + 1) & 0xFF
        request = Request(format_sequence(self._sequence), verb, argument)
        reply = await self._in_worker(lambda: self._transact(request))
        if isinstance(reply, ErrorReply):
            raise DeviceRejected(
                self._name, f"{verb.name.lower()} refused: {reply.meaning}", reply.code
            )
        if not isinstance(reply, expected):
            raise ProtocolError(
                self._name,
                f"{verb.value} request got a {type(reply).__name__}, expected {expected.__name__}",
            )
        return reply

    async def _in_worker(self, job: Callable[[], T]) -> T:
        if self._worker is None:
            raise LinkLost(self._name, "not connected; call connect() first")
        return await asyncio.get_running_loop().run_in_executor(self._worker, job)

    # ----- the worker thread's side ---------------------------------------------------------
    def _ensure_open(self) -> serial.Serial:
        if self._serial is not None:
            return self._serial
        try:
            self._serial = serial.Serial(
                self._port_path,
                self._baud,
                timeout=min(_POLL_S, self._timeout_s),
                write_timeout=self._timeout_s,
            )
        except _PORT_ERRORS as error:
            raise LinkLost(
                self._name, f"cannot open serial port {serial_cause(self._port_path, error)}"
            ) from None
        return self._serial

    def _drop_port(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            with contextlib.suppress(*_PORT_ERRORS):  # the port may be gone already
                port.close()

    def _transact(self, request: Request) -> Reply:
        port = self._ensure_open()
        try:
            port.reset_input_buffer()  # stale bytes from an earlier timeout never pair with this
            port.write(request.encode())
            return self._read_reply(port, request.sequence, time.monotonic() + self._timeout_s)
        except serial.SerialTimeoutException:
            raise TableTimeout(
                self._name, f"write not done within {format_seconds(self._timeout_s)}"
            ) from None
        except _PORT_ERRORS as error:
            self._drop_port()
            raise LinkLost(
                self._name, f"serial port failed: {serial_cause(self._port_path, error)}"
            ) from None

    def _read_reply(self, port: serial.Serial, sequence: str, deadline: float) -> Reply:
        """The reply to ``sequence``. Once the deadline has passed, whatever already waits in the
        port is still read once before giving up: a host that was not running (frozen, or
        starved of CPU) past the deadline finds the table's reply there, and must not blame the
        table for its own stall."""
        receiver = LineReceiver()
        drained = False
        while True:
            for line in receiver.feed(port.read(max(1, port.in_waiting))):
                reply = self._decode(line)
                if reply.sequence in (sequence, NO_SEQUENCE):
                    return reply
                # else a late reply to an earlier request: discard it, keep waiting
            if receiver.overlong:
                raise ProtocolError(self._name, f"reply frame ran past {MAX_FRAME} bytes")
            if time.monotonic() >= deadline:
                if port.in_waiting and not drained:
                    drained = True
                    continue
                if receiver.pending:
                    raise ProtocolError(
                        self._name,
                        f"truncated frame {receiver.pending!r}: no CR LF within "
                        f"{format_seconds(self._timeout_s)}",
                    )
                raise TableTimeout(self._name, f"no reply within {format_seconds(self._timeout_s)}")

    def _decode(self, line: ReceivedLine) -> Reply:
        try:
            return decode_reply(line.frame())
        except FrameError as error:
            raise ProtocolError(self._name, str(error)) from None


def open_line_table(address: TableAddress, clock: Clock) -> LineTable:
    """A (not yet connected) line-v1 table from a parsed ``line://`` URL."""
    where = f"table URL {address.url!r}"
    if address.scheme != "line":
        raise ConfigError(where, f"expected a line:// URL, got {address.scheme}://")
    protocol = address.params.get("protocol", PROTOCOL)
    if protocol != PROTOCOL:
        raise ConfigError(where, f"protocol={protocol!r} is not supported; use {PROTOCOL}")
    return LineTable(
        port=address.path,
        baud=address.baud(DEFAULT_BAUD),
        timeout_s=address.float_param("timeout", DEFAULT_TIMEOUT_S, 0.01, 10.0),
        clock=clock,
        name=address.label,
        url=address.url,
    )

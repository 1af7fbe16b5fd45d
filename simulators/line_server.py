"""A simulated table answering line-v1 on a serial port (the device side of a pty pair or a cable).

The physics and firmware, heartbeat watchdog included, are a :class:`TableModel` advanced on the
shared clock at every request. Requests are handled on the event loop (the same thread that tests and
fault injection use), and the blocking serial reads run in a worker thread, bounded so ``stop()``
returns promptly. Wire faults in :class:`LineFaults` change what goes back on the line.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TypeVar

import serial

from devices.clock import Clock
from devices.lineproto import (
    FAULT_CODES,
    NO_SEQUENCE,
    AckReply,
    ErrorCode,
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
    decode_request,
    from_decinewtons,
)
from simulators.physics import FAULT_NAMES, FAULT_NONE, Command, CommandRefused, TableModel

_POLL_S = 0.05  # longest blocking read; bounds how long stop() waits
GARBAGE = b"\x15#\xfe\x00noise\xa7\x7f~\r\n"  # no '$': the host must see line noise

_COMMANDS = {
    Verb.START: (Command.START, ErrorCode.NOT_READY),
    Verb.STOP_CONTROLLED: (Command.STOP_CONTROLLED, ErrorCode.NOT_READY),
    Verb.RELEASE: (Command.RELEASE, ErrorCode.NOT_READY),
    Verb.CLEAR_FAULT: (Command.CLEAR_FAULT, ErrorCode.FAULT_PRESENT),
}


class LineFaults:
    """Wire faults, switchable while the simulator runs."""

    def __init__(self) -> None:
        self.garbage_on = False  # answer with line noise instead of the reply
        self.truncate_on = False  # send the first half of the reply, no terminator
        self.bad_checksum_on = False  # send the reply with a wrong checksum
        self.mute_on = False  # send nothing
        self.slow_s = 0.0  # delay every reply by this many real seconds

    def garbage(self, on: bool = True) -> None:
        self.garbage_on = on

    def truncate(self, on: bool = True) -> None:
        self.truncate_on = on

    def bad_checksum(self, on: bool = True) -> None:
        self.bad_checksum_on = on

    def mute(self, on: bool = True) -> None:
        self.mute_on = on

    def slow(self, seconds: float) -> None:
        self.slow_s = max(0.0, seconds)

    def apply(self, frame: bytes) -> bytes:
        """What actually goes on the line for ``frame``."""
        if self.mute_on:
            return b""
        if self.garbage_on:
            return GARBAGE
        if self.truncate_on:
            return frame[: len(frame) // 2]
        if self.bad_checksum_on:
            body, _, check = frame[:-2].rpartition(b"*")
            return body + b"*" + f"{int(check, 16) ^ 0xFFFF:04X}".encode() + frame[-2:]
        return frame


def answer(model: TableModel, request: Request, now: float) -> Reply:
    """The firmware's reply to one well-formed request at session time ``now``."""
    seq = request.sequence
    model.advance(now)
    try:
        if request.verb is Verb.IDENTIFY:
            spec = model.spec
            return IdentityReply(
                seq,
                spec.model,
                spec.serial_number,
                spec.firmware,
                spec.rated_max_force_n,
                spec.manufacturer,
            )
        if request.verb is Verb.READ_STATE:
            return StateReply(
                seq,
                model.measured_n(),
                model.target_n,
                status_of(model),
                FAULT_CODES[FAULT_NAMES[model.fault_code]],
                model.redundant_n(),
                model.sample_counter,
            )
        if request.verb is Verb.FORCE_LIMIT_QUERY:
            limit = model.force_limit_n
            return LimitReply(seq, model.spec.rated_max_force_n if limit is None else limit)
        if request.verb is Verb.FORCE_LIMIT:
            model.set_force_limit(from_decinewtons(request.argument or 0))
        elif request.verb is Verb.SET_TARGET:
            model.set_target(from_decinewtons(request.argument or 0))
        elif request.verb is Verb.HEARTBEAT:
            model.heartbeat(now, request.argument)
        elif request.verb is Verb.HEARTBEAT_TIMEOUT:
            model.set_heartbeat_timeout((request.argument or 0) / 1000.0)
        else:
            command, refusal = _COMMANDS[request.verb]
            try:
                model.command(command, now)
            except CommandRefused:
                return ErrorReply(seq, refusal)
    except CommandRefused:
        return ErrorReply(seq, ErrorCode.BAD_VALUE)
    return AckReply(seq)


def status_of(model: TableModel) -> Status:
    status = Status(0)
    for flag, on in (
        (Status.RUNNING, model.running),
        (Status.READY, model.ready),
        (Status.RELEASED, model.released),
        (Status.FAULT, model.fault_code != FAULT_NONE),
        (Status.STOP_SWITCH_PRESSED, model.stop_switch_pressed),
        (Status.STOP_SWITCH_CONNECTED, model.stop_switch_connected),
        (Status.WATCHDOG_TRIPPED, model.watchdog_tripped),
        (Status.OPERATOR_STOP_PRESSED, model.operator_stop_pressed),
    ):
        if on:
            status |= flag
    return status


def reply_to_line(model: TableModel, line: ReceivedLine | bytes, now: float) -> bytes | None:
    """The encoded reply to one received line (up to LF), or None for noise without a frame."""
    received = line if isinstance(line, ReceivedLine) else ReceivedLine(line)
    if received.is_noise:
        return None  # a table answers only frames
    try:
        request = decode_request(received.frame())
    except FrameError as error:
        sequence = error.sequence if error.sequence is not None else NO_SEQUENCE
        return ErrorReply(sequence, error.code).encode()
    return answer(model, request, now).encode()


T = TypeVar("T")


class RunningLineSimulator:
    """A line-v1 simulator serving one serial port; stop it with ``await stop()`` or ``async with``."""

    def __init__(
        self,
        model: TableModel,
        clock: Clock,
        port: serial.Serial,
        baud: int,
        host_port: str | None,
    ) -> None:
        self.model = model
        self.faults = LineFaults()
        self.requests = 0  # frames answered or rejected, for tests and diagnostics
        self.busy = False  # answering a request (a slow reply is still to come)
        self._clock = clock
        self._port = port
        self._baud = baud
        self._host_port = host_port
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # The port's own threads, one reading and one writing: a table's serial port never waits
        # behind the process's shared pool (where several simulators, or a slow query, would
        # delay its replies), and they are started from this thread, at its priority.
        self._io = ThreadPoolExecutor(max_workers=2, thread_name_prefix="line-sim")

    def url(self) -> str:
        """The ``line://`` URL a driver uses to reach this simulator (needs ``host_port``)."""
        if self._host_port is None:
            raise ValueError(
                "this simulator was started without host_port, so it cannot know the host's URL"
            )
        return f"line://{self._host_port}?baud={self._baud}"

    def _begin(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="line simulator")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            await self._task
            self._task = None
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()
        self._io.shutdown(wait=False)

    async def __aenter__(self) -> RunningLineSimulator:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _read_chunk(self) -> bytes:
        return bytes(self._port.read(max(1, self._port.in_waiting)))

    async def _serve(self) -> None:
        receiver = LineReceiver()
        while not self._stopping:
            try:
                chunk = await self._on_port(self._read_chunk)
            except (serial.SerialException, OSError):
                return  # the port is gone: a real table off its cable answers nothing
            for line in receiver.feed(chunk):
                await self._answer(line)

    async def _on_port(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, call)

    async def _answer(self, line: ReceivedLine) -> None:
        reply = reply_to_line(self.model, line, self._clock.now())
        if reply is None:
            return
        self.requests += 1
        self.busy = True
        try:
            if self.faults.slow_s:
                await asyncio.sleep(self.faults.slow_s)
            data = self.faults.apply(reply)
            if data:
                await self._on_port(lambda: self._port.write(data))
        except (serial.SerialException, OSError):
            self._stopping = True
        finally:
            self.busy = False


async def start_line_simulator(
    model: TableModel,
    clock: Clock,
    device: str,
    baud: int = 9600,
    host_port: str | None = None,
) -> RunningLineSimulator:
    """Serve ``model`` over line-v1 on the serial port ``device``; it answers until ``stop()``."""
    port = await asyncio.to_thread(serial.Serial, device, baud, timeout=_POLL_S)
    simulator = RunningLineSimulator(model, clock, port, baud, host_port)
    simulator._begin()
    return simulator

"""The line-v1 serial protocol as pure data and functions (spec: configs/protocols/line-v1.md).

Both the driver (``devices.line``) and the simulator (``simulators.line_server``) use this codec, so
the two sides cannot drift apart. Nothing here does I/O or knows a table's name: malformed input
raises :class:`FrameError` carrying the line-v1 error code a table would answer with, and the driver
turns it into a :class:`devices.errors.ProtocolError` naming the table.

A frame is ``$`` + comma-separated fields + ``*`` + four hex digits of CRC-16/CCITT-FALSE over the
fields + CR LF. The first field is a two-hex-digit sequence number that the reply echoes, so a late
reply can never be taken for the answer to a newer request.
"""

from __future__ import annotations

import binascii
import enum
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

START = b"$"
CHECKSUM_MARK = b"*"
TERMINATOR = b"\r\n"
MAX_FRAME = 96  # bytes, from ``$`` to LF inclusive
MAX_TEXT = 24  # characters in one identity text field
MAX_NUMBER = 99_999  # largest decimal field value (five digits)
NO_SEQUENCE = "--"  # sequence of an error reply to a request whose sequence could not be trusted
BITS_PER_CHAR = 10  # 8N1: start bit, eight data bits, stop bit

_TEXT_FIELD = re.compile(r"[\x20-\x7e]*")
_FORBIDDEN_IN_TEXT = set("$*,")
_DECIMAL = re.compile(r"[0-9]{1,5}")
_SEQUENCE = re.compile(r"[0-9A-F]{2}")
_HEX4 = re.compile(rb"[0-9A-Fa-f]{4}")
_FLAGS = re.compile(r"[0-9A-Fa-f]{2}")


class ErrorCode(enum.IntEnum):
    """Codes in an ``ER`` reply (and carried by :class:`FrameError`)."""

    BAD_CHECKSUM = 1
    BAD_FRAME = 2
    UNKNOWN_COMMAND = 3
    BAD_VALUE = 4
    NOT_READY = 5
    FAULT_PRESENT = 6


ERROR_MEANINGS: dict[int, str] = {
    ErrorCode.BAD_CHECKSUM: "the table saw a bad checksum in the request",
    ErrorCode.BAD_FRAME: "the table could not read the request frame",
    ErrorCode.UNKNOWN_COMMAND: "the table does not know the command",
    ErrorCode.BAD_VALUE: "the table refused the value (missing, malformed or out of range)",
    ErrorCode.NOT_READY: "the table is not ready to start (fault, stop switch or already running)",
    ErrorCode.FAULT_PRESENT: "the fault cannot be cleared while its cause is present",
}


class FrameError(ValueError):
    """A frame that is not valid line-v1. ``code`` is the error a table answers with;
    ``sequence`` is the request's sequence when it could be read and trusted."""

    def __init__(self, code: ErrorCode, message: str, sequence: str | None = None) -> None:
        self.code = code
        self.sequence = sequence
        super().__init__(message)


class Verb(enum.StrEnum):
    """Request verbs. START..CLEAR_FAULT carry ``simulators.physics.Command`` values 1..4.
    FORCE_LIMIT sets the session force limit; FORCE_LIMIT_QUERY reads it back."""

    IDENTIFY = "ID"
    READ_STATE = "RS"
    SET_TARGET = "TG"
    START = "GO"
    STOP_CONTROLLED = "SC"
    RELEASE = "RL"
    CLEAR_FAULT = "CF"
    HEARTBEAT = "HB"
    HEARTBEAT_TIMEOUT = "HT"
    FORCE_LIMIT = "FL"
    FORCE_LIMIT_QUERY = "FQ"


# The largest argument each verb takes on the wire (a table may refuse less: TG above its rating,
# HT outside 50..10000 ms, FL outside 1..rating). Anything larger is ER 4.
ARGUMENT_MAX: dict[Verb, int] = {
    Verb.SET_TARGET: MAX_NUMBER,
    Verb.HEARTBEAT: 0xFFFF,
    Verb.HEARTBEAT_TIMEOUT: MAX_NUMBER,
    Verb.FORCE_LIMIT: MAX_NUMBER,
}
VERBS_WITH_ARGUMENT = frozenset(ARGUMENT_MAX)


class Status(enum.IntFlag):
    """Bits of the two-hex-digit status field of an ``ST`` reply."""

    RUNNING = 0x01
    READY = 0x02
    RELEASED = 0x04
    FAULT = 0x08
    STOP_SWITCH_PRESSED = 0x10
    STOP_SWITCH_CONNECTED = 0x20
    WATCHDOG_TRIPPED = 0x40
    OPERATOR_STOP_PRESSED = 0x80


# Fault codes of the ST reply (spec section 7) -> the fault vocabulary (devices.faults).
FAULT_NAMES: dict[int, str] = {
    1: "overload",
    2: "motor",
    3: "load_cell",
    4: "watchdog",
    5: "stop_switch",
    6: "force_limit",
    7: "operator_stop",
}
FAULT_CODES: dict[str, int] = {"none": 0} | {name: code for code, name in FAULT_NAMES.items()}
MAX_FAULT_CODE = 255


# ----- the checksum and the frame ---------------------------------------------------------------


def checksum(body: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of the bytes between ``$`` and ``*``."""
    return binascii.crc_hqx(body, 0xFFFF)


def encode_frame(fields: Sequence[str]) -> bytes:
    """``$f1,f2,...*CCCC\\r\\n``; fields must be printable ASCII without ``$ * ,``."""
    for value in fields:
        if not _TEXT_FIELD.fullmatch(value) or _FORBIDDEN_IN_TEXT & set(value):
            raise FrameError(
                ErrorCode.BAD_VALUE,
                f"field {value!r} must be printable ASCII without '$', '*' or ','",
            )
    body = ",".join(fields).encode("ascii")
    frame = START + body + CHECKSUM_MARK + f"{checksum(body):04X}".encode() + TERMINATOR
    if len(frame) > MAX_FRAME:
        raise FrameError(ErrorCode.BAD_VALUE, f"frame of {len(frame)} bytes exceeds {MAX_FRAME}")
    return frame


def find_frame(line: bytes) -> bytes:
    """The frame in one received line (up to and including LF): from its last ``$`` on.

    ``$`` only ever starts a frame, so bytes before the last one are line noise or the rest of a
    frame cut short. A line without ``$`` is noise.
    """
    start = line.rfind(START)
    if start < 0:
        raise FrameError(ErrorCode.BAD_FRAME, f"line noise, no '$' frame start in {line!r}")
    return line[start:]


@dataclass(frozen=True)
class ReceivedLine:
    """One line as the receiving rule (spec section 2) leaves it: the bytes up to and including LF,
    less what was dropped while no LF came; ``overlong`` when what was dropped held a frame start
    (a frame that ran past MAX_FRAME bytes)."""

    data: bytes
    overlong: bool = False

    @property
    def is_noise(self) -> bool:
        """No frame on this line at all: a table ignores it."""
        return START not in self.data and not self.overlong

    def frame(self) -> bytes:
        """The line's frame, from its last ``$``; FrameError (code 2) for an over-long frame or
        for noise."""
        if self.overlong and START not in self.data:
            raise FrameError(
                ErrorCode.BAD_FRAME, f"frame ran past {MAX_FRAME} bytes before its CR LF"
            )
        return find_frame(self.data)


class LineReceiver:
    """Section 2's receiving rule for a byte stream, the same on host and table.

    ``feed`` returns each completed line. Between lines it holds at most MAX_FRAME bytes: past that
    it keeps only the bytes from the last ``$`` if they still fit, and otherwise none, marking the
    line over-long if a frame start was among them. The result does not depend on how the bytes
    were split in time: a too-long frame is a bad frame whether it came in one read or many.
    """

    def __init__(self) -> None:
        self._pending = bytearray()
        self._overlong = False

    @property
    def pending(self) -> bytes:
        """Bytes of a line not yet ended by LF."""
        return bytes(self._pending)

    @property
    def overlong(self) -> bool:
        """The line being received already had a frame run past MAX_FRAME bytes."""
        return self._overlong

    def feed(self, data: bytes) -> list[ReceivedLine]:
        self._pending += data
        lines = []
        while (end := self._pending.find(b"\n")) >= 0:
            lines.append(ReceivedLine(bytes(self._pending[: end + 1]), self._overlong))
            del self._pending[: end + 1]
            self._overlong = False
        if len(self._pending) > MAX_FRAME:
            start = self._pending.rfind(START)
            if start >= 0 and len(self._pending) - start <= MAX_FRAME:
                del self._pending[:start]
            else:
                self._overlong = self._overlong or start >= 0
                self._pending.clear()
        return lines


def decode_frame(frame: bytes) -> list[str]:
    """The fields of one frame (``$`` through CR LF), after checking its shape and checksum."""
    if len(frame) > MAX_FRAME:
        raise FrameError(
            ErrorCode.BAD_FRAME, f"frame of {len(frame)} bytes exceeds {MAX_FRAME}: {frame[:32]!r}"
        )
    if not frame.startswith(START):
        raise FrameError(ErrorCode.BAD_FRAME, f"frame does not start with '$': {frame!r}")
    if not frame.endswith(TERMINATOR):
        raise FrameError(ErrorCode.BAD_FRAME, f"frame does not end with CR LF: {frame!r}")
    content = frame[1 : -len(TERMINATOR)]
    body, mark, check = content.rpartition(CHECKSUM_MARK)
    if not mark or not _HEX4.fullmatch(check):
        raise FrameError(
            ErrorCode.BAD_FRAME, f"frame lacks '*' and four hex checksum digits: {frame!r}"
        )
    expected = checksum(body)
    if int(check, 16) != expected:
        raise FrameError(
            ErrorCode.BAD_CHECKSUM,
            f"bad checksum {check.decode()} (computed {expected:04X}) in {frame!r}",
        )
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise FrameError(ErrorCode.BAD_FRAME, f"frame is not ASCII: {frame!r}") from None
    if not _TEXT_FIELD.fullmatch(text) or "$" in text or "*" in text:
        raise FrameError(ErrorCode.BAD_FRAME, f"frame holds forbidden characters: {frame!r}")
    return text.split(",")


def _number(field: str, what: str, sequence: str | None = None, largest: int = MAX_NUMBER) -> int:
    """A number field: 1 to 5 decimal digits, at most ``largest``; else a bad value (ER 4)."""
    if not _DECIMAL.fullmatch(field) or int(field) > largest:
        raise FrameError(
            ErrorCode.BAD_VALUE,
            f"{what} {field!r} is not a decimal number 0..{largest}",
            sequence,
        )
    return int(field)


def _sequence(field: str) -> str:
    if not _SEQUENCE.fullmatch(field):
        raise FrameError(ErrorCode.BAD_FRAME, f"sequence {field!r} is not two hex digits 00..FF")
    return field


def format_sequence(number: int) -> str:
    return f"{number & 0xFF:02X}"


# ----- units -------------------------------------------------------------------------------------


def to_decinewtons(force_n: float) -> int:
    """Force in newtons as the wire's whole decinewtons (0.1 N resolution), rounded."""
    if not math.isfinite(force_n) or force_n < 0:
        raise FrameError(ErrorCode.BAD_VALUE, f"force {force_n} N is not a finite value >= 0")
    value = round(force_n * 10)
    if value > MAX_NUMBER:
        raise FrameError(
            ErrorCode.BAD_VALUE, f"force {force_n} N exceeds {MAX_NUMBER / 10} N, the line-v1 range"
        )
    return value


def from_decinewtons(value: int) -> float:
    return value / 10.0


# ----- requests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One host-to-table request; ``argument`` is set exactly for TG (dN), HB and HT (ms)."""

    sequence: str
    verb: Verb
    argument: int | None = None

    def encode(self) -> bytes:
        fields = [self.sequence, self.verb.value]
        if (self.argument is None) == (self.verb in VERBS_WITH_ARGUMENT):
            raise FrameError(ErrorCode.BAD_VALUE, f"{self.verb.value} argument {self.argument!r}")
        if self.argument is not None:
            largest = ARGUMENT_MAX[self.verb]
            if not 0 <= self.argument <= largest:
                raise FrameError(
                    ErrorCode.BAD_VALUE,
                    f"{self.verb.value} argument {self.argument} outside 0..{largest}",
                )
            fields.append(str(self.argument))
        return encode_frame(fields)


def decode_request(frame: bytes) -> Request:
    """A table's view of one received frame; errors carry the code to answer with."""
    fields = decode_frame(frame)
    sequence = _sequence(fields[0])
    # The frame is intact from here on, so its sequence is trusted and echoed. A missing, empty,
    # lower-case or unknown verb is an unknown command (verbs are case-sensitive).
    verb_field = fields[1] if len(fields) > 1 else ""
    try:
        verb = Verb(verb_field)
    except ValueError:
        raise FrameError(
            ErrorCode.UNKNOWN_COMMAND, f"unknown command {verb_field!r}", sequence
        ) from None
    arguments = fields[2:]
    if verb in VERBS_WITH_ARGUMENT:
        if len(arguments) != 1:
            raise FrameError(
                ErrorCode.BAD_VALUE, f"{verb.value} takes one number, got {arguments!r}", sequence
            )
        value = _number(arguments[0], f"{verb.value} argument", sequence, ARGUMENT_MAX[verb])
        return Request(sequence, verb, value)
    if arguments:
        raise FrameError(
            ErrorCode.BAD_VALUE, f"{verb.value} takes no argument, got {arguments!r}", sequence
        )
    return Request(sequence, verb)


# ----- replies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentityReply:
    sequence: str
    model: str
    serial_number: str
    firmware: str
    rated_max_force_n: float
    manufacturer: str

    def encode(self) -> bytes:
        texts = (self.model, self.serial_number, self.firmware, self.manufacturer)
        for text in texts:
            if len(text) > MAX_TEXT:
                raise FrameError(
                    ErrorCode.BAD_VALUE, f"identity text {text!r} longer than {MAX_TEXT}"
                )
        rated = str(to_decinewtons(self.rated_max_force_n))
        return encode_frame(
            [self.sequence, "ID", self.model, self.serial_number, self.firmware, rated]
            + [self.manufacturer]
        )


@dataclass(frozen=True)
class StateReply:
    """``ST``: both force channels, the target, status bits, the fault code and the table's sample
    counter (which advances with every load-cell sample, so a frozen reading shows)."""

    sequence: str
    measured_force_n: float
    target_force_n: float
    status: Status
    fault_code: int
    redundant_force_n: float
    sample_counter: int

    def encode(self) -> bytes:
        if not 0 <= self.fault_code <= MAX_FAULT_CODE:
            raise FrameError(ErrorCode.BAD_VALUE, f"fault code {self.fault_code} outside 0..255")
        if not 0 <= self.sample_counter <= 0xFFFF:
            raise FrameError(
                ErrorCode.BAD_VALUE, f"sample counter {self.sample_counter} outside 0..65535"
            )
        return encode_frame(
            [
                self.sequence,
                "ST",
                str(to_decinewtons(self.measured_force_n)),
                str(to_decinewtons(self.target_force_n)),
                f"{int(self.status):02X}",
                str(self.fault_code),
                str(to_decinewtons(self.redundant_force_n)),
                str(self.sample_counter),
            ]
        )


@dataclass(frozen=True)
class LimitReply:
    """``FL``: the session force limit the table holds (the answer to ``FQ``)."""

    sequence: str
    force_limit_n: float

    def encode(self) -> bytes:
        return encode_frame([self.sequence, "FL", str(to_decinewtons(self.force_limit_n))])


@dataclass(frozen=True)
class AckReply:
    sequence: str

    def encode(self) -> bytes:
        return encode_frame([self.sequence, "OK"])


@dataclass(frozen=True)
class ErrorReply:
    sequence: str  # NO_SEQUENCE when the request's own sequence could not be trusted
    code: int

    def encode(self) -> bytes:
        return encode_frame([self.sequence, "ER", str(self.code)])

    @property
    def meaning(self) -> str:
        return ERROR_MEANINGS.get(self.code, "unknown error code")


Reply = IdentityReply | StateReply | LimitReply | AckReply | ErrorReply


def decode_reply(frame: bytes) -> Reply:
    """The host's view of one received frame."""
    fields = decode_frame(frame)
    sequence = fields[0]
    if len(fields) < 2:
        raise FrameError(ErrorCode.BAD_FRAME, f"reply {frame!r} has no kind")
    kind, values = fields[1], fields[2:]
    if kind == "ER" and sequence == NO_SEQUENCE:
        pass
    else:
        _sequence(sequence)
    shape = {"ID": 5, "ST": 6, "FL": 1, "OK": 0, "ER": 1}
    if kind not in shape:
        raise FrameError(ErrorCode.BAD_FRAME, f"unknown reply kind {kind!r} in {frame!r}")
    if len(values) != shape[kind]:
        raise FrameError(
            ErrorCode.BAD_FRAME,
            f"{kind} reply needs {shape[kind]} values, got {len(values)} in {frame!r}",
        )
    if kind == "ID":
        model, serial_number, firmware, rated, manufacturer = values
        return IdentityReply(
            sequence,
            model,
            serial_number,
            firmware,
            from_decinewtons(_number(rated, "rated force")),
            manufacturer,
        )
    if kind == "ST":
        measured, target, flags, fault, redundant, counter = values
        if not _FLAGS.fullmatch(flags):
            raise FrameError(ErrorCode.BAD_FRAME, f"status {flags!r} is not two hex digits")
        fault_code = _number(fault, "fault code")
        if fault_code > MAX_FAULT_CODE:
            raise FrameError(ErrorCode.BAD_VALUE, f"fault code {fault_code} outside 0..255")
        sample_counter = _number(counter, "sample counter")
        if sample_counter > 0xFFFF:
            raise FrameError(ErrorCode.BAD_VALUE, f"sample counter {sample_counter} over 65535")
        return StateReply(
            sequence,
            from_decinewtons(_number(measured, "measured force")),
            from_decinewtons(_number(target, "target force")),
            Status(int(flags, 16)),
            fault_code,
            from_decinewtons(_number(redundant, "redundant force")),
            sample_counter,
        )
    if kind == "FL":
        return LimitReply(sequence, from_decinewtons(_number(values[0], "force limit")))
    if kind == "OK":
        return AckReply(sequence)
    return ErrorReply(sequence, _number(values[0], "error code"))


def wire_seconds(frame_bytes: int, baud: int) -> float:
    """Time ``frame_bytes`` characters occupy a line at ``baud`` (8N1)."""
    return frame_bytes * BITS_PER_CHAR / baud

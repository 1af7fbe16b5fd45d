"""How the TCP simulator keeps its footing in a Modbus TCP byte stream.

A Modbus TCP frame carries its length in its MBAP header, so a stream stays framed only while every
header is sound; pymodbus 3.16's server waits forever on a header with a foreign protocol id, and a
frame cut short swallows the start of the next request as its missing tail. Two rules, the TCP
counterparts of :mod:`simulators.rtu_framing`:

- a header that cannot be Modbus (protocol id not 0, or a length outside 2..254) leaves no way to
  find the next frame: the connection is closed, and the client reconnects on a clean stream;
- bytes arriving after :data:`ABANDONED_AFTER_S` of silence start a new frame: a frame left
  unfinished that long was abandoned by its sender (the bytes of one frame travel together).
"""

from __future__ import annotations

ABANDONED_AFTER_S = 0.5
MAX_MBAP_LENGTH = 254  # unit id + the longest PDU (253 bytes)


def mbap_plausible(buffered: bytes) -> bool:
    """Whether ``buffered`` can still begin with a Modbus TCP frame (as far as it has arrived)."""
    if len(buffered) >= 4 and buffered[2:4] != b"\x00\x00":
        return False
    if len(buffered) >= 6:
        length = int.from_bytes(buffered[4:6], "big")
        return 2 <= length <= MAX_MBAP_LENGTH
    return True


def _holds_a_whole_frame(buffered: bytes) -> bool:
    return len(buffered) >= 6 and len(buffered) >= 6 + int.from_bytes(buffered[4:6], "big")


def receive(buffered: bytes, data: bytes, silent_for: float) -> bytes:
    """The receive buffer once ``data`` arrives after ``silent_for`` seconds without bytes: an
    unfinished frame that waited that long is dropped (a whole one still waiting is kept)."""
    if buffered and silent_for >= ABANDONED_AFTER_S and not _holds_a_whole_frame(buffered):
        return data
    return buffered + data

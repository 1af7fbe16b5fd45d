"""How the RTU simulator finds request frames in the bytes of a serial line.

Modbus RTU has no start or end marker: a frame ends where the line falls silent for 3.5 character
times (t3.5; Modbus over Serial Line V1.02, 2.5.1.1). pymodbus 3.16's server framer ignores time:
it appends every byte to one buffer and, when a CRC fails, throws the whole buffer away, so the
remains of a truncated frame swallow the next good request (which then goes unanswered), while a
real slave would have dropped them at the silence. Two small additions make the simulator behave
like a well-made slave, keeping pymodbus' own frame decoding and CRC:

- :func:`receive`: bytes arriving after at least t3.5 of silence start a new frame; what was
  buffered before was a frame that never decoded (bad or cut short) and is dropped. Timing is
  measured in this process, which may read late (a busy event loop merges bytes and can stretch an
  apparent gap), so a stale buffer that completes a valid frame together with the new bytes is
  kept: that "silence" was ours, not the line's.
- :class:`HuntingFramerRTU`: within bytes that arrived together, a frame whose CRC fails costs one
  byte, not the buffer: decoding goes on at the next byte, so a good frame behind a broken one is
  still found.

Not enforced: the spec's t1.5 rule (a gap of 1.5 to 3.5 characters inside a frame voids it). A
process cannot see such gaps reliably, and the CRC still guards what is accepted.
"""

from __future__ import annotations

from pymodbus.framer import FramerBase, FramerRTU

BITS_PER_CHAR = 11  # start + 8 data + parity or a second stop + stop
FAST_LINE_SILENCE_S = 0.00175  # the spec's fixed t3.5 above 19200 baud


def silence_seconds(baud: int) -> float:
    """t3.5 at ``baud``: 3.5 character times, or 1.75 ms above 19200 baud (the spec's floor)."""
    if baud > 19200:
        return FAST_LINE_SILENCE_S
    return 3.5 * BITS_PER_CHAR / baud


class HuntingFramerRTU(FramerRTU):
    """pymodbus' RTU framer, except that a CRC failure skips one byte and decodes on."""

    def decode(self, data: bytes) -> tuple[int, int, int, bytes]:
        """``(used, unit, 0, pdu)`` as pymodbus expects; ``used`` bytes may be dropped.

        The parent returns ``used > 0`` with no PDU only when the first plausible frame at or
        after the start failed its CRC: no frame starts at the first byte, so drop it and look
        again. ``used == 0`` means a plausible frame is still arriving: keep everything from here.
        """
        start = 0
        while len(data) - start >= self.MIN_SIZE:
            used, unit, tid, pdu = super().decode(data[start:])
            if pdu:
                return start + used, unit, tid, pdu
            if not used:
                break
            start += 1
        return start, 0, 0, self.EMPTY


def receive(
    framer: FramerBase, buffered: bytes, data: bytes, silent_for: float, baud: int
) -> bytes:
    """The receive buffer once ``data`` arrives after ``silent_for`` seconds without bytes."""
    if buffered and silent_for >= silence_seconds(baud):
        if framer.decode(buffered + data)[3]:
            return buffered + data  # one frame after all: this process read it late
        return data
    return buffered + data

"""Independent masters for wire-conformance tests: raw Modbus frames and Debian's ``mbpoll``.

Frames are built and checked by pymodbus' own framers (never by project code), written with plain
pyserial or sockets, and read back byte for byte, so what is tested is what any master would see.
``mbpoll`` (libmodbus) is a second, unrelated implementation; .ci/run installs it.
"""

from __future__ import annotations

import re
import shutil
import socket
import struct
import subprocess
import time

import pytest
import serial
from pymodbus.framer import FramerRTU, FramerSocket
from pymodbus.pdu import DecodePDU, ModbusPDU

_REQUESTS = DecodePDU(False)
MBPOLL = shutil.which("mbpoll")
needs_mbpoll = pytest.mark.skipif(
    MBPOLL is None, reason="mbpoll is not installed (apt-get install mbpoll; .ci/run does)"
)


def rtu_frame(request: ModbusPDU) -> bytes:
    """The RTU bytes of ``request`` (unit id, PDU, CRC), as pymodbus' framer builds them."""
    return FramerRTU(_REQUESTS).buildFrame(request)


def tcp_frame(request: ModbusPDU) -> bytes:
    """The Modbus TCP bytes of ``request`` (MBAP header and PDU)."""
    return FramerSocket(_REQUESTS).buildFrame(request)


def rtu_reply_ok(reply: bytes) -> bool:
    """Whether ``reply`` is one whole RTU frame with a good CRC."""
    return len(reply) >= 4 and FramerRTU.check_CRC(reply[:-2], int.from_bytes(reply[-2:], "big"))


def serial_exchange(
    port: str, *chunks: bytes, pause_s: float = 0.0, baud: int = 19200, wait_s: float = 0.5
) -> bytes:
    """Write ``chunks`` to ``port`` with ``pause_s`` of silence between them; return what comes
    back within ``wait_s`` of the last chunk (the reply stops early once a whole frame is in)."""
    with serial.Serial(port, baud, timeout=0.05) as line:
        line.reset_input_buffer()
        for index, chunk in enumerate(chunks):
            if index:
                time.sleep(pause_s)
            line.write(chunk)
            line.flush()
        reply = b""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not rtu_reply_ok(reply):
            reply += line.read(256)
        return reply


def tcp_exchange(port: int, frame: bytes, host: str = "127.0.0.1") -> bytes:
    """Send one Modbus TCP frame and return the reply frame (MBAP length says where it ends)."""
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.sendall(frame)
        reply = b""
        while len(reply) < 6 or len(reply) < 6 + int.from_bytes(reply[4:6], "big"):
            chunk = sock.recv(512)
            if not chunk:
                break
            reply += chunk
        return reply


def float32_of(words: list[int]) -> float:
    """Two big-endian words (most significant first) as an IEEE 754 float32."""
    return float(struct.unpack(">f", struct.pack(">HH", *words))[0])


def mbpoll(*args: str) -> list[int]:
    """Run ``mbpoll ARGS -1 -q`` (one poll, quiet) and return the registers it printed.

    Fails the test when mbpoll exits non-zero (no reply, exception) or prints no register.
    """
    assert MBPOLL is not None
    done = subprocess.run(
        [MBPOLL, *args, "-1", "-q"], capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 0, f"mbpoll {' '.join(args)}: {done.stdout}{done.stderr}"
    values = [int(v, 0) for v in re.findall(r"^\[\d+\]:\s+(\S+)", done.stdout, re.M)]
    assert values, f"mbpoll printed no register: {done.stdout}"
    return values

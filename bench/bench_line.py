"""How fast the line-v1 driver reads a table over a pty pair, at 9600 and 115200 baud.

For each baud rate: ``LineTable.read_state()`` per second against a bare pyserial exchange of the
same ``RS`` request (write the frame, read what arrives up to LF, no decoding or checks) on the same simulator, both
run on one worker thread as the driver does; the ratio is the driver's codec and bookkeeping cost.
Then the per-request time against the wire time of the request and its reply at that baud, and the
highest tick rate (heartbeat + state read; target unchanged) sustained here.

A pty does not pace bytes at the baud rate, so measured times are host overhead; on a real line the
wire time comes on top. Run from the repository root: ``.venv/bin/python bench/bench_line.py``
(about 30 s).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import serial
from benchutil import (
    TICK_HEADER,
    Rate,
    interleaved,
    machine,
    sustainable_tick_rate,
    write_section,
)

from devices.clock import ScaledClock
from devices.line import LineTable
from devices.lineproto import Request, StateReply, Status, Verb, wire_seconds
from devices.opening import open_device
from simulators.line_server import start_line_simulator
from simulators.physics import TableModel
from simulators.ptypair import PtyPair

BAUDS = (9600, 115200)
WINDOW_S = 1.5
ROUNDS = 3


def read_wire_seconds(baud: int) -> float:
    """An ``RS`` request and a full-width ``ST`` reply on the wire at ``baud``."""
    request = Request("FF", Verb.READ_STATE).encode()
    reply = StateReply("FF", 9999.9, 9999.9, Status(0xFF), 255, 9999.9, 65535).encode()
    return wire_seconds(len(request) + len(reply), baud)


class RawExchange:
    """The baseline: one RS request and its reply line over bare pyserial, on its own thread."""

    def __init__(self, port: str, baud: int) -> None:
        self._path, self._baud = port, baud
        self._port: serial.Serial | None = None
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="raw line")
        self._frame = Request("01", Verb.READ_STATE).encode()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._port = await loop.run_in_executor(
            self._worker, lambda: serial.Serial(self._path, self._baud, timeout=0.5)
        )

    async def close(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None

    def _exchange(self) -> bytes:
        assert self._port is not None
        port = self._port
        port.write(self._frame)
        line = bytearray()
        while not line.endswith(b"\n"):  # read what has arrived, not byte by byte
            chunk = port.read(max(1, port.in_waiting))
            if not chunk:
                raise TimeoutError(f"no reply line from the simulator: {bytes(line)!r}")
            line += chunk
        return bytes(line)

    async def read(self) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(self._worker, self._exchange)

    def shutdown(self) -> None:
        self._worker.shutdown(wait=True)


async def bench_baud(baud: int, clock: ScaledClock) -> tuple[str, str, int, list[str]]:
    with PtyPair() as pair:
        sim = await start_line_simulator(
            TableModel(), clock, pair.device_port, baud=baud, host_port=pair.host_port
        )
        table = open_device(sim.url(), clock)
        assert isinstance(table, LineTable)
        raw = RawExchange(pair.host_port, baud)
        try:
            subject, baseline = await interleaved(
                table.read_state,
                raw.read,
                WINDOW_S,
                ROUNDS,
                exclusive=((table.connect, table.close), (raw.open, raw.close)),
            )
            await table.connect()
            best, ticks = await sustainable_tick_rate(table)
            tick_wire = table.tick_wire_seconds
        finally:
            await table.close()
            await raw.close()
            raw.shutdown()
            await sim.stop()
    read_line = _read_line(baud, subject, baseline)
    wire_ms = 1000 * read_wire_seconds(baud)
    wire_rate = 1.0 / (tick_wire + 3 * subject.ms_per_call / 1000)
    wire_line = (
        f"| {baud} | {subject.ms_per_call:.2f} | {wire_ms:.1f} | {1000 * tick_wire:.1f} | "
        f"{wire_rate:.0f} |"
    )
    return read_line, wire_line, best, ticks


def _read_line(baud: int, subject: Rate, baseline: Rate) -> str:
    return (
        f"| {baud} | {subject.per_second:.0f} ({subject.ms_per_call:.3f} ms) | "
        f"{baseline.per_second:.0f} ({baseline.ms_per_call:.3f} ms) | "
        f"{subject.per_second / baseline.per_second:.2f} |"
    )


async def main() -> None:
    machine_line = machine()
    clock = ScaledClock(1.0)
    began = time.perf_counter()
    reads: list[str] = []
    wires: list[str] = []
    tick_sections: list[str] = []
    for baud in BAUDS:
        read_line, wire_line, best, ticks = await bench_baud(baud, clock)
        reads.append(read_line)
        wires.append(wire_line)
        tick_sections += [
            f"{baud} baud over pty (no baud pacing; host-bound): **{best} Hz**",
            "",
            *TICK_HEADER,
            *ticks,
            "",
        ]
    took = time.perf_counter() - began
    lines = [
        "### `LineTable.read_state()` against a bare pyserial RS exchange",
        "",
        f"Best of {ROUNDS} alternating {WINDOW_S} s windows each; both run on one worker thread.",
        "",
        "| baud | LineTable.read_state /s | raw pyserial exchange /s | ratio |",
        "|---|---|---|---|",
        *reads,
        "",
        "### Per request against the wire",
        "",
        "Wire: RS request plus the longest ST reply, 10 bits per character. A real line's tick "
        "(heartbeat, target, read: `tick_wire_seconds`) adds three exchanges of host overhead.",
        "",
        "| baud | measured read over pty, ms | read wire estimate, ms | tick_wire_seconds, ms | "
        "tick rate a real line allows, Hz |",
        "|---|---|---|---|---|",
        *wires,
        "",
        "### Highest sustainable tick rate (heartbeat + state read; target unchanged)",
        "",
        *tick_sections,
        f"Total run time {took:.0f} s.",
        "",
    ]
    print("\n".join(lines))
    write_section("bench_line", "Line-protocol driver (bench/bench_line.py)", machine_line, lines)


if __name__ == "__main__":
    asyncio.run(main())

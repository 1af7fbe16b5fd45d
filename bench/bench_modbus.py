"""How fast the Modbus driver reads a table, against raw pymodbus on the same simulator.

1. TCP loopback: ``ModbusTable.read_state()`` per second against a bare ``AsyncModbusTcpClient``
   reading the same status block from the same server; the ratio is the driver's overhead.
2. RTU on a pty pair at 19200 baud: the same comparison, and the per-request time against the wire
   time the design estimates (about 21 ms for an 8-register read at 19200) and the driver's own
   ``tick_wire_seconds``. A pty does not pace bytes at the baud rate, so the measured time is host
   overhead only; a real line adds the wire time on top.
3. The loop-relevant figure: the highest tick rate (heartbeat + state read on deadlines) each
   transport sustains here, and what the wire allows at 19200 baud.

Run from the repository root: ``.venv/bin/python bench/bench_modbus.py`` (about 40 s).
"""

from __future__ import annotations

import asyncio
import time

from benchutil import TICK_HEADER, Rate, interleaved, machine, sustainable_tick_rate, write_section
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from devices.clock import ScaledClock
from devices.modbus import GAP_CHARS, ModbusTable, rtu_default_timeout, rtu_seconds
from devices.opening import open_device
from simulators.modbus_server import RunningSimulator, start_rtu_simulator, start_tcp_simulator
from simulators.physics import TableModel
from simulators.ptypair import PtyPair

WINDOW_S = 1.5  # each timed window
ROUNDS = 3  # alternating subject/baseline windows; the best of each counts
RTU_BAUD = 19200
DESIGN_READ_8_MS = 21.0  # DESIGN.md: an 8-register read at 19200 baud


def ratio_line(label: str, subject: Rate, baseline: Rate) -> str:
    return (
        f"| {label} | {subject.per_second:.0f} ({subject.ms_per_call:.3f} ms) | "
        f"{baseline.per_second:.0f} ({baseline.ms_per_call:.3f} ms) | "
        f"{subject.per_second / baseline.per_second:.2f} |"
    )


async def bench_tcp(clock: ScaledClock) -> tuple[list[str], list[str], int]:
    sim = await start_tcp_simulator({1: TableModel()}, clock)
    try:
        table = open_device(sim.url(), clock)
        assert isinstance(table, ModbusTable)
        start, count = table.register_map.status_span
        raw = AsyncModbusTcpClient(sim.host, port=sim.port, timeout=1.0, retries=0)
        await raw.connect()

        async def raw_read() -> object:
            reply = await raw.read_holding_registers(start, count=count, device_id=1)
            assert not reply.isError() and len(reply.registers) == count
            return reply

        try:
            await table.connect()
            subject, baseline = await interleaved(table.read_state, raw_read, WINDOW_S, ROUNDS)
            best, ticks = await sustainable_tick_rate(table)
        finally:
            raw.close()
            await table.close()
    finally:
        await sim.stop()
    line = ratio_line("TCP loopback", subject, baseline)
    return [line], ticks, best


async def bench_rtu(clock: ScaledClock) -> tuple[list[str], list[str], int, list[str]]:
    with PtyPair() as pair:
        sim: RunningSimulator = await start_rtu_simulator(
            {1: TableModel()}, clock, pair.device_port, baud=RTU_BAUD
        )
        try:
            table = open_device(sim.url(device=pair.host_port), clock)
            assert isinstance(table, ModbusTable)
            start, count = table.register_map.status_span
            raw = AsyncModbusSerialClient(
                pair.host_port,
                baudrate=RTU_BAUD,
                timeout=rtu_default_timeout(RTU_BAUD),
                retries=0,
                reconnect_delay=0,
            )

            async def raw_read() -> object:
                reply = await raw.read_holding_registers(start, count=count, device_id=1)
                assert not reply.isError() and len(reply.registers) == count
                return reply

            async def raw_close() -> None:
                raw.close()

            try:  # the port is locked by whoever opens it: the two take turns
                subject, baseline = await interleaved(
                    table.read_state,
                    raw_read,
                    WINDOW_S,
                    ROUNDS,
                    exclusive=((table.connect, table.close), (raw.connect, raw_close)),
                )
                await table.connect()
                best, ticks = await sustainable_tick_rate(table)
            finally:
                raw.close()
                await table.close()
        finally:
            await sim.stop()
    read_wire_ms = 1000 * rtu_seconds(8 + (5 + 2 * count) + 2 * GAP_CHARS, RTU_BAUD)
    read_8_wire_ms = 1000 * rtu_seconds(8 + (5 + 2 * 8) + 2 * GAP_CHARS, RTU_BAUD)
    tick_wire_ms = 1000 * table.tick_wire_seconds
    host_ms = 2 * subject.ms_per_call  # a tick is two exchanges
    wire_rate = 1.0 / (table.tick_wire_seconds + host_ms / 1000)
    wire = [
        f"| status read, {count} registers ({table.register_map.name}) | "
        f"{subject.ms_per_call:.2f} | {read_wire_ms:.1f} |",
        f"| 8-register read (DESIGN.md says about {DESIGN_READ_8_MS:.0f} ms) | - | "
        f"{read_8_wire_ms:.1f} |",
        f"| one tick: heartbeat write + target write + status read (`tick_wire_seconds`) | - | "
        f"{tick_wire_ms:.1f} |",
        "",
        f"On a real 19200-baud line one tick needs the wire time plus this host's overhead: "
        f"about {tick_wire_ms + host_ms:.1f} ms, so at most about {wire_rate:.0f} Hz "
        f"(DESIGN: 50 Hz is not possible at 19200).",
    ]
    line = ratio_line(f"RTU over pty, {RTU_BAUD} baud", subject, baseline)
    return [line], ticks, best, wire


async def main() -> None:
    machine_line = machine()
    clock = ScaledClock(1.0)
    began = time.perf_counter()
    tcp_reads, tcp_ticks, tcp_best = await bench_tcp(clock)
    rtu_reads, rtu_ticks, rtu_best, wire = await bench_rtu(clock)
    took = time.perf_counter() - began

    lines = [
        "### `read_state()` against raw pymodbus reading the same status block",
        "",
        f"Best of {ROUNDS} alternating {WINDOW_S} s windows each.",
        "",
        "| transport | ModbusTable.read_state /s | raw read_holding_registers /s | ratio |",
        "|---|---|---|---|",
        *tcp_reads,
        *rtu_reads,
        "",
        f"### RTU at {RTU_BAUD} baud: host time per request against wire time",
        "",
        "| what | measured over pty, ms | wire estimate, ms |",
        "|---|---|---|",
        *wire,
        "",
        "### Highest sustainable tick rate (heartbeat + state read; target unchanged)",
        "",
        f"TCP loopback: **{tcp_best} Hz**",
        "",
        *TICK_HEADER,
        *tcp_ticks,
        "",
        f"RTU over pty (no baud pacing; host-bound): **{rtu_best} Hz**",
        "",
        *TICK_HEADER,
        *rtu_ticks,
        "",
        f"Total run time {took:.0f} s.",
        "",
    ]
    print("\n".join(lines))
    write_section("bench_modbus", "Modbus driver (bench/bench_modbus.py)", machine_line, lines)


if __name__ == "__main__":
    asyncio.run(main())

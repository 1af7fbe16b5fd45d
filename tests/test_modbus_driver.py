"""The Modbus driver against the simulator over TCP loopback and RTU on a pty pair: the table
contract end to end, typed errors, reconnection and the wire-time estimate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devices.clock import ScaledClock
from devices.contract import StopKind, Table
from devices.errors import ConfigError, DeviceRejected, LinkLost, ProtocolError, TableTimeout
from devices.modbus import ModbusTable, open_modbus_table
from devices.opening import open_device
from devices.registermap import load_register_map
from devices.urls import parse_table_url
from simulators.modbus_server import RunningSimulator, start_rtu_simulator, start_tcp_simulator
from simulators.physics import TableModel, TableSpec
from simulators.ptypair import PtyPair

SPEC = TableSpec(noise_n=0.5)


@dataclass
class Rig:
    sim: RunningSimulator
    table: Table
    clock: ScaledClock
    model: TableModel
    pair: PtyPair | None = None


def _url(sim: RunningSimulator, pair: PtyPair | None, **params: str) -> str:
    url = sim.url(device=pair.host_port if pair else None)
    extra = "".join(f"&{k}={v}" for k, v in params.items())
    return url + extra


@pytest.fixture(params=["tcp", "rtu"])
async def rig(request: pytest.FixtureRequest, pty_pair: PtyPair) -> AsyncIterator[Rig]:
    clock = ScaledClock(4.0)
    model = TableModel(SPEC)
    if request.param == "tcp":
        sim = await start_tcp_simulator({1: model}, clock)
        pair = None
    else:
        sim = await start_rtu_simulator({1: model}, clock, pty_pair.device_port)
        pair = pty_pair
    table = open_device(_url(sim, pair, timeout="1"), clock)
    await table.connect()
    try:
        yield Rig(sim, table, clock, model, pair)
    finally:
        await table.close()
        await sim.stop()


async def run_until(rig: Rig, done: object, limit_s: float = 30.0) -> list[tuple[float, float]]:
    """Heartbeat and read until ``done(state)``; returns (t, measured) samples."""
    samples: list[tuple[float, float]] = []
    deadline = rig.clock.now() + limit_s
    while rig.clock.now() < deadline:
        await rig.table.heartbeat()
        state = await rig.table.read_state()
        samples.append((state.t, state.measured_force_n))
        if done(state):  # type: ignore[operator]
            return samples
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not reached within {limit_s} s of session time")


async def test_identify_read_target_start_stop_release(rig: Rig) -> None:
    table = rig.table
    info = await table.identify()
    assert (info.model, info.serial_number, info.firmware) == ("SIM-TX1", "SIM-0001", "1.4.2")
    assert info.rated_max_force_n == 900.0
    state = await table.read_state()
    assert state.ready and state.released and not state.running and state.fault == "none"

    await table.set_heartbeat_timeout(5.0)
    await table.set_target(200.0)
    before_start = rig.clock.now()
    await table.start()
    samples = await run_until(rig, lambda s: abs(s.measured_force_n - 200.0) < 5.0)
    # The force can rise no faster than the slew limit (plus the damper's share and noise).
    for t, measured in samples:
        assert measured <= SPEC.slew_n_per_s * (t - before_start) + 25.0
    state = await table.read_state()
    assert state.running and not state.released and state.target_force_n == 200.0

    await table.stop(StopKind.CONTROLLED)
    await run_until(rig, lambda s: s.released)
    state = await table.read_state()
    assert not state.running and state.measured_force_n < 5.0

    await table.set_target(100.0)
    await table.start()
    await run_until(rig, lambda s: s.measured_force_n > 50.0)
    await table.stop(StopKind.RELEASE)
    state = await table.read_state()
    assert state.released and not state.running


async def test_target_is_written_only_when_it_changes(rig: Rig) -> None:
    await rig.table.set_target(100.0)
    assert rig.model.target_n == 100.0
    rig.model.set_target(50.0)  # changed behind the driver's back
    await rig.table.set_target(100.0)
    assert rig.model.target_n == 50.0  # no write: the driver's target had not changed
    await rig.table.set_target(120.0)
    assert rig.model.target_n == 120.0


async def test_stopped_heartbeats_release_the_table_and_set_the_watchdog_bit(rig: Rig) -> None:
    await rig.table.set_heartbeat_timeout(1.0)
    await rig.table.set_target(250.0)
    await rig.table.start()
    await run_until(rig, lambda s: s.measured_force_n > 150.0)
    last_beat = rig.clock.now()
    await rig.clock.sleep_until(last_beat + 1.0 + 0.5)
    state = await rig.table.read_state()
    assert state.watchdog_tripped and state.released and not state.running
    assert state.fault == "watchdog" and state.measured_force_n < 5.0
    with pytest.raises(DeviceRejected) as refused:
        await rig.table.start()
    assert refused.value.code == 3 and "command (register" in str(refused.value)
    await rig.table.clear_fault()
    assert (await rig.table.read_state()).ready


async def test_device_exception_surfaces_with_its_code_table_and_register(rig: Rig) -> None:
    with pytest.raises(DeviceRejected) as refused:
        await rig.table.set_target(950.0)  # above the 900 N rating
    assert refused.value.code == 3
    assert rig.table.name in str(refused.value)
    assert "target_force (register 100)" in str(refused.value)
    with pytest.raises(DeviceRejected):  # a refused target is not remembered as written
        await rig.table.set_target(950.0)


async def test_no_answer_is_a_timeout_naming_the_register(rig: Rig) -> None:
    table = rig.table
    if rig.pair is None:  # a slow TCP device: replies come after the driver gave up
        table = open_device(rig.sim.url() + "&timeout=0.3&retries=0", rig.clock)
        rig.sim.faults.slow(0.8)
    else:  # a cut RS-485 line: nothing comes back
        rig.pair.cut()
    with pytest.raises(
        TableTimeout, match=r"read of measured_force\.\.sample_counter \(registers 200\.\.207\)"
    ):
        await table.read_state()
    rig.sim.faults.restore()
    if rig.pair is None:
        await asyncio.sleep(0.8)  # let the late reply arrive and be discarded
    else:
        rig.pair.mend()
    assert (await table.read_state()).ready
    await table.close()


@pytest.mark.parametrize("kind", ["junk", "truncated"])
async def test_garbage_replies_are_an_error_and_the_link_recovers(rig: Rig, kind: str) -> None:
    rig.sim.faults.garbage(True, kind)  # type: ignore[arg-type]
    # pymodbus' framers discard frames that do not check out, so garbage reads as silence.
    with pytest.raises(TableTimeout):
        await rig.table.read_state()
    rig.sim.faults.restore()
    assert (await rig.table.read_state()).ready


async def test_a_late_rtu_reply_never_answers_the_next_request(pty_pair: PtyPair) -> None:
    """RTU has no transaction id: a reply that comes after its request timed out must not be taken
    for the next request's (a heartbeat would take a read's registers as its acknowledgement, then
    the read the heartbeat's echo, one request behind for good)."""
    clock = ScaledClock(1.0)
    model = TableModel()
    async with await start_rtu_simulator({1: model}, clock, pty_pair.device_port) as sim:
        table = open_device(sim.url(device=pty_pair.host_port) + "&timeout=0.5&retries=0", clock)
        await table.connect()
        try:
            sim.faults.slow(0.7)  # the read's reply comes at 0.7 s, after the driver gave up
            with pytest.raises(TableTimeout):
                await table.read_state()
            sim.faults.slow(0.4)  # the heartbeat's own reply, at 0.9 s, comes after it
            with pytest.raises(
                ProtocolError,
                match=r"write of heartbeat.*: the reply answered another request "
                r"\(a read of 8 registers\)",
            ):
                await table.heartbeat()
            # Its own reply (0.9 s) was let pass before the error: the next read, answered in
            # 0.35 s, gets its own reply, not the heartbeat's echo.
            sim.faults.slow(0.35)
            state = await table.read_state()
            assert state.ready and state.released and state.fault == "none"
            # A write's acknowledgement must echo its own register: a late heartbeat echo (the
            # same function) is not a command's.
            sim.faults.slow(0.7)
            with pytest.raises(TableTimeout):
                await table.heartbeat()
            sim.faults.slow(0.4)
            beat = load_register_map("generic-v1")["heartbeat"]
            with pytest.raises(
                ProtocolError,
                match=rf"write of command .*\(a write of 2 to register {beat.address}\)",
            ):
                await table.clear_fault()
            sim.faults.restore()
            await table.heartbeat()
            assert model.heartbeat_counter == 3  # every heartbeat reached the table
        finally:
            await table.close()


async def test_rtu_request_for_a_silent_unit_times_out(pty_pair: PtyPair) -> None:
    clock = ScaledClock(1.0)
    async with await start_rtu_simulator({1: TableModel()}, clock, pty_pair.device_port) as sim:
        table = open_device(sim.url(9, device=pty_pair.host_port) + "&timeout=0.3", clock)
        await table.connect()
        try:
            with pytest.raises(TableTimeout, match=rf"{pty_pair.host_port}/unit9: read of model"):
                await table.identify()
        finally:
            await table.close()


async def test_dropped_tcp_link_is_link_lost_then_reconnects() -> None:
    clock = ScaledClock(1.0)
    async with await start_tcp_simulator({1: TableModel()}, clock) as sim:
        table = open_device(sim.url() + "&timeout=0.5", clock)
        await table.connect()
        try:
            assert (await table.read_state()).ready
            sim.faults.drop()
            with pytest.raises(LinkLost, match=rf"127.0.0.1:{sim.port}/unit1"):
                await table.read_state()
            sim.faults.restore()
            assert (await table.read_state()).ready
        finally:
            await table.close()


async def test_connecting_to_nothing_is_link_lost() -> None:
    sim = await start_tcp_simulator({1: TableModel()}, ScaledClock(1.0))
    port = sim.port
    await sim.stop()
    table = open_device(f"modbus+tcp://127.0.0.1:{port}?unit=1", ScaledClock(1.0))
    with pytest.raises(LinkLost, match=f"cannot connect: 127.0.0.1:{port}: connection refused"):
        await table.connect()
    serial_table = open_device("modbus+rtu:///dev/no-such-tty?unit=1", ScaledClock(1.0))
    with pytest.raises(
        LinkLost, match="/dev/no-such-tty/unit1: cannot connect: /dev/no-such-tty: no such device"
    ):
        await serial_table.connect()


async def test_a_path_that_is_no_serial_port_is_named_as_such(tmp_path: Path) -> None:
    plain = tmp_path / "notes.txt"
    plain.write_text("not a tty")
    table = open_device(f"modbus+rtu://{plain}?unit=1", ScaledClock(1.0))
    with pytest.raises(LinkLost, match=f"{plain}: not a serial port"):
        await table.connect()


async def test_second_map_through_the_same_driver(pty_pair: PtyPair) -> None:
    clock = ScaledClock(4.0)
    model = TableModel(SPEC)
    async with await start_rtu_simulator(
        {2: model}, clock, pty_pair.device_port, baud=38400, map_name="tractek-lt200"
    ) as sim:
        table = open_device(sim.url(2, device=pty_pair.host_port) + "&timeout=1", clock)
        await table.connect()
        try:
            info = await table.identify()
            assert info.rated_max_force_n == pytest.approx(900.0, abs=0.5)  # 0.1 lbf steps
            await table.set_heartbeat_timeout(5.0)
            assert model.heartbeat_timeout_s == 5.0
            await table.set_target(100.0)
            assert model.target_n == pytest.approx(100.0, abs=0.45)
            await table.start()
            assert (await table.read_state()).running
            await table.stop(StopKind.RELEASE)
            assert (await table.read_state()).released
        finally:
            await table.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "modbus+tcp://127.0.0.1:502?map=no-such-map",
            "unknown map; known maps in configs/devices",
        ),
        ("modbus+tcp://127.0.0.1:502?unit=300", "unit=300 is outside 1..247"),
        ("modbus+rtu:///dev/ttyS0?baud=12345", "baud=12345 is not a standard rate"),
        ("modbus+tcp://127.0.0.1:502?colour=red", "unknown parameter 'colour'"),
        ("modbus+rtu://host/dev/ttyS0", "takes a serial device path"),
    ],
)
def test_bad_url_or_unknown_map_is_a_config_error(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_device(url, ScaledClock(1.0))


def test_tick_wire_time_follows_the_transport_and_baud() -> None:
    clock = ScaledClock(1.0)
    rtu = open_modbus_table(parse_table_url("modbus+rtu:///dev/ttyS0?baud=19200"), clock)
    # heartbeat write 8 + 8 bytes, float32 target write 13 + 8, status read 8 + (5 + 2*6),
    # six 3.5-character gaps
    assert rtu.tick_wire_seconds == pytest.approx((8 + 8 + 13 + 8 + 8 + 21 + 6 * 3.5) * 11 / 19200)
    slow = open_modbus_table(parse_table_url("modbus+rtu:///dev/ttyS0?baud=9600"), clock)
    assert slow.tick_wire_seconds == pytest.approx(2 * rtu.tick_wire_seconds)
    tcp = open_modbus_table(parse_table_url("modbus+tcp://127.0.0.1:502"), clock)
    assert tcp.tick_wire_seconds < rtu.tick_wire_seconds / 5
    assert isinstance(tcp, ModbusTable) and tcp.timeout == 0.2
    assert 0.1 < rtu.timeout < 0.5  # from the baud rate, not pymodbus' 3 s default

"""The Modbus simulator as any standard master sees it: a plain pymodbus client that knows only the
map file (read here with tomllib, no project driver code) reads identity and status and drives the
table, and the answers follow the Modbus specification, byte for byte on RTU."""

from __future__ import annotations

import asyncio
import gc
import socket
import tomllib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import serial
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.register_message import ReadHoldingRegistersRequest

from devices.clock import ScaledClock
from devices.configfiles import config_file
from simulators.hosting import simulator_thread
from simulators.modbus_server import RunningSimulator, start_rtu_simulator, start_tcp_simulator
from simulators.physics import TableModel, TableSpec
from simulators.ptypair import PtyPair

DT = AsyncModbusTcpClient.DATATYPE


def load_map(name: str) -> dict[str, Any]:
    """The map as a third-party master would read it: plain TOML, flattened by entry name."""
    doc = tomllib.loads(config_file("devices", f"{name}.toml").read_text(encoding="utf-8"))
    flat = {n: e for group in ("identity", "control", "status") for n, e in doc[group].items()}
    flat["_word_order"] = doc["device"]["word_order"]
    return flat


class PlainMaster:
    """Reads and writes named values with nothing but pymodbus and the map file."""

    def __init__(
        self, client: AsyncModbusTcpClient | AsyncModbusSerialClient, rmap: dict[str, Any]
    ):
        self.client, self.map = client, rmap

    def _size(self, e: dict[str, Any]) -> int:
        return int(e.get("length", 2 if e["type"] in ("uint32", "int32", "float32") else 1))

    async def get(self, name: str, unit: int = 1) -> Any:
        e = self.map[name]
        reply = await self.client.read_holding_registers(
            e["address"], count=self._size(e), device_id=unit
        )
        assert not reply.isError(), reply
        dtype, order = DT[e["type"].upper()], self.map["_word_order"]
        if e["type"] == "string":
            order = "big"
        raw = self.client.convert_from_registers(reply.registers, dtype, word_order=order)
        return raw if isinstance(raw, str) else raw * e.get("scale", 1.0)

    async def put(self, name: str, value: float, unit: int = 1) -> Any:
        e = self.map[name]
        raw = value / e.get("scale", 1.0)
        if e["type"] != "float32":
            raw = round(raw)
        regs = self.client.convert_to_registers(
            raw, DT[e["type"].upper()], word_order=self.map["_word_order"]
        )
        if len(regs) == 1:
            return await self.client.write_register(e["address"], regs[0], device_id=unit)
        return await self.client.write_registers(e["address"], regs, device_id=unit)

    async def command(self, name: str, unit: int = 1) -> Any:
        return await self.put("command", self.map["command"]["values"][name], unit)

    def bit(self, word: int, name: str) -> bool:
        return bool(word >> self.map["status"]["bits"][name] & 1)


@pytest.fixture
async def tcp_sim() -> AsyncIterator[RunningSimulator]:
    models = {1: TableModel(seed=1), 2: TableModel(TableSpec(serial_number="SIM-0002"), seed=2)}
    async with await start_tcp_simulator(models, ScaledClock(1.0)) as sim:
        yield sim


@pytest.fixture
async def tcp_client(tcp_sim: RunningSimulator) -> AsyncIterator[AsyncModbusTcpClient]:
    client = AsyncModbusTcpClient("127.0.0.1", port=tcp_sim.port, timeout=2, retries=0)
    assert await client.connect()
    yield client
    client.close()


@pytest.mark.parametrize("map_name", ["generic-v1", "tractek-lt200"])
async def test_plain_master_with_only_the_map_reads_identity_and_drives_the_table(
    map_name: str,
) -> None:
    clock = ScaledClock(4.0)
    async with await start_tcp_simulator({1: TableModel()}, clock, map_name=map_name) as sim:
        client = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=2, retries=0)
        assert await client.connect()
        master = PlainMaster(client, load_map(map_name))
        try:
            assert await master.get("model") == "SIM-TX1"
            assert await master.get("serial_number") == "SIM-0001"
            assert await master.get("firmware") == "1.4.2"
            rated = await master.get("rated_max_force")
            assert rated == pytest.approx(900.0 if map_name == "generic-v1" else 202.3, abs=0.05)

            status = int(await master.get("status"))
            assert master.bit(status, "ready") and master.bit(status, "released")
            assert await master.get("fault_code") == 0

            unit_force = 1.0 if map_name == "generic-v1" else 4.4482216152605
            assert not (await master.put("target_force", 150.0 / unit_force)).isError()
            assert not (await master.command("start")).isError()
            measured = 0.0
            for beat in range(1, 200):
                assert not (await master.put("heartbeat", beat)).isError()
                measured = await master.get("measured_force") * unit_force
                if measured > 140.0:
                    break
                await asyncio.sleep(0.02)
            assert measured > 140.0
            status = int(await master.get("status"))
            assert master.bit(status, "running") and not master.bit(status, "released")
            assert await master.get("target_echo") * unit_force == pytest.approx(150.0, abs=0.5)

            assert not (await master.command("release")).isError()
            status = int(await master.get("status"))
            assert master.bit(status, "released") and not master.bit(status, "running")
        finally:
            client.close()


async def test_exception_codes_follow_the_spec(tcp_client: AsyncModbusTcpClient) -> None:
    master = PlainMaster(tcp_client, load_map("generic-v1"))
    unmapped = await tcp_client.read_holding_registers(300, count=1, device_id=1)
    assert unmapped.isError() and unmapped.exception_code == 2
    past_status_block = await tcp_client.read_holding_registers(200, count=9, device_id=1)
    assert past_status_block.exception_code == 2
    read_only = await tcp_client.write_register(204, 1, device_id=1)
    assert read_only.isError() and read_only.exception_code == 2
    half_of_a_float = await tcp_client.write_register(100, 0x4461, device_id=1)
    assert half_of_a_float.exception_code == 2
    above_rating = await master.put("target_force", 901.0)
    assert above_rating.isError() and above_rating.exception_code == 3
    unknown_command = await master.put("command", 9)
    assert unknown_command.isError() and unknown_command.exception_code == 3
    coils = await tcp_client.read_coils(0, count=1, device_id=1)
    assert coils.isError() and coils.exception_code == 1
    other_unit = await tcp_client.read_holding_registers(200, count=6, device_id=7)
    assert other_unit.isError() and other_unit.exception_code == 11  # gateway: no response
    assert await master.get("target_force") == 0.0  # nothing refused was applied


@pytest.mark.parametrize("connections", [1, 8])
async def test_a_simulator_stopping_closes_connections_made_a_moment_before(
    connections: int,
) -> None:
    """Clients that connected just before the stop (the kernel took their handshake, the accept
    was still queued on the simulator's thread) are accepted and closed, not leaked: a socket
    left open would warn when collected, which this suite makes an error."""
    clock = ScaledClock()
    host = simulator_thread()
    for _ in range(5):
        sim = await host.run(start_tcp_simulator({1: TableModel(now=clock.now())}, clock))
        clients = [
            socket.create_connection((sim.host, sim.port), timeout=5.0) for _ in range(connections)
        ]
        await host.run(sim.stop())
        for client in clients:
            assert client.recv(1) == b""  # the simulator closed its end
            client.close()
        gc.collect()


async def test_start_refused_while_the_stop_switch_is_pressed(
    tcp_sim: RunningSimulator, tcp_client: AsyncModbusTcpClient
) -> None:
    master = PlainMaster(tcp_client, load_map("generic-v1"))
    tcp_sim.models[1].press_stop_switch(0.0)
    refused = await master.command("start")
    assert refused.isError() and refused.exception_code == 3
    status = int(await master.get("status"))
    assert master.bit(status, "stop_switch_pressed") and master.bit(status, "fault")
    assert await master.get("fault_code") == 5
    assert not (await master.command("clear_fault")).isError()
    assert not (await master.command("start")).isError()


async def test_several_tables_on_one_server_are_independent(
    tcp_sim: RunningSimulator, tcp_client: AsyncModbusTcpClient
) -> None:
    master = PlainMaster(tcp_client, load_map("generic-v1"))
    assert await master.get("serial_number", unit=2) == "SIM-0002"
    assert not (await master.put("target_force", 120.0, unit=2)).isError()
    assert tcp_sim.models[2].target_n == 120.0
    assert tcp_sim.models[1].target_n == 0.0
    assert tcp_sim.url(2) == f"modbus+tcp://127.0.0.1:{tcp_sim.port}?unit=2&map=generic-v1"


async def test_watchdog_releases_and_sets_its_bit_when_heartbeats_stop() -> None:
    # x4 and a 2 s watchdog: a heartbeat may come 0.5 s (real) late on a busy machine
    clock = ScaledClock(4.0)
    model = TableModel(TableSpec(noise_n=0.0))
    async with await start_tcp_simulator({1: model}, clock) as sim:
        client = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=2, retries=0)
        assert await client.connect()
        master = PlainMaster(client, load_map("generic-v1"))
        try:
            assert not (await master.put("heartbeat_timeout_ms", 2000)).isError()
            await master.put("target_force", 300.0)
            await master.command("start")
            ramp_ends = clock.now() + 10.0  # 200 N at the motor's 150 N/s takes 1.3 s
            while await master.get("measured_force") < 200.0:
                assert clock.now() < ramp_ends, (
                    f"never reached 200 N: watchdog tripped {model.watchdog_tripped}, fault {model.fault_code}"
                )
                await master.put("heartbeat", 1)
                await asyncio.sleep(0.01)
            last_beat = clock.now()
            await clock.sleep_until(last_beat + 2.0 + 0.5)  # timeout plus the release time
            status = int(await master.get("status"))
            assert master.bit(status, "watchdog_tripped") and master.bit(status, "released")
            assert not master.bit(status, "running")
            assert await master.get("fault_code") == 4
            assert await master.get("measured_force") < 5.0
        finally:
            client.close()


async def test_rtu_answers_its_unit_and_stays_silent_for_others(pty_pair: PtyPair) -> None:
    async with await start_rtu_simulator(
        {1: TableModel(), 3: TableModel()}, ScaledClock(1.0), pty_pair.device_port
    ) as sim:
        assert sim.url(3, device=pty_pair.host_port) == (
            f"modbus+rtu://{pty_pair.host_port}?baud=19200&unit=3&map=generic-v1"
        )
        client = AsyncModbusSerialClient(pty_pair.host_port, baudrate=19200, timeout=1, retries=0)
        assert await client.connect()
        master = PlainMaster(client, load_map("generic-v1"))
        try:
            assert await master.get("model", unit=1) == "SIM-TX1"
            assert await master.get("model", unit=3) == "SIM-TX1"
            with pytest.raises(ModbusIOException, match="No response"):
                await client.read_holding_registers(200, count=6, device_id=9)
            unmapped = await client.read_holding_registers(300, count=1, device_id=1)
            assert unmapped.exception_code == 2
        finally:
            client.close()


def _rtu_exchange(port: str, request: bytes) -> bytes:
    with serial.Serial(port, 19200, timeout=0.5) as line:
        line.reset_input_buffer()
        line.write(request)
        return bytes(line.read(256))


async def test_rtu_frames_on_the_wire_follow_the_spec(pty_pair: PtyPair) -> None:
    """Raw bytes through pyserial: an exception reply is unit, function|0x80, code, CRC-16."""
    framer = FramerRTU(DecodePDU(False))
    async with await start_rtu_simulator({1: TableModel()}, ScaledClock(1.0), pty_pair.device_port):
        bad = framer.buildFrame(ReadHoldingRegistersRequest(address=300, count=1, dev_id=1))
        reply = await asyncio.to_thread(_rtu_exchange, pty_pair.host_port, bad)
        assert reply[:3] == bytes([1, 0x83, 2])
        assert len(reply) == 5
        assert FramerRTU.check_CRC(reply[:3], int.from_bytes(reply[3:], "big"))

        good = framer.buildFrame(ReadHoldingRegistersRequest(address=204, count=2, dev_id=1))
        reply = await asyncio.to_thread(_rtu_exchange, pty_pair.host_port, good)
        assert reply[:3] == bytes([1, 3, 4]) and len(reply) == 9
        status, fault = int.from_bytes(reply[3:5], "big"), int.from_bytes(reply[5:7], "big")
        assert status & 0b110110 == 0b100110 and fault == 0  # ready, released, switch connected

        other = framer.buildFrame(ReadHoldingRegistersRequest(address=204, count=2, dev_id=9))
        assert await asyncio.to_thread(_rtu_exchange, pty_pair.host_port, other) == b""

"""The Modbus simulators as independent masters see them: one snapshot per request (no torn
float32), RTU framing by silence with resynchronisation after bad or truncated frames, and the unit
ids each transport answers. Frames are pymodbus-built and sent raw, or sent by Debian's mbpoll."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    WriteMultipleRegistersRequest,
    WriteSingleRegisterRequest,
)
from wiremaster import (
    float32_of,
    mbpoll,
    needs_mbpoll,
    rtu_frame,
    rtu_reply_ok,
    serial_exchange,
    tcp_exchange,
    tcp_frame,
)

from devices.clock import ScaledClock
from devices.modbus import ModbusTable, open_modbus_table
from devices.registermap import Group, load_register_map
from devices.urls import parse_table_url
from simulators.modbus_server import RunningSimulator, start_rtu_simulator, start_tcp_simulator
from simulators.physics import TableModel, TableSpec
from simulators.ptypair import PtyPair
from simulators.rtu_framing import silence_seconds


class SampleCountingModel(TableModel):
    """A table whose load cell gives a new, distinct value at every sample it is asked for, so a
    reply mixing two samples cannot go unnoticed (the physical table is the one thing mocked)."""

    def __init__(self) -> None:
        super().__init__(TableSpec(noise_n=0.0))
        self.samples: list[float] = []

    def measured_n(self) -> float:
        value = 100.0 + 1.37 * len(self.samples) + 0.0123
        self.samples.append(value)
        return value


def as_float32(value: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", value))[0])


def assert_one_sample_per_read(model: SampleCountingModel, forces: list[float]) -> None:
    assert len(model.samples) == len(forces)  # one load-cell sample per request, not per register
    assert forces == [as_float32(sample) for sample in model.samples]


@pytest.fixture
async def counting_tcp() -> AsyncIterator[tuple[RunningSimulator, SampleCountingModel]]:
    model = SampleCountingModel()
    async with await start_tcp_simulator({1: model}, ScaledClock(1.0)) as sim:
        yield sim, model


# ----- one snapshot per request ------------------------------------------------------------------


async def test_float32_force_over_tcp_is_one_sample_per_read(
    counting_tcp: tuple[RunningSimulator, SampleCountingModel],
) -> None:
    sim, model = counting_tcp
    forces = []
    for _ in range(20):
        request = ReadHoldingRegistersRequest(address=200, count=6, dev_id=1, transaction_id=7)
        reply = await asyncio.to_thread(tcp_exchange, sim.port, tcp_frame(request))
        assert reply[7:9] == bytes([3, 12])  # function 3, 12 bytes: the whole status block
        words = list(struct.unpack(">6H", reply[9:21]))
        forces.append(float32_of(words[0:2]))
        assert float32_of(words[2:4]) == 0.0  # target echo of the same instant
    assert_one_sample_per_read(model, forces)


async def test_float32_force_on_rtu_is_one_sample_per_read(pty_pair: PtyPair) -> None:
    model = SampleCountingModel()
    async with await start_rtu_simulator({1: model}, ScaledClock(1.0), pty_pair.device_port):
        forces = []
        for _ in range(10):
            frame = rtu_frame(ReadHoldingRegistersRequest(address=200, count=2, dev_id=1))
            reply = await asyncio.to_thread(serial_exchange, pty_pair.host_port, frame)
            assert reply[:3] == bytes([1, 3, 4]) and rtu_reply_ok(reply), reply.hex()
            forces.append(float32_of(list(struct.unpack(">2H", reply[3:7]))))
    assert_one_sample_per_read(model, forces)


@needs_mbpoll
async def test_mbpoll_reads_whole_float32_samples_over_tcp(
    counting_tcp: tuple[RunningSimulator, SampleCountingModel],
) -> None:
    """The issue's repro: ``mbpoll -r 200 -c 2 -t 4:hex`` twenty times against an idle table."""
    sim, model = counting_tcp
    forces = []
    for _ in range(20):
        args = ("-m", "tcp", "-p", str(sim.port), "-a", "1", "-0", "-r", "200", "-c", "2")
        words = await asyncio.to_thread(mbpoll, *args, "-t", "4:hex", "127.0.0.1")
        forces.append(float32_of(words))
    assert_one_sample_per_read(model, forces)


@needs_mbpoll
async def test_mbpoll_reads_of_a_noisy_idle_table_are_never_subnormal() -> None:
    """With the real noisy load cell at rest, torn words showed as subnormals (4e-41 N)."""
    async with await start_tcp_simulator({1: TableModel(seed=3)}, ScaledClock(1.0)) as sim:
        for _ in range(20):
            args = ("-m", "tcp", "-p", str(sim.port), "-a", "1", "-0", "-r", "200", "-c", "2")
            force = float32_of(await asyncio.to_thread(mbpoll, *args, "-t", "4:hex", "127.0.0.1"))
            assert force == 0.0 or 1e-3 < force < 10.0, force


@pytest.mark.parametrize("map_name", ["generic-v1", "tractek-lt200"])
async def test_driver_reads_every_multi_register_value_in_one_request(map_name: str) -> None:
    async with await start_tcp_simulator({1: TableModel()}, ScaledClock(1.0), map_name) as sim:
        datastore: Any = sim._server.context
        reads: list[range] = []
        real_get: Callable[..., Awaitable[Any]] = datastore.async_getValues

        async def recording_get(unit: int, function: int, address: int, count: int = 1) -> Any:
            if function == 3:
                reads.append(range(address, address + count))
            return await real_get(unit, function, address, count)

        datastore.async_getValues = recording_get
        table = open_modbus_table(parse_table_url(sim.url(1)), ScaledClock(1.0))
        assert isinstance(table, ModbusTable)
        await table.connect()
        try:
            await table.identify()
            await table.read_state()
            await table.set_force_limit(200.0)
            await table.read_force_limit()
        finally:
            await table.close()
    register_map = load_register_map(map_name)
    for entry in register_map.entries.values():
        if entry.length < 2 or not entry.access.readable:
            continue
        covering = [r for r in reads if entry.address in r or entry.end - 1 in r]
        if entry.group is not Group.CONTROL or entry.name == "force_limit":
            assert covering, f"{entry.name} was never read"
        assert all(entry.address in r and entry.end - 1 in r for r in covering), (
            f"{entry.name} (registers {entry.address}..{entry.end - 1}) split over {covering}"
        )


# ----- RTU: frames end at t3.5 of silence; resynchronisation --------------------------------------

GOOD = rtu_frame(ReadHoldingRegistersRequest(address=204, count=1, dev_id=1))
STALE = {
    "truncated read": bytes([0x01, 0x03, 0x00, 0xCC]),
    "bad crc": GOOD[:-1] + bytes([GOOD[-1] ^ 0xFF]),
    "line noise": bytes([0xFF, 0x00, 0xA5, 0x5A, 0x13]),
    "truncated write claiming 246 bytes": bytes([0x01, 0x10, 0x00, 0x64, 0x00, 0x7B, 0xF6, 0x41]),
}


def assert_status_reply(reply: bytes) -> None:
    assert rtu_reply_ok(reply) and reply[:3] == bytes([1, 3, 2]), reply.hex()
    assert int.from_bytes(reply[3:5], "big") & 0b100110 == 0b100110  # ready, released, switch


def test_silence_is_three_and_a_half_characters_with_the_spec_floor() -> None:
    assert silence_seconds(9600) == pytest.approx(3.5 * 11 / 9600)  # 4.01 ms
    assert silence_seconds(19200) == pytest.approx(3.5 * 11 / 19200)  # 2.005 ms
    assert silence_seconds(38400) == silence_seconds(115200) == 0.00175


@pytest.mark.parametrize("stale", list(STALE), ids=list(STALE))
async def test_rtu_answers_the_first_good_request_after_a_bad_frame_and_silence(
    pty_pair: PtyPair, stale: str
) -> None:
    async with await start_rtu_simulator({1: TableModel()}, ScaledClock(1.0), pty_pair.device_port):
        reply = await asyncio.to_thread(
            serial_exchange, pty_pair.host_port, STALE[stale], GOOD, pause_s=0.2
        )
    assert_status_reply(reply)


@pytest.mark.parametrize("stale", ["truncated read", "bad crc", "line noise"])
async def test_rtu_finds_a_good_frame_behind_a_bad_one_that_arrived_with_it(
    pty_pair: PtyPair, stale: str
) -> None:
    """No silence between them (as when this process reads late): the framer hunts past the
    broken frame instead of dropping everything it holds."""
    async with await start_rtu_simulator({1: TableModel()}, ScaledClock(1.0), pty_pair.device_port):
        reply = await asyncio.to_thread(serial_exchange, pty_pair.host_port, STALE[stale] + GOOD)
    assert_status_reply(reply)


async def test_rtu_keeps_serving_after_a_run_of_broken_frames(pty_pair: PtyPair) -> None:
    async with await start_rtu_simulator({1: TableModel()}, ScaledClock(1.0), pty_pair.device_port):
        for stale in STALE.values():
            reply = await asyncio.to_thread(
                serial_exchange, pty_pair.host_port, stale, GOOD, pause_s=0.05
            )
            assert_status_reply(reply)


async def test_rtu_takes_a_frame_whose_halves_this_process_read_apart(pty_pair: PtyPair) -> None:
    """A stall here can make a frame's own bytes look separated by silence; its CRC proves they
    belong together, so it is answered rather than dropped."""
    async with await start_rtu_simulator({1: TableModel()}, ScaledClock(1.0), pty_pair.device_port):
        reply = await asyncio.to_thread(
            serial_exchange, pty_pair.host_port, GOOD[:3], GOOD[3:], pause_s=0.1
        )
    assert_status_reply(reply)


@needs_mbpoll
async def test_mbpoll_on_a_pty_is_answered_after_a_truncated_frame(pty_pair: PtyPair) -> None:
    """The issue's repro: ``printf '\\x01\\x03\\x00\\xcc' > PTY; sleep 0.2; mbpoll -m rtu ...``."""
    async with await start_rtu_simulator({1: TableModel()}, ScaledClock(1.0), pty_pair.device_port):
        nothing = await asyncio.to_thread(
            serial_exchange, pty_pair.host_port, STALE["truncated read"], wait_s=0.2
        )
        assert nothing == b""
        args = ("-m", "rtu", "-b", "19200", "-P", "none", "-a", "1", "-0", "-r", "204")
        words = await asyncio.to_thread(mbpoll, *args, "-t", "4:hex", pty_pair.host_port)
    assert words[0] & 0b100110 == 0b100110


@needs_mbpoll
async def test_mbpoll_reads_whole_float32_samples_on_rtu(pty_pair: PtyPair) -> None:
    model = SampleCountingModel()
    async with await start_rtu_simulator({1: model}, ScaledClock(1.0), pty_pair.device_port):
        forces = []
        for _ in range(5):
            args = ("-m", "rtu", "-b", "19200", "-P", "none", "-a", "1", "-0", "-r", "200")
            words = await asyncio.to_thread(
                mbpoll, *args, "-c", "2", "-t", "4:hex", pty_pair.host_port
            )
            forces.append(float32_of(words))
    assert_one_sample_per_read(model, forces)


# ----- TCP: an abandoned frame is dropped, an impossible header closes the stream ----------------

TCP_GOOD = tcp_frame(ReadHoldingRegistersRequest(address=204, count=1, dev_id=1, transaction_id=9))


def tcp_exchanges(port: int, *chunks: bytes, pause_s: float) -> tuple[bytes, bool]:
    """Send ``chunks`` on one connection with pauses; return the first reply frame and whether
    the server then closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        for index, chunk in enumerate(chunks):
            if index:
                time.sleep(pause_s)
            sock.sendall(chunk)
        reply = b""
        try:
            while len(reply) < 6 or len(reply) < 6 + int.from_bytes(reply[4:6], "big"):
                chunk = sock.recv(512)
                if not chunk:
                    return reply, True
                reply += chunk
        except TimeoutError:
            return reply, False
        return reply, False


def assert_tcp_status_reply(reply: bytes) -> None:
    assert reply[:2] == (9).to_bytes(2, "big") and reply[6:9] == bytes([1, 3, 2]), reply.hex()
    assert int.from_bytes(reply[9:11], "big") & 0b100110 == 0b100110


async def test_tcp_answers_the_next_request_after_an_abandoned_partial_frame() -> None:
    async with await start_tcp_simulator({1: TableModel()}, ScaledClock(1.0)) as sim:
        reply, closed = await asyncio.to_thread(
            tcp_exchanges, sim.port, TCP_GOOD[:9], TCP_GOOD, pause_s=0.7
        )
    assert not closed
    assert_tcp_status_reply(reply)


async def test_tcp_closes_a_stream_with_a_header_that_cannot_be_modbus() -> None:
    async with await start_tcp_simulator({1: TableModel()}, ScaledClock(1.0)) as sim:
        garbage = b"GET / HTTP/1.1\r\n\r\n"  # protocol id 0x2F20: no frame can follow
        reply, closed = await asyncio.to_thread(tcp_exchanges, sim.port, garbage, pause_s=0.0)
        assert closed and reply == b""
        fresh = await asyncio.to_thread(tcp_exchange, sim.port, TCP_GOOD)  # a new connection
    assert_tcp_status_reply(fresh)


# ----- unit ids ----------------------------------------------------------------------------------


async def read_status(port: int, unit: int) -> Any:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    assert await client.connect()
    try:
        return await client.read_holding_registers(204, count=1, device_id=unit)
    finally:
        client.close()


@pytest.mark.parametrize("unit", [1, 255, 0])
async def test_a_lone_tcp_table_answers_its_unit_and_the_direct_ids(unit: int) -> None:
    async with await start_tcp_simulator({1: TableModel()}, ScaledClock(1.0)) as sim:
        reply = await read_status(sim.port, unit)
    assert not reply.isError() and reply.registers[0] & 0b100110 == 0b100110


async def test_the_driver_reaches_a_lone_tcp_table_at_unit_255() -> None:
    async with await start_tcp_simulator({1: TableModel()}, ScaledClock(1.0)) as sim:
        url = f"modbus+tcp://127.0.0.1:{sim.port}?unit=255"
        table = open_modbus_table(parse_table_url(url), ScaledClock(1.0))
        await table.connect()
        try:
            assert (await table.identify()).serial_number == "SIM-0001"
        finally:
            await table.close()


@pytest.mark.parametrize("unit", [2, 7, 247])
async def test_a_tcp_table_answers_other_unit_ids_with_exception_11(unit: int) -> None:
    async with await start_tcp_simulator({1: TableModel()}, ScaledClock(1.0)) as sim:
        reply = await read_status(sim.port, unit)
    assert reply.isError() and reply.exception_code == 11


async def test_a_tcp_write_to_unit_0_is_acknowledged_and_applied() -> None:
    model = TableModel()
    async with await start_tcp_simulator({1: model}, ScaledClock(1.0)) as sim:
        request = WriteMultipleRegistersRequest(
            address=100, registers=[0x4316, 0x0000], dev_id=0, transaction_id=3
        )
        reply = await asyncio.to_thread(tcp_exchange, sim.port, tcp_frame(request))
    assert reply[6:8] == bytes([0, 16])  # unit 0 echoed, function 16: a normal reply
    assert model.target_n == 150.0


async def test_direct_ids_name_no_table_on_a_server_holding_several() -> None:
    models = {1: TableModel(), 2: TableModel()}
    async with await start_tcp_simulator(models, ScaledClock(1.0)) as sim:
        for unit in (0, 255):
            reply = await read_status(sim.port, unit)
            assert reply.isError() and reply.exception_code == 11


@needs_mbpoll
async def test_mbpoll_reaches_a_tcp_table_at_unit_255() -> None:
    async with await start_tcp_simulator({1: TableModel()}, ScaledClock(1.0)) as sim:
        args = ("-m", "tcp", "-p", str(sim.port), "-a", "255", "-0", "-r", "204")
        words = await asyncio.to_thread(mbpoll, *args, "-t", "4:hex", "127.0.0.1")
    assert words[0] & 0b100110 == 0b100110


@pytest.mark.parametrize("unit", [0, 9, 255])
async def test_rtu_stays_silent_and_unchanged_for_broadcasts_and_other_units(
    pty_pair: PtyPair, unit: int
) -> None:
    model = TableModel()
    async with await start_rtu_simulator({1: model}, ScaledClock(1.0), pty_pair.device_port):
        write = rtu_frame(WriteSingleRegisterRequest(address=104, registers=[500], dev_id=unit))
        reply = await asyncio.to_thread(serial_exchange, pty_pair.host_port, write, wait_s=0.3)
        assert reply == b""
        assert model.heartbeat_timeout_s == 1.0
        assert_status_reply(await asyncio.to_thread(serial_exchange, pty_pair.host_port, GOOD))

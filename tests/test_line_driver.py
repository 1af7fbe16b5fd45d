"""The line-v1 driver against the line-v1 simulator over a real pty pair and real pyserial.

The simulator and the driver share a scaled clock, so seconds of table time pass in a fraction of
real time. Waits are bounded polls on the table's own state, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import serial

from devices.clock import ScaledClock
from devices.contract import StopKind, Table, TableState
from devices.errors import ConfigError, DeviceRejected, LinkLost, ProtocolError, TableTimeout
from devices.line import LineTable, open_line_table
from devices.lineproto import ErrorCode, Request, StateReply, Verb
from devices.opening import open_device
from devices.urls import parse_table_url
from simulators.line_server import RunningLineSimulator, start_line_simulator
from simulators.physics import TableModel, TableSpec
from simulators.ptypair import PtyPair

SCALE = 10.0
ROUNDS = 400  # upper bound on polling rounds; each is one heartbeat and one read


@pytest.fixture
def scaled() -> ScaledClock:
    return ScaledClock(SCALE)


@pytest.fixture
async def simulator(pty_pair: PtyPair, scaled: ScaledClock) -> AsyncIterator[RunningLineSimulator]:
    model = TableModel(TableSpec(heartbeat_timeout_s=5.0), seed=3)  # 0.5 s real at x10
    async with await start_line_simulator(
        model, scaled, pty_pair.device_port, host_port=pty_pair.host_port
    ) as sim:
        yield sim


@pytest.fixture
async def table(simulator: RunningLineSimulator, scaled: ScaledClock) -> AsyncIterator[LineTable]:
    driver = open_line_table(parse_table_url(simulator.url() + "&timeout=0.3"), scaled)
    await driver.connect()
    try:
        yield driver
    finally:
        await driver.close()


async def poll(
    table: Table, until: Callable[[TableState], bool], heartbeat: bool = True
) -> TableState:
    """Heartbeat and read until ``until(state)``; fails after ROUNDS rounds."""
    for _ in range(ROUNDS):
        if heartbeat:
            await table.heartbeat()
        state = await table.read_state()
        if until(state):
            return state
        await asyncio.sleep(0.005)
    raise AssertionError(f"table never reached the expected state; last: {state}")


def test_a_line_url_opens_a_line_table(scaled: ScaledClock) -> None:
    table = open_device("line:///dev/ttyUSB1?baud=19200&timeout=0.5", scaled)
    assert isinstance(table, LineTable) and isinstance(table, Table)
    assert table.name == "/dev/ttyUSB1"
    slow = open_line_table(parse_table_url("line:///dev/ttyUSB1?baud=9600"), scaled)
    assert slow.tick_wire_seconds == pytest.approx(2 * table.tick_wire_seconds)
    assert slow.tick_wire_seconds == pytest.approx(121 * 10 / 9600)  # line-v1.md, section 9


@pytest.mark.parametrize(
    "url",
    [
        "line:///dev/ttyUSB1?protocol=line-v2",
        "line:///dev/ttyUSB1?baud=1234",
        "line:///dev/ttyUSB1?timeout=fast",
        "line://host/dev/ttyUSB1",
    ],
)
def test_bad_line_urls_are_config_errors(url: str, scaled: ScaledClock) -> None:
    with pytest.raises(ConfigError, match="table URL"):
        open_device(url, scaled)


async def test_a_missing_port_or_no_connect_is_link_lost(
    scaled: ScaledClock, tmp_path: Path
) -> None:
    table = open_line_table(parse_table_url(f"line://{tmp_path}/ttyNONE"), scaled)
    with pytest.raises(LinkLost, match="connect"):
        await table.read_state()
    with pytest.raises(
        LinkLost, match=f"cannot open serial port {tmp_path}/ttyNONE: no such device"
    ) as caught:
        await table.connect()
    assert caught.value.table == f"{tmp_path}/ttyNONE"
    await table.close()


async def test_runs_a_table_through_identify_read_target_start_stop_and_release(
    table: LineTable, simulator: RunningLineSimulator
) -> None:
    info = await table.identify()
    assert (info.model, info.serial_number, info.firmware) == ("SIM-TX1", "SIM-0001", "1.4.2")
    assert info.rated_max_force_n == 900.0 and info.manufacturer == "Traction Simulators"

    idle = await table.read_state()
    assert idle.ready and idle.released and not idle.running and idle.fault == "none"
    assert idle.stop_switch_connected and not idle.stop_switch_pressed

    await table.set_target(150.0)
    await table.start()
    pulling = await poll(table, lambda s: s.measured_force_n > 130.0)
    assert pulling.running and not pulling.released and pulling.target_force_n == 150.0
    assert simulator.model.target_n == 150.0

    await table.stop(StopKind.CONTROLLED)
    stopped = await poll(table, lambda s: s.released)
    assert not stopped.running and stopped.fault == "none" and stopped.ready

    await table.start()
    await poll(table, lambda s: s.measured_force_n > 60.0)
    await table.stop(StopKind.RELEASE)
    released = await table.read_state()
    assert released.released and not released.running  # at once, not after a ramp
    await poll(table, lambda s: s.measured_force_n < 5.0)


async def test_heartbeat_loss_releases_the_table_and_latches(table: LineTable) -> None:
    await table.set_heartbeat_timeout(5.0)  # 0.5 s real between heartbeats at x10
    await table.set_target(200.0)
    await table.start()
    await poll(table, lambda s: s.measured_force_n > 100.0)

    tripped = await poll(table, lambda s: s.released, heartbeat=False)
    assert tripped.watchdog_tripped and tripped.fault == "watchdog" and not tripped.running
    with pytest.raises(DeviceRejected) as refused:
        await table.start()
    assert refused.value.code == ErrorCode.NOT_READY

    await table.clear_fault()
    cleared = await table.read_state()
    assert cleared.ready and not cleared.watchdog_tripped and cleared.fault == "none"


async def test_values_the_table_refuses_are_device_rejected(table: LineTable) -> None:
    with pytest.raises(DeviceRejected) as above_rating:
        await table.set_target(950.0)
    assert above_rating.value.code == ErrorCode.BAD_VALUE
    with pytest.raises(DeviceRejected) as too_short:
        await table.set_heartbeat_timeout(0.01)
    assert too_short.value.code == ErrorCode.BAD_VALUE
    assert (await table.read_state()).target_force_n == 0.0


Inject = Callable[[RunningLineSimulator, PtyPair], None]

WIRE_FAULTS: list[tuple[str, Inject, Inject, type[Exception], str]] = [
    ("garbage", lambda s, p: s.faults.garbage(True), lambda s, p: s.faults.garbage(False),
     ProtocolError, "line noise"),
    ("truncated", lambda s, p: s.faults.truncate(True), lambda s, p: s.faults.truncate(False),
     ProtocolError, "truncated frame"),
    ("bad checksum", lambda s, p: s.faults.bad_checksum(True),
     lambda s, p: s.faults.bad_checksum(False), ProtocolError, "bad checksum"),
    ("mute", lambda s, p: s.faults.mute(True), lambda s, p: s.faults.mute(False),
     TableTimeout, "no reply within 0.3 s"),
    ("slow", lambda s, p: s.faults.slow(1.0), lambda s, p: s.faults.slow(0.0),
     TableTimeout, "no reply within 0.3 s"),
    ("cable cut", lambda s, p: p.cut(), lambda s, p: p.mend(), TableTimeout, "no reply"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("inject", "heal", "error", "message"),
    [fault[1:] for fault in WIRE_FAULTS],
    ids=[fault[0] for fault in WIRE_FAULTS],
)
async def test_wire_faults_raise_typed_errors_and_the_next_request_works(
    table: LineTable,
    simulator: RunningLineSimulator,
    pty_pair: PtyPair,
    inject: Inject,
    heal: Inject,
    error: type[Exception],
    message: str,
) -> None:
    await table.set_target(42.0)
    inject(simulator, pty_pair)
    with pytest.raises(error, match=message) as caught:
        await asyncio.wait_for(table.read_state(), timeout=10)  # bounded: never a hang
    assert pty_pair.host_port in str(caught.value)
    heal(simulator, pty_pair)
    for _ in range(ROUNDS):  # a slow reply still on its way lands in the driver's stale input
        if not simulator.busy:
            break
        await asyncio.sleep(0.01)

    # Replies pair with their own requests again, even if a late one is still on its way.
    info = await table.identify()
    assert info.model == "SIM-TX1"
    await table.set_target(43.5)
    state = await table.read_state()
    assert state.target_force_n == 43.5


async def test_the_port_vanishing_is_link_lost_and_the_driver_reconnects(
    scaled: ScaledClock, tmp_path: Path
) -> None:
    """A udev-style symlink names the port; the cable goes, then a new one comes up behind it."""
    link = tmp_path / "ttyTABLE"
    # 1 s: the simulator answers from this test's own event loop, which a loaded machine delays
    table = open_line_table(parse_table_url(f"line://{link}?timeout=1.0"), scaled)

    async def plug_in() -> tuple[PtyPair, RunningLineSimulator]:
        pair = PtyPair().start()
        sim = await start_line_simulator(TableModel(), scaled, pair.device_port)
        if link.is_symlink():
            link.unlink()
        os.symlink(pair.host_port, link)
        return pair, sim

    first_pair, first_sim = await plug_in()
    try:
        await table.connect()
        assert (await table.read_state()).ready
        await first_sim.stop()
    finally:
        first_pair.close()
    link.unlink()

    with pytest.raises(LinkLost) as lost:
        await table.read_state()
    assert lost.value.table == str(link)
    with pytest.raises(LinkLost, match="cannot open serial port"):
        await table.identify()

    second_pair, second_sim = await plug_in()
    try:
        assert (await table.identify()).model == "SIM-TX1"
        assert (await table.read_state()).ready
    finally:
        await table.close()
        await second_sim.stop()
        second_pair.close()


class FrozenAfterFirstByte:
    """The real port, seen by a host that is frozen (SIGSTOP, or starved of CPU) right after the
    first byte of a reply reached it: nothing was waiting when it asked, it got one byte, and by
    the time it runs again its deadline has passed with the rest of the reply in the port. Only
    the OS's scheduling is staged here; every byte is the simulator's, read from the real pty."""

    def __init__(self, port: serial.Serial, frozen_s: float) -> None:
        self._port = port
        self._frozen_s = frozen_s
        self._asked = False

    @property
    def in_waiting(self) -> int:
        return self._port.in_waiting if self._asked else 0

    def read(self, size: int) -> bytes:
        data = self._port.read(size)
        if not self._asked:
            self._asked = True
            time.sleep(self._frozen_s)
        return data


async def test_a_reply_that_arrived_while_the_host_was_frozen_is_read_not_blamed(
    table: LineTable,
) -> None:
    """A host frozen inside a request wakes with its deadline past and the table's reply in the
    port: it reads that reply instead of reporting a truncated frame (which blamed the table for
    the host's own stall). Nothing waiting past the deadline is still a timeout."""
    await table.read_state()  # connected: the port is open
    port = table._ensure_open()
    request = Request("7E", Verb.READ_STATE)
    port.reset_input_buffer()
    port.write(request.encode())
    for _ in range(100):  # bounded: the simulator answers within milliseconds
        await asyncio.sleep(0.05)
        if port.in_waiting >= 10:  # a state reply is far longer than ten bytes
            break
    await asyncio.sleep(0.2)  # and the rest of it lands
    frozen = FrozenAfterFirstByte(port, frozen_s=0.2)
    deadline = time.monotonic() + 0.1  # runs out while the host is frozen
    reply = table._read_reply(frozen, request.sequence, deadline)  # type: ignore[arg-type]
    assert isinstance(reply, StateReply) and reply.sequence == "7E"
    with pytest.raises(TableTimeout):
        table._read_reply(port, "7F", time.monotonic() - 1.0)  # nothing waits: still silent

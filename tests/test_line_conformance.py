"""line-v1's answers to the questions a table builder asks (configs/protocols/line-v1.md), pinned.

Requests are written here from the spec alone (the CRC is the spec's own ``binascii.crc_hqx(body,
0xFFFF)``), not with the project's codec. Firmware rules are checked through the simulator's
answer function at explicit session times, so a ramp of seconds needs no real time; framing rules
go over a real pty pair to the running simulator, split into chunks as a slow line would.
"""

from __future__ import annotations

import asyncio
import binascii
import time
from collections.abc import AsyncIterator

import pytest
import serial

from devices.clock import ScaledClock
from devices.errors import ProtocolError
from devices.line import LineTable, open_line_table
from devices.lineproto import FrameError, Request, Verb
from devices.urls import parse_table_url
from simulators.line_server import RunningLineSimulator, reply_to_line, start_line_simulator
from simulators.physics import TableModel, TableSpec
from simulators.ptypair import PtyPair


def frame(body: str) -> bytes:
    data = body.encode("ascii")
    return b"$" + data + b"*" + f"{binascii.crc_hqx(data, 0xFFFF):04X}".encode() + b"\r\n"


def error(sequence: str, code: int) -> bytes:
    return frame(f"{sequence},ER,{code}")


def ok(sequence: str) -> bytes:
    return frame(f"{sequence},OK")


def quiet_model() -> TableModel:
    return TableModel(TableSpec(noise_n=0.0, offset_n=0.0))


def state_fields(reply: bytes | None) -> list[bytes]:
    """``[sequence, "ST", measured dN, target dN, status hex, fault]`` of a state reply."""
    assert reply is not None and b",ST," in reply, reply
    return reply[1:].partition(b"*")[0].split(b",")


def status_of(reply: bytes | None) -> int:
    return int(state_fields(reply)[4], 16)


RUNNING, READY, RELEASED, FAULT = 0x01, 0x02, 0x04, 0x08

# ----- numbers and their ranges ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reply"),
    [
        ("0C,HB,65535", ok("0C")),
        ("0C,HB,65536", error("0C", 4)),  # the counter is 0..65535
        ("0C,HB,99999", error("0C", 4)),
        ("0C,HB,00017", ok("0C")),  # five digits with leading zeros: 17
        ("0C,HB,000017", error("0C", 4)),  # six digits: a bad value in an intact frame
        ("0C,TG,123456", error("0C", 4)),
        ("0C,HT,0001000", error("0C", 4)),
    ],
)
def test_numbers_out_of_their_range_or_too_long_are_bad_values(body: str, reply: bytes) -> None:
    model = quiet_model()
    assert reply_to_line(model, frame(body), 0.0) == reply


def test_a_heartbeat_counter_out_of_range_changes_nothing() -> None:
    model = quiet_model()
    reply_to_line(model, frame("01,HB,17"), 0.0)
    reply_to_line(model, frame("02,HB,65536"), 0.1)
    assert model.heartbeat_counter == 17


def test_the_host_cannot_send_a_counter_the_table_would_refuse() -> None:
    assert Request("0C", Verb.HEARTBEAT, 65535).encode() == frame("0C,HB,65535")
    with pytest.raises(FrameError, match="HB argument 65536 outside 0..65535"):
        Request("0C", Verb.HEARTBEAT, 65536).encode()


# ----- verbs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["0D,id", "0D,Id", "0D,", "0D", "0D,XX", "0D,IDX"], ids=repr)
def test_a_missing_empty_lower_case_or_unknown_verb_is_an_unknown_command(body: str) -> None:
    assert reply_to_line(quiet_model(), frame(body), 0.0) == error("0D", 3)


def test_a_lower_case_sequence_is_a_bad_frame() -> None:
    assert reply_to_line(quiet_model(), frame("0d,ID"), 0.0) == error("--", 2)


# ----- clear fault with nothing latched ----------------------------------------------------------


def test_clear_fault_with_nothing_latched_is_accepted_and_changes_nothing() -> None:
    model = quiet_model()
    before = status_of(reply_to_line(model, frame("01,RS"), 0.0))
    assert before & READY and before & RELEASED and not before & FAULT
    assert reply_to_line(model, frame("02,CF"), 0.1) == ok("02")
    assert status_of(reply_to_line(model, frame("03,RS"), 0.2)) == before


def test_clear_fault_while_running_does_not_stop_the_motor() -> None:
    model = quiet_model()
    for t, body in enumerate(("01,TG,1000", "02,GO", "03,CF", "04,HB,1")):
        assert reply_to_line(model, frame(body), t * 0.1) == ok(body[:2])
    assert status_of(reply_to_line(model, frame("05,RS"), 0.5)) & RUNNING


# ----- controlled stop: how long, and ready again ------------------------------------------------


def test_controlled_stop_ramps_releases_in_time_and_leaves_the_table_ready() -> None:
    model = quiet_model()
    for body in ("01,HT,10000", "02,TG,3000", "03,GO"):
        assert reply_to_line(model, frame(body), 0.0) == ok(body[:2])
    for t in (2.5, 5.0):
        assert reply_to_line(model, frame("04,HB,1"), t) == ok("04")
    force_dn = int(state_fields(reply_to_line(model, frame("05,RS"), 5.0))[2])
    assert force_dn > 2900  # holding about 300 N
    assert reply_to_line(model, frame("06,SC"), 5.0) == ok("06")

    mid = reply_to_line(model, frame("07,RS"), 7.0)
    assert status_of(mid) & RUNNING and not status_of(mid) & READY
    assert 1000 < int(state_fields(mid)[2]) < 2500  # ramping down, not dropped
    assert reply_to_line(model, frame("08,GO"), 7.0) == error("08", 5)  # not ready mid-ramp
    assert reply_to_line(model, frame("09,HB,2"), 7.0) == ok("09")

    bound = 5.0 + force_dn / 10 / 60 + 1.0  # F / 60 s + 1 s after the SC
    after = status_of(reply_to_line(model, frame("0A,RS"), bound))
    assert after & RELEASED and after & READY and not after & (RUNNING | FAULT)
    assert reply_to_line(model, frame("0B,GO"), bound) == ok("0B")  # no CF needed


def test_the_watchdog_still_applies_during_a_controlled_stop() -> None:
    model = quiet_model()
    for body in ("01,HT,1000", "02,TG,3000", "03,GO"):
        reply_to_line(model, frame(body), 0.0)
    for t in (0.5, 1.0, 1.5, 2.0, 2.5):
        reply_to_line(model, frame("04,HB,1"), t)
    reply_to_line(model, frame("05,SC"), 2.5)
    state = reply_to_line(model, frame("06,RS"), 4.0)  # 1.5 s without HB, mid-ramp
    assert status_of(state) & RELEASED and not status_of(state) & RUNNING
    assert state_fields(state)[5] == b"4"  # the watchdog's fault


# ----- over-long lines over a real line ----------------------------------------------------------


@pytest.fixture
async def line_sim(pty_pair: PtyPair) -> AsyncIterator[RunningLineSimulator]:
    sim = await start_line_simulator(
        quiet_model(), ScaledClock(1.0), pty_pair.device_port, host_port=pty_pair.host_port
    )
    async with sim:
        yield sim


def exchange(port: str, *chunks: bytes, pause_s: float = 0.05, wait_s: float = 1.0) -> bytes:
    """Write ``chunks`` with pauses between them; return the first reply line (or b"")."""
    with serial.Serial(port, 9600, timeout=0.05) as line:
        line.reset_input_buffer()
        for index, chunk in enumerate(chunks):
            if index:
                time.sleep(pause_s)
            line.write(chunk)
        reply = b""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not reply.endswith(b"\n"):
            reply += line.read(128)
        return reply


OVERLONG = frame("0E,TG," + "0" * 100)  # the only '$' is the first byte; 115 bytes in all


@pytest.mark.parametrize("cuts", [(), (60,), (100,), (40, 97, 110)], ids=repr)
async def test_a_frame_longer_than_96_bytes_is_a_bad_frame_however_it_arrives(
    line_sim: RunningLineSimulator, pty_pair: PtyPair, cuts: tuple[int, ...]
) -> None:
    bounds = (0, *cuts, len(OVERLONG))
    chunks = [OVERLONG[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    reply = await asyncio.to_thread(exchange, pty_pair.host_port, *chunks)
    assert reply == error("--", 2)
    assert line_sim.model.target_n == 0.0


async def test_a_new_frame_after_an_overlong_one_on_the_same_line_is_answered(
    line_sim: RunningLineSimulator, pty_pair: PtyPair
) -> None:
    reply = await asyncio.to_thread(
        exchange, pty_pair.host_port, OVERLONG[:-2], frame("0F,TG,1234")
    )
    assert reply == ok("0F") and line_sim.model.target_n == 123.4


async def test_a_long_line_of_noise_is_ignored_and_the_next_request_answered(
    line_sim: RunningLineSimulator, pty_pair: PtyPair
) -> None:
    silent = await asyncio.to_thread(exchange, pty_pair.host_port, b"~" * 150, b"\r\n", wait_s=0.3)
    assert silent == b""
    assert await asyncio.to_thread(exchange, pty_pair.host_port, frame("10,CF")) == ok("10")


async def test_the_host_reports_an_overlong_reply_as_a_protocol_error(pty_pair: PtyPair) -> None:
    table: LineTable = open_line_table(
        parse_table_url(f"line://{pty_pair.host_port}?timeout=1"), ScaledClock()
    )
    await table.connect()
    try:
        with serial.Serial(pty_pair.device_port, 9600, timeout=1) as device:
            reading = asyncio.ensure_future(table.read_state())
            await asyncio.to_thread(device.read_until, b"\n")
            await asyncio.to_thread(device.write, b"$01,ST," + b"9" * 120)
            with pytest.raises(ProtocolError, match="ran past 96 bytes"):
                await reading
    finally:
        await table.close()

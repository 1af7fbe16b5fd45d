"""line-v1 pinned byte for byte: checksum vectors, every request and reply, every error reply.

Three views of the same traffic: the codec (encode/decode), the simulated firmware's answers
(``reply_to_line``) and the driver talking to a scripted peer over a real pty pair (the pymeasure
``expected_protocol`` idea), so a change to any side shows as a changed frame.
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.clock import ScaledClock
from devices.configfiles import config_file
from devices.contract import StopKind
from devices.errors import DeviceRejected, ProtocolError
from devices.line import LineTable, open_line_table
from devices.lineproto import (
    AckReply,
    ErrorCode,
    ErrorReply,
    FrameError,
    IdentityReply,
    LimitReply,
    Request,
    StateReply,
    Status,
    Verb,
    checksum,
    decode_reply,
    decode_request,
    encode_frame,
    find_frame,
)
from devices.urls import parse_table_url
from simulators.line_server import reply_to_line
from simulators.physics import FAULT_MOTOR, TableModel, TableSpec
from simulators.ptypair import PtyPair

# ----- checksum --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "crc"),
    [
        (b"123456789", 0x29B1),  # the catalogued check value of CRC-16/CCITT-FALSE
        (b"", 0xFFFF),
        (b"A", 0xB915),
        (b"01,ID", 0x0B0C),
        (b"02,ST,2217,2225,21,0,2210,4210", 0x8625),
    ],
)
def test_checksum_is_crc16_ccitt_false(body: bytes, crc: int) -> None:
    assert checksum(body) == crc


# ----- requests --------------------------------------------------------------------------------

REQUESTS = [
    (Request("01", Verb.IDENTIFY), b"$01,ID*0B0C\r\n"),
    (Request("02", Verb.READ_STATE), b"$02,RS*2D8F\r\n"),
    (Request("03", Verb.SET_TARGET, 2225), b"$03,TG,2225*9AE1\r\n"),
    (Request("04", Verb.START), b"$04,GO*252D\r\n"),
    (Request("05", Verb.STOP_CONTROLLED), b"$05,SC*5DA2\r\n"),
    (Request("06", Verb.RELEASE), b"$06,RL*04A0\r\n"),
    (Request("07", Verb.CLEAR_FAULT), b"$07,CF*E31C\r\n"),
    (Request("08", Verb.HEARTBEAT, 17), b"$08,HB,17*902F\r\n"),
    (Request("09", Verb.HEARTBEAT_TIMEOUT, 1000), b"$09,HT,1000*0776\r\n"),
    (Request("0C", Verb.FORCE_LIMIT, 2002), b"$0C,FL,2002*DDE5\r\n"),
    (Request("0D", Verb.FORCE_LIMIT_QUERY), b"$0D,FQ*A796\r\n"),
]


@pytest.mark.parametrize(("request_", "frame"), REQUESTS, ids=[r.verb.value for r, _ in REQUESTS])
def test_every_request_encodes_and_decodes_to_its_exact_frame(
    request_: Request, frame: bytes
) -> None:
    assert request_.encode() == frame
    assert decode_request(frame) == request_


def test_request_argument_must_match_its_verb() -> None:
    with pytest.raises(FrameError):
        Request("01", Verb.SET_TARGET).encode()
    with pytest.raises(FrameError):
        Request("01", Verb.START, 1).encode()
    with pytest.raises(FrameError):
        Request("01", Verb.SET_TARGET, 100_000).encode()


# ----- replies ---------------------------------------------------------------------------------

REPLIES = [
    (
        IdentityReply("01", "SIM-TX1", "SIM-0001", "1.4.2", 900.0, "Traction Simulators"),
        b"$01,ID,SIM-TX1,SIM-0001,1.4.2,9000,Traction Simulators*5391\r\n",
    ),
    (
        StateReply(
            "02", 221.7, 222.5, Status.RUNNING | Status.STOP_SWITCH_CONNECTED, 0, 221.0, 4210
        ),
        b"$02,ST,2217,2225,21,0,2210,4210*8625\r\n",
    ),
    (
        StateReply(
            "0A",
            0.3,
            222.5,
            Status.RELEASED | Status.FAULT | Status.STOP_SWITCH_CONNECTED | Status.WATCHDOG_TRIPPED,
            4,
            0.0,
            4711,
        ),
        b"$0A,ST,3,2225,6C,4,0,4711*0188\r\n",
    ),
    (
        StateReply(
            "0E",
            0.0,
            222.5,
            Status.RELEASED
            | Status.FAULT
            | Status.STOP_SWITCH_CONNECTED
            | Status.OPERATOR_STOP_PRESSED,
            7,
            0.2,
            5120,
        ),
        b"$0E,ST,0,2225,AC,7,2,5120*D58B\r\n",
    ),
    (LimitReply("0D", 200.2), b"$0D,FL,2002*6C4E\r\n"),
    (AckReply("03"), b"$03,OK*BD2D\r\n"),
    (ErrorReply("--", ErrorCode.BAD_CHECKSUM), b"$--,ER,1*0A68\r\n"),
    (ErrorReply("--", ErrorCode.BAD_FRAME), b"$--,ER,2*3A0B\r\n"),
    (ErrorReply("0B", ErrorCode.UNKNOWN_COMMAND), b"$0B,ER,3*6D40\r\n"),
    (ErrorReply("0B", ErrorCode.BAD_VALUE), b"$0B,ER,4*1DA7\r\n"),
    (ErrorReply("0B", ErrorCode.NOT_READY), b"$0B,ER,5*0D86\r\n"),
    (ErrorReply("0B", ErrorCode.FAULT_PRESENT), b"$0B,ER,6*3DE5\r\n"),
]


@pytest.mark.parametrize(("reply", "frame"), REPLIES, ids=[f.decode()[:9] for _, f in REPLIES])
def test_every_reply_encodes_and_decodes_to_its_exact_frame(
    reply: IdentityReply | StateReply | LimitReply | AckReply | ErrorReply, frame: bytes
) -> None:
    assert reply.encode() == frame
    assert decode_reply(frame) == reply


def test_the_specification_examples_match_the_codec() -> None:
    """Every example frame in configs/protocols/line-v1.md has a correct checksum and decodes."""
    text = config_file("protocols", "line-v1.md").read_text(encoding="utf-8")
    examples = re.findall(r"^(\$[^\n]*?)\\r\\n", text, flags=re.MULTILINE)
    pinned = {frame for _, frame in REQUESTS} | {frame for _, frame in REPLIES}
    assert {example.encode() + b"\r\n" for example in examples} == pinned


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"$02,ST,2217,2225,21,0*3FD2\r\n", ErrorCode.BAD_CHECKSUM),
        (b"$02,ST,2217,2225,21,0*3FD1\n", ErrorCode.BAD_FRAME),  # LF without CR
        (b"$02,ST,2217,22", ErrorCode.BAD_FRAME),  # truncated
        (b"$02,ST,2217,2225,21,0\r\n", ErrorCode.BAD_FRAME),  # no checksum
        (b"$02,ST,2217,2225,21,0*3FZ1\r\n", ErrorCode.BAD_FRAME),
        (b"\x15#\xfe\x00noise\r\n", ErrorCode.BAD_FRAME),
        (encode_frame(["02", "QQ"]), ErrorCode.BAD_FRAME),  # unknown reply kind
        (encode_frame(["02", "ST", "1", "2", "21"]), ErrorCode.BAD_FRAME),  # a value short
        (encode_frame(["02", "ST", "1", "2", "2G", "0", "1", "7"]), ErrorCode.BAD_FRAME),
        (encode_frame(["02", "ST", "-1", "2", "21", "0", "1", "7"]), ErrorCode.BAD_VALUE),
        (encode_frame(["02", "ST", "1", "2", "21", "256", "1", "7"]), ErrorCode.BAD_VALUE),
        (encode_frame(["02", "ST", "1", "2", "21", "0", "1", "65536"]), ErrorCode.BAD_VALUE),
        (encode_frame(["02", "FL"]), ErrorCode.BAD_FRAME),  # the limit is missing
        (encode_frame(["2", "OK"]), ErrorCode.BAD_FRAME),  # sequence not two hex digits
        (b"$" + b"0" * 100 + b"\r\n", ErrorCode.BAD_FRAME),  # too long
    ],
)
def test_malformed_replies_raise_frame_errors_with_their_code(
    frame: bytes, code: ErrorCode
) -> None:
    with pytest.raises(FrameError) as caught:
        decode_reply(frame)
    assert caught.value.code == code


def test_lower_case_checksum_digits_are_accepted() -> None:
    assert decode_reply(b"$03,OK*bd2d\r\n") == AckReply("03")


def test_a_frame_starts_at_the_last_dollar_of_a_line() -> None:
    assert find_frame(b"\x00junk$0$03,OK*BD2D\r\n") == b"$03,OK*BD2D\r\n"
    with pytest.raises(FrameError):
        find_frame(b"no frame here\r\n")


@settings(deadline=None)  # a loaded machine may take longer than Hypothesis' 200 ms per example
@given(
    sequence=st.integers(0, 255),
    measured=st.integers(0, 99_999),
    target=st.integers(0, 99_999),
    status=st.integers(0, 0xFF),
    fault=st.integers(0, 255),
    redundant=st.integers(0, 99_999),
    counter=st.integers(0, 0xFFFF),
)
def test_state_replies_round_trip(
    sequence: int, measured: int, target: int, status: int, fault: int, redundant: int, counter: int
) -> None:
    reply = StateReply(
        f"{sequence:02X}",
        measured / 10,
        target / 10,
        Status(status),
        fault,
        redundant / 10,
        counter,
    )
    assert decode_reply(reply.encode()) == reply


# ----- the simulated firmware's answers ----------------------------------------------------------


def quiet_model() -> TableModel:
    """A table whose load cell reads exactly, so its replies are fixed bytes."""
    return TableModel(
        TableSpec(noise_n=0.0, offset_n=0.0, redundant_noise_n=0.0, redundant_offset_n=0.0)
    )


@pytest.mark.parametrize(
    ("request_", "reply"),
    [
        (b"$01,ID*0B0C\r\n", b"$01,ID,SIM-TX1,SIM-0001,1.4.2,9000,Traction Simulators*5391\r\n"),
        (b"$02,RS*2D8F\r\n", b"$02,ST,0,0,26,0,0,0*5639\r\n"),
        (b"$03,TG,2225*9AE1\r\n", b"$03,OK*BD2D\r\n"),
        (b"$04,GO*252D\r\n", b"$04,OK*EC00\r\n"),
        (b"$05,SC*5DA2\r\n", b"$05,OK*9AB4\r\n"),
        (b"$06,RL*04A0\r\n", b"$06,OK*0168\r\n"),
        (b"$07,CF*E31C\r\n", b"$07,OK*77DC\r\n"),
        (b"$08,HB,17*902F\r\n", b"$08,OK*A332\r\n"),
        (b"$09,HT,1000*0776\r\n", b"$09,OK*D586\r\n"),
        (b"$0C,FL,2002*DDE5\r\n", b"$0C,OK*FF58\r\n"),
        (b"$0D,FQ*A796\r\n", b"$0D,FL,9000*5213\r\n"),
    ],
)
def test_simulator_answers_every_command(request_: bytes, reply: bytes) -> None:
    assert reply_to_line(quiet_model(), request_, now=0.0) == reply


def test_simulator_commands_reach_the_firmware() -> None:
    model = quiet_model()
    reply_to_line(model, b"$03,TG,2225*9AE1\r\n", 0.0)
    reply_to_line(model, b"$09,HT,1000*0776\r\n", 0.0)
    reply_to_line(model, b"$04,GO*252D\r\n", 0.0)
    reply_to_line(model, b"$08,HB,17*902F\r\n", 0.5)
    assert model.target_n == 222.5 and model.running and model.heartbeat_counter == 17
    reply_to_line(model, b"$06,RL*04A0\r\n", 0.6)
    assert model.released and not model.running


def test_simulator_error_replies() -> None:
    model = quiet_model()
    answers = {
        "bad checksum": reply_to_line(model, b"$01,ID*0B0D\r\n", 0.0),
        "no checksum": reply_to_line(model, b"$01,ID\r\n", 0.0),
        "unknown command": reply_to_line(model, encode_frame(["0B", "XX"]), 0.0),
        "missing value": reply_to_line(model, encode_frame(["0B", "TG"]), 0.0),
        "above rating": reply_to_line(model, encode_frame(["0B", "TG", "9001"]), 0.0),
        "extra value": reply_to_line(model, encode_frame(["0B", "GO", "1"]), 0.0),
        "negative": reply_to_line(model, encode_frame(["0B", "TG", "-5"]), 0.0),
        "timeout out of range": reply_to_line(model, encode_frame(["0B", "HT", "10"]), 0.0),
        "noise": reply_to_line(model, b"\x15#\xfe noise\r\n", 0.0),
    }
    assert answers == {
        "bad checksum": b"$--,ER,1*0A68\r\n",
        "no checksum": b"$--,ER,2*3A0B\r\n",
        "unknown command": b"$0B,ER,3*6D40\r\n",
        "missing value": b"$0B,ER,4*1DA7\r\n",
        "above rating": b"$0B,ER,4*1DA7\r\n",
        "extra value": b"$0B,ER,4*1DA7\r\n",
        "negative": b"$0B,ER,4*1DA7\r\n",
        "timeout out of range": b"$0B,ER,4*1DA7\r\n",
        "noise": None,
    }
    assert model.target_n == 0.0 and model.heartbeat_timeout_s == 1.0  # nothing changed

    model.press_stop_switch(0.0)
    assert reply_to_line(model, encode_frame(["0B", "GO"]), 0.1) == b"$0B,ER,5*0D86\r\n"
    model.faults.fault_code = FAULT_MOTOR
    assert reply_to_line(model, encode_frame(["0B", "CF"]), 0.2) == b"$0B,ER,6*3DE5\r\n"
    assert not model.running


# ----- the driver's traffic against a scripted peer ---------------------------------------------


class ScriptedPeer:
    """The device side of a pty pair answering a fixed script; records what it received."""

    def __init__(self, port: str, script: Sequence[tuple[bytes, bytes]]) -> None:
        self._serial = serial.Serial(port, 9600, timeout=0.05)
        self._script = list(script)
        self.received: list[bytes] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending = b""
        for _, reply in self._script:
            while b"\n" not in pending and not self._done.is_set():
                pending += self._serial.read(max(1, self._serial.in_waiting))
            if self._done.is_set():
                return
            line, _, pending = pending.partition(b"\n")
            self.received.append(line + b"\n")
            self._serial.write(reply)

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)
        self._serial.close()


@asynccontextmanager
async def expected_protocol(
    pair: PtyPair, script: Sequence[tuple[bytes, bytes]]
) -> AsyncIterator[LineTable]:
    """A connected driver whose traffic must be exactly ``script`` (request, reply) by (request, reply)."""
    peer = ScriptedPeer(pair.device_port, script)
    table = open_line_table(parse_table_url(f"line://{pair.host_port}?timeout=2"), ScaledClock())
    try:
        await table.connect()
        yield table
    finally:
        await table.close()
        peer.close()
    assert peer.received == [request for request, _ in script]


async def test_driver_sends_exactly_these_frames_for_every_command(pty_pair: PtyPair) -> None:
    script = [
        (b"$01,ID*0B0C\r\n", b"$01,ID,SIM-TX1,SIM-0001,1.4.2,9000,Traction Simulators*5391\r\n"),
        (b"$02,RS*2D8F\r\n", b"$02,ST,2217,2225,21,0,2210,4210*8625\r\n"),
        (b"$03,TG,2225*9AE1\r\n", b"$03,OK*BD2D\r\n"),
        (b"$04,GO*252D\r\n", b"$04,OK*EC00\r\n"),
        (b"$05,SC*5DA2\r\n", b"$05,OK*9AB4\r\n"),
        (b"$06,RL*04A0\r\n", b"$06,OK*0168\r\n"),
        (b"$07,CF*E31C\r\n", b"$07,OK*77DC\r\n"),
        (b"$08,HB,1*F479\r\n", b"$08,OK*A332\r\n"),
        (b"$09,HT,500*51B1\r\n", b"$09,OK*D586\r\n"),
        (b"$0A,FL,2002*1B82\r\n", b"$0A,OK*1230\r\n"),
        (b"$0B,FQ*800F\r\n", b"$0B,FL,2002*36C6\r\n"),
    ]
    async with expected_protocol(pty_pair, script) as table:
        info = await table.identify()
        state = await table.read_state()
        await table.set_target(222.5)
        await table.start()
        await table.stop(StopKind.CONTROLLED)
        await table.stop(StopKind.RELEASE)
        await table.clear_fault()
        await table.heartbeat()
        await table.set_heartbeat_timeout(0.5)
        await table.set_force_limit(200.2)
        limit = await table.read_force_limit()
    assert limit == 200.2
    assert (info.model, info.serial_number, info.rated_max_force_n) == (
        "SIM-TX1",
        "SIM-0001",
        900.0,
    )
    assert state.measured_force_n == 221.7 and state.target_force_n == 222.5
    assert state.running and state.stop_switch_connected and not state.released
    assert not (state.ready or state.faulted or state.watchdog_tripped or state.stop_switch_pressed)
    assert state.redundant_force_n == 221.0 and state.sample_counter == 4210
    assert state.fault == "none" and not state.operator_stop_pressed


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (b"$--,ER,1*0A68\r\n", ErrorCode.BAD_CHECKSUM),
        (b"$--,ER,2*3A0B\r\n", ErrorCode.BAD_FRAME),
        (b"$01,ER,3*E63C\r\n", ErrorCode.UNKNOWN_COMMAND),
        (b"$01,ER,4*96DB\r\n", ErrorCode.BAD_VALUE),
        (b"$01,ER,5*86FA\r\n", ErrorCode.NOT_READY),
        (b"$01,ER,6*B699\r\n", ErrorCode.FAULT_PRESENT),
    ],
)
async def test_error_replies_become_device_rejected_with_their_code(
    pty_pair: PtyPair, reply: bytes, code: ErrorCode
) -> None:
    assert decode_reply(reply) == ErrorReply(decode_reply(reply).sequence, code)
    async with expected_protocol(pty_pair, [(b"$01,GO*9968\r\n", reply)]) as table:
        with pytest.raises(DeviceRejected) as caught:
            await table.start()
    assert caught.value.code == code and caught.value.table == pty_pair.host_port


async def test_a_late_reply_to_an_earlier_request_is_skipped(pty_pair: PtyPair) -> None:
    stale_then_real = b"$7F,OK*24C9\r\n" + b"$01,OK*5045\r\n"
    async with expected_protocol(pty_pair, [(b"$01,GO*9968\r\n", stale_then_real)]) as table:
        await table.start()


async def test_a_reply_of_the_wrong_kind_is_a_protocol_error(pty_pair: PtyPair) -> None:
    async with expected_protocol(pty_pair, [(b"$01,RS*B653\r\n", b"$01,OK*5045\r\n")]) as table:
        with pytest.raises(ProtocolError, match="expected StateReply"):
            await table.read_state()


async def test_values_the_wire_cannot_carry_are_refused_before_sending(pty_pair: PtyPair) -> None:
    async with expected_protocol(pty_pair, []) as table:
        for bad in (-1.0, float("nan"), 10_000.0):
            with pytest.raises(ProtocolError, match="cannot send target"):
                await table.set_target(bad)

"""Whatever a misbehaving table or a noisy line sends, the codec answers with a FrameError or a
valid decode: never another exception, never a hang. Hypothesis generates the bytes."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from devices.lineproto import FrameError, checksum, decode_reply, decode_request, find_frame

FIELD = st.text(alphabet="0123456789ABCDEFabcdef.-+STOKERIDGHBLCFnaif", min_size=1, max_size=40)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_are_a_frame_error_or_a_reply(data: bytes) -> None:
    line = data + b"\r\n"
    try:
        reply = decode_reply(find_frame(line))
    except FrameError:
        return
    for value in vars(reply).values():
        if isinstance(value, float):
            assert math.isfinite(value)


@settings(max_examples=400, deadline=None)
@given(st.lists(FIELD, min_size=1, max_size=8))
def test_well_framed_nonsense_with_a_good_checksum_is_still_refused_cleanly(
    fields: list[str],
) -> None:
    """The checksum is right, so only the codec's own field checks stand between the table's
    words and the supervisor."""
    body = ",".join(fields).encode("ascii")
    frame = b"$" + body + b"*" + f"{checksum(body):04X}".encode() + b"\r\n"
    for decode in (decode_reply, decode_request):
        try:
            decoded = decode(frame)
        except FrameError:
            continue
        for value in vars(decoded).values():
            if isinstance(value, float):
                assert math.isfinite(value)


VALUE = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(
        ["nan", "inf", "-0", "1e9", "0x10", "", "ZZ", "65536", "-1", "05", "00", "1F", "FF"]
    ),
)


@settings(max_examples=500, deadline=None)
@given(
    st.integers(0, 255).map(lambda n: f"{n:02X}"),
    st.sampled_from(["ST", "OK", "ER", "ID"]),
    st.lists(VALUE, max_size=7),
)
def test_replies_of_a_known_kind_with_odd_values_decode_or_are_refused(
    sequence: str, kind: str, values: list[str]
) -> None:
    body = ",".join([sequence, kind, *values]).encode("ascii")
    frame = b"$" + body + b"*" + f"{checksum(body):04X}".encode() + b"\r\n"
    try:
        reply = decode_reply(frame)
    except FrameError:
        return
    for value in vars(reply).values():
        if isinstance(value, float):
            assert math.isfinite(value) and value >= 0

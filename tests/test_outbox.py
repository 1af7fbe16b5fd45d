"""The treatment process's outbox (session.treatment_process.Outbox): samples reach the parent in
batches, everything else at once and in order, over a real pipe read as the parent reads it."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

import session.treatment_process as tp
from devices.records import Event, EventKind, Phase, Sample
from session.journal import decode, encode
from session.numbered import NumberedEvent

RUN = "run-outbox"


def sample(seq: int) -> bytes:
    return encode(Sample(RUN, seq, seq * 0.02, 100.0, 99.5, Phase.HOLD, 0))


def event(seq: int, reason: str = "phase hold") -> bytes:
    return encode(NumberedEvent(seq, Event(RUN, seq * 0.02, EventKind.PHASE, reason, {})))


async def pipe_outbox() -> tuple[tp.Outbox, int]:
    """An outbox writing into a pipe, and the pipe's (non-blocking) read end."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(write_fd, "wb", buffering=0)
    )
    return tp.Outbox(asyncio.StreamWriter(transport, protocol, None, loop)), read_fd


def read_now(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 20)
    except BlockingIOError:
        return b""


async def read_within(fd: int, seconds: float = 5.0) -> bytes:
    deadline = time.monotonic() + seconds
    while not (data := read_now(fd)):
        assert time.monotonic() < deadline, "nothing reached the parent"
        await asyncio.sleep(0.01)
    return data


async def test_samples_are_held_and_sent_together_and_an_event_goes_at_once_after_them() -> None:
    outbox, fd = await pipe_outbox()
    for seq in (1, 2, 3):
        outbox.send(sample(seq), droppable=True)
    assert read_now(fd) == b""  # held: not one write per tick
    outbox.send(event(0))  # an event never waits, and never overtakes the samples before it
    assert read_now(fd) == sample(1) + sample(2) + sample(3) + event(0)

    outbox.send(sample(4), droppable=True)
    outbox.send(sample(5), droppable=True)
    assert await read_within(fd) == sample(4) + sample(5)  # the batch goes on its own, soon
    assert [decode(line, RUN) for line in (sample(4) + sample(5)).splitlines()] == [
        Sample(RUN, 4, 0.08, 100.0, 99.5, Phase.HOLD, 0),
        Sample(RUN, 5, 0.1, 100.0, 99.5, Phase.HOLD, 0),
    ]

    outbox.send(sample(6), droppable=True)
    await outbox.close()  # what is held at the end is handed over, not lost
    assert read_now(fd) == sample(6)
    assert outbox.dropped == 0
    os.close(fd)


async def test_a_parent_far_behind_gets_no_samples_but_every_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tp, "OUTBOX_LIMIT", 0)  # any backlog at all counts as far behind
    outbox, fd = await pipe_outbox()
    big = event(0, "x" * (256 * 1024))  # more than a pipe holds: the rest waits in the transport
    outbox.send(big)
    for seq in (1, 2):
        outbox.send(sample(seq), droppable=True)
    outbox.send(event(1))
    assert outbox.dropped == 2
    received = b""
    while len(received) < len(big) + len(event(1)):
        received += await read_within(fd)
    assert received == big + event(1)  # events are never dropped, and keep their order
    await outbox.close()
    os.close(fd)

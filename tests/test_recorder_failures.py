"""The recorder when its own disk fails, on SQLite and PostgreSQL: a journal that cannot be written
asks the control loop to stop (once, with the reason), keeps every record in memory meanwhile,
and once the disk takes them again stores and seals all of them; a subscriber error on the
stop request never breaks delivery."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest
from conftest_db import make_started
from structlog.testing import capture_logs

from devices.contract import StopKind
from devices.records import Finished, Outcome, Phase, Sample
from session.journal import JournalWriter, journals
from session.recorder import Recorder
from session.seal import verify
from session.store import SessionContext, Store

FULL = OSError(errno.ENOSPC, "No space left on device")


class DiskFull:
    """The journal's disk refuses ``failures`` writes, then takes them again."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, failures: int) -> None:
        self.left = failures
        self.refused = 0
        real = JournalWriter.write

        def write(journal: JournalWriter, data: bytes) -> None:
            if self.left > 0:
                self.left -= 1
                self.refused += 1
                raise FULL
            real(journal, data)

        monkeypatch.setattr(JournalWriter, "write", write)


async def record_through(
    recorder: Recorder, run: str, started: object, until_refused: DiskFull | None = None
) -> None:
    recorder.deliver(started)  # type: ignore[arg-type]
    for i in range(200):
        recorder.deliver(Sample(run, i, i * 0.02, 300.0, 299.0, Phase.HOLD, 1))
        if i % 20 == 0:
            await asyncio.sleep(0.02)
    if until_refused is not None:
        for _ in range(600):
            if until_refused.refused:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the journal was never written while the disk was full")


async def test_a_journal_that_cannot_be_written_stops_the_session_and_loses_nothing(
    store: Store, context: SessionContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stops: list[tuple[StopKind, str]] = []
    disk = DiskFull(monkeypatch, failures=3)
    started = make_started()
    run = started.run_id
    async with Recorder(
        store, context, lambda kind, why: stops.append((kind, why)), journal_dir=tmp_path / "j"
    ) as recorder:
        await record_through(recorder, run, started, disk)
        recorder.deliver(Finished(run, 4.0, started.wall, Outcome.STOPPED, "disk full", 200))
        digest = await asyncio.wait_for(recorder.wait_finished(), 60)
    assert stops == [
        (
            StopKind.CONTROLLED,
            "the session's journal cannot be written: [Errno 28] No space left on device; "
            "stopping so that nothing is lost",
        )
    ]
    assert disk.refused == 3 and recorder.stats().journal_failed
    assert [s.seq for s in store.iter_samples(run)] == list(range(200))
    row = store.get_session(run)
    assert row.outcome == "stopped" and row.seal_digest == digest and verify(store, run).ok
    assert journals(tmp_path / "j") == []


async def test_a_failing_stop_request_never_breaks_delivery(
    store: Store, context: SessionContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_stop(kind: StopKind, why: str) -> None:
        raise RuntimeError("the loop is gone")

    disk = DiskFull(monkeypatch, failures=2)
    started = make_started()
    run = started.run_id
    async with Recorder(store, context, broken_stop, journal_dir=tmp_path / "j") as recorder:
        await record_through(recorder, run, started, disk)
        recorder.deliver(Finished(run, 4.0, started.wall, Outcome.STOPPED, "disk full", 200))
        await asyncio.wait_for(recorder.wait_finished(), 60)
    assert store.sample_count(run) == 200 and verify(store, run).ok


async def test_closing_while_the_journal_cannot_be_written_waits_until_it_can(
    store: Store, context: SessionContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop is gone (no Finished) and the recorder is closed while its disk refuses the
    journal: close() keeps trying until the disk takes the records, so every one of them is on
    disk for recovery and in the store, none left behind in memory."""
    disk = DiskFull(monkeypatch, failures=3)
    started = make_started()
    run = started.run_id
    recorder = Recorder(store, context, lambda *_: None, journal_dir=tmp_path / "j")
    recorder.start()
    recorder.deliver(started)
    for i in range(50):
        recorder.deliver(Sample(run, i, i * 0.02, 300.0, 299.0, Phase.HOLD, 1))
    await asyncio.wait_for(recorder.close(), 60)
    assert disk.refused == 3 and recorder.stats().journal_failed
    assert [s.seq for s in store.iter_samples(run)] == list(range(50))
    assert len(journals(tmp_path / "j")) == 1  # kept for the next start to recover


@pytest.mark.parametrize(("published", "told"), [(11, True), (10, False)], ids=["short", "whole"])
async def test_a_loop_that_published_more_samples_than_arrived_is_told_to_the_operator(
    store: Store, context: SessionContext, tmp_path: Path, published: int, told: bool
) -> None:
    """The record keeps the samples it holds (its count is what it stored, never the loop's
    claim), and the operator log says when the two differ, with both counts: a sample lost
    between the loop and the journal must be seen, not papered over. All 10 arrived: nothing
    is said."""
    started = make_started()
    run = started.run_id
    with capture_logs() as logs:
        async with Recorder(
            store, context, lambda *_: None, journal_dir=tmp_path / "j"
        ) as recorder:
            recorder.deliver(started)
            for i in range(10):
                recorder.deliver(Sample(run, i, i * 0.02, 300.0, 299.0, Phase.HOLD, 1))
            recorder.deliver(Finished(run, 1.0, started.wall, Outcome.COMPLETED, "done", published))
            await asyncio.wait_for(recorder.wait_finished(), 60)
    assert store.get_session(run).sample_count == 10 and verify(store, run).ok
    differ = [e for e in logs if "sample count" in str(e["event"])]
    expected = {
        "event": "stored sample count differs from the loop's",
        "log_level": "warning",
        "stored": 10,
        "published": published,
    }
    assert differ == ([expected] if told else [])

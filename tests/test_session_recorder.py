"""The recorder on SQLite and PostgreSQL: every record kept, the loop never held up, crashes and
stalls survived, finished sessions sealed."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest_db import make_started

from devices.clock import ScaledClock
from devices.contract import StopKind
from devices.records import Event, EventKind, Finished, Outcome, Phase, Sample
from devices.stream import Stream
from session.recorder import Recorder, recover_interrupted
from session.seal import verify
from session.store import SessionContext, Store

CHILD = Path(__file__).with_name("session_recording_child.py")


class StopRequests:
    """Stands in for the control loop's ``request_stop``: remembers each request."""

    def __init__(self) -> None:
        self.calls: list[tuple[StopKind, str, int]] = []
        self.recorder: Recorder | None = None

    def __call__(self, kind: StopKind, reason: str) -> None:
        buffered = self.recorder.stats().buffered if self.recorder else -1
        self.calls.append((kind, reason, buffered))


class WriteLock:
    """Another connection holding the write lock: SQLite ``BEGIN IMMEDIATE``, or PostgreSQL
    ``LOCK TABLE samples`` in access-exclusive mode."""

    def __init__(self, url: str) -> None:
        self.url = sa.make_url(url)
        self._sqlite: sqlite3.Connection | None = None
        self._engine: sa.Engine | None = None
        self._conn: sa.Connection | None = None

    def acquire(self) -> None:
        if self.url.get_backend_name() == "sqlite":
            assert self.url.database
            self._sqlite = sqlite3.connect(
                self.url.database, isolation_level=None, timeout=30, check_same_thread=False
            )
            self._sqlite.execute("BEGIN IMMEDIATE")
        else:
            self._engine = sa.create_engine(self.url)
            self._conn = self._engine.connect()
            self._conn.exec_driver_sql("LOCK TABLE samples IN ACCESS EXCLUSIVE MODE")

    def release(self) -> None:
        if self._sqlite is not None:
            self._sqlite.execute("ROLLBACK")
            self._sqlite.close()
        if self._conn is not None and self._engine is not None:
            self._conn.rollback()
            self._conn.close()
            self._engine.dispose()


def seqs(store: Store, run: str) -> list[int]:
    return [s.seq for s in store.iter_samples(run)]


async def test_recorder_keeps_every_record_and_seals_on_finish(
    store: Store, context: SessionContext
) -> None:
    stops = StopRequests()
    clock = ScaledClock(50.0)
    stream = Stream()
    started = make_started()
    run = started.run_id
    async with Recorder(store, context, stops) as recorder:
        stream.subscribe(recorder)
        stream.publish(started)
        for i in range(600):
            await clock.sleep_until(i * 0.02)
            stream.publish(Sample(run, i, clock.now(), 300.0, 299.0, Phase.HOLD, i // 100))
            if i % 100 == 0:
                stream.publish(
                    Event(run, clock.now(), EventKind.PHASE, "hold", {"cycle": i // 100})
                )
        stream.publish(
            Finished(run, clock.now(), clock.wall(clock.now()), Outcome.COMPLETED, "done", 600)
        )
        digest = await asyncio.wait_for(recorder.wait_finished(), 30)
    row = store.get_session(run)
    assert (row.outcome, row.sample_count, row.event_count) == ("completed", 600, 6)
    assert row.seal_digest == digest and verify(store, run).ok
    assert seqs(store, run) == list(range(600))
    assert [e.data["cycle"] for e in store.iter_events(run)] == list(range(6))
    assert stops.calls == []


@pytest.mark.slow
async def test_database_stall_keeps_ticks_on_time_and_loses_nothing(
    db_url: str, store: Store, context: SessionContext
) -> None:
    stops = StopRequests()
    clock = ScaledClock(1.0)
    stream = Stream()
    started = make_started(t=clock.now())
    run = started.run_id
    lock = WriteLock(db_url)
    period, ticks = 0.02, 300  # 6 s at 50 Hz; the database is locked from 1 s to 4.5 s
    lateness: list[float] = []

    async def stall() -> None:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(lock.acquire)
        await asyncio.sleep(3.5)
        await asyncio.to_thread(lock.release)

    async with Recorder(store, context, stops) as recorder:
        stream.subscribe(recorder)
        stream.publish(started)
        staller = asyncio.create_task(stall())
        begin = clock.now()
        for i in range(ticks):
            deadline = begin + i * period
            await clock.sleep_until(deadline)
            lateness.append(clock.now() - deadline)
            stream.publish(Sample(run, i, clock.now(), 250.0, 249.0, Phase.HOLD))
        await staller
        stream.publish(
            Finished(run, clock.now(), clock.wall(clock.now()), Outcome.COMPLETED, "ok", ticks)
        )
        await asyncio.wait_for(recorder.wait_finished(), 60)
        stats = recorder.stats()

    assert max(lateness) < 1.0, f"a tick was held up {max(lateness):.3f} s"
    assert seqs(store, run) == list(range(ticks))
    warnings = [e.reason for e in store.iter_events(run) if e.kind == EventKind.WARNING]
    assert any("has not answered" in w for w in warnings), warnings
    assert any("database back after" in w for w in warnings), warnings
    assert stats.stalls == 1 and stops.calls == []
    assert verify(store, run).ok


async def test_buffer_about_to_overflow_stops_the_session_and_keeps_everything(
    db_url: str, store: Store, context: SessionContext
) -> None:
    stops = StopRequests()
    stream = Stream()
    started = make_started()
    run = started.run_id
    lock = WriteLock(db_url)
    recorder = Recorder(store, context, stops, buffer_limit=40, stop_margin=10)
    stops.recorder = recorder
    stream.subscribe(recorder)
    recorder.start()
    stream.publish(started)
    await asyncio.to_thread(lock.acquire)
    try:
        for i in range(100):  # far more than the buffer holds while the database is locked
            stream.publish(Sample(run, i, i * 0.02, 100.0, 99.0, Phase.RAMP_DOWN))
            await asyncio.sleep(0)
    finally:
        await asyncio.to_thread(lock.release)
    stream.publish(Finished(run, 2.0, started.wall, Outcome.STOPPED, "recording buffer", 100))
    await asyncio.wait_for(recorder.wait_finished(), 60)
    await recorder.close()

    assert len(stops.calls) == 1
    kind, reason, buffered_then = stops.calls[0]
    assert kind == StopKind.CONTROLLED and "no sample is lost" in reason
    assert buffered_then <= 40
    assert seqs(store, run) == list(range(100))
    reasons = [e.reason for e in store.iter_events(run)]
    assert any("recording buffer holds" in r for r in reasons)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["loop", "records"])
def test_sigkill_mid_session_leaves_an_interrupted_session_with_every_flushed_sample(
    mode: str, db_url: str, store: Store, context: SessionContext
) -> None:
    """``loop``: the real control loop on a Modbus TCP simulated table; ``records``: real records
    at a fixed 100 Hz. Either way the recording process is SIGKILLed after 2.5 s of samples."""
    flush_interval, slack = 0.25, 0.75  # slack: a loaded machine may take a while to commit
    command = [sys.executable, str(CHILD), mode, db_url, str(context.patient_id)]
    command += [str(context.treating_clinician_id), context.workstation]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    published: dict[int, float] = {}  # seq -> monotonic moment of publication
    runs: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            parts = line.split()
            if parts[0] == "RUN":
                runs.append(parts[1])
            elif parts[0] == "P":
                published[int(parts[1])] = at = float(parts[2])
                if at - min(published.values()) >= 2.5:  # 2.5 s of samples
                    ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60), "the recording child never got going"
        killed_at = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(30)
    reader.join(10)
    assert child.stdout is not None
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    [run] = runs
    assert store.get_session(run).outcome is None  # the dead process never finished it

    recovered = recover_interrupted(store, context.workstation)

    assert [r.id for r in recovered] == [run]
    row = store.get_session(run)
    assert row.outcome == Outcome.INTERRUPTED.value and row.sealed_at is not None
    stored = seqs(store, run)
    assert stored == list(range(stored[0], stored[0] + len(stored))), "a gap in the samples"
    old_enough = [s for s, at in published.items() if at < killed_at - flush_interval - slack]
    assert len(old_enough) > 50
    missing = sorted(set(old_enough) - set(stored))
    assert not missing, (
        f"{len(missing)} samples older than the flush interval were lost: {missing[:10]}"
    )
    last = [s for s in store.iter_samples(run)][-1]
    assert row.sample_count == len(stored) and row.last_sample_t == last.t
    assert verify(store, run).ok


async def test_failing_writes_are_retried_until_the_database_is_back(
    engine: sa.Engine, store: Store, context: SessionContext
) -> None:
    """Writes that fail outright (here: the samples table gone for a while) keep the records in
    memory, record a warning, and are retried until they succeed."""
    stops = StopRequests()
    stream = Stream()
    started = make_started()
    run = started.run_id
    async with Recorder(store, context, stops) as recorder:
        stream.subscribe(recorder)
        stream.publish(started)
        for i in range(20):
            stream.publish(Sample(run, i, i * 0.02, 100.0, 99.0, Phase.HOLD))
        await asyncio.sleep(0.6)
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE samples RENAME TO samples_away")
        for i in range(20, 60):
            stream.publish(Sample(run, i, i * 0.02, 100.0, 99.0, Phase.HOLD))
            await asyncio.sleep(0.02)
        for _ in range(600):  # the next flush fails within a fraction of a second
            if recorder.stats().stalls:
                break
            await asyncio.sleep(0.05)
        assert recorder.stats().buffered >= 40
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE samples_away RENAME TO samples")
        stream.publish(Finished(run, 1.2, started.wall, Outcome.COMPLETED, "ok", 60))
        await asyncio.wait_for(recorder.wait_finished(), 60)
    assert seqs(store, run) == list(range(60))
    reasons = [e.reason for e in store.iter_events(run) if e.kind == EventKind.WARNING]
    assert any(r.startswith("database write failed") for r in reasons), reasons
    assert any(r.startswith("database back after") for r in reasons), reasons
    assert stops.calls == [] and verify(store, run).ok

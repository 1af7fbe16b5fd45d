"""How fast samples reach a SQLite file through the session store and the recorder.

Baseline: plain ``sqlite3`` ``executemany`` of the same rows into an equivalent ``samples`` table
(same columns, primary key, foreign key to a sessions row, and the store's pragmas: WAL,
``synchronous=NORMAL``, foreign keys on), one transaction per batch, in the same process.

1. ``Store.add_batch`` against the baseline at two batch sizes: 12 rows (what the recorder writes
   every 0.25 s at 50 Hz) and 5000 (its largest batch, when it catches up after a stall).
   ``add_batch`` also ignores duplicate rows and moves the session's ``last_sample_t``.
2. The recorder end to end: every sample of a long session delivered at once, then the time until
   all are written (its catch-up rate), and the time to finish and seal the session.

Run from the repository root: ``.venv/bin/python bench/bench_recorder.py`` (about 20 s).
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from benchutil import machine, write_section

from devices.contract import StopKind
from devices.records import Finished, Outcome, Phase, Sample, Started
from session.db import make_engine, upgrade
from session.models import Discipline
from session.recorder import Recorder
from session.store import SessionContext, Store

BATCHES = ((12, 6_000), (5_000, 150_000))  # (rows per batch, rows in all)
RECORDER_SAMPLES = 60_000  # 20 minutes at 50 Hz
ROUNDS = 3

RAW_SCHEMA = """
CREATE TABLE sessions (id VARCHAR(64) PRIMARY KEY);
CREATE TABLE samples (
    session_id VARCHAR(64) NOT NULL REFERENCES sessions(id),
    seq INTEGER NOT NULL,
    t FLOAT NOT NULL,
    target_n FLOAT NOT NULL,
    measured_n FLOAT NOT NULL,
    phase VARCHAR(16) NOT NULL,
    cycle INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
);
"""


def samples_for(run_id: str, count: int, first: int = 0) -> list[Sample]:
    return [
        Sample(run_id, i, i * 0.02, 300.0, 299.0 + (i % 7) * 0.1, Phase.HOLD, i // 3000)
        for i in range(first, first + count)
    ]


def started(run_id: str) -> Started:
    return Started(
        run_id=run_id,
        t=0.0,
        wall=datetime.now(UTC),
        table="modbus+tcp://127.0.0.1:5020?unit=1&map=generic-v1",
        device={"model": "SIM-TX1", "serial_number": "SIM-0001", "rated_max_force_n": 900.0},
        profile={"kind": "continuous", "target_n": 300.0},
        limits={"max_force_n": 445.0},
        tick_hz=50.0,
        time_scale=1.0,
    )


def new_store(folder: Path, name: str) -> tuple[Store, SessionContext]:
    engine = make_engine(f"sqlite:///{folder / name}")
    upgrade(engine)
    store = Store(engine)
    patient = store.add_patient(f"MRN-{name}", 80.0)
    pt = store.add_clinician("Bench PT", "PT", Discipline.PT, "1000000001")
    assert patient.id is not None and pt.id is not None
    context = SessionContext(
        patient_id=patient.id,
        treating_clinician_id=pt.id,
        supervising_clinician_id=pt.id,
        workstation="bench",
        regions=("lumbar",),
    )
    return store, context


def timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def store_rate(folder: Path, batch: int, total: int, round_no: int) -> float:
    """Samples per second through ``Store.add_batch`` into a fresh file."""
    store, context = new_store(folder, f"store-{batch}-{round_no}.db")
    run_id = f"store-{batch}-{round_no}"
    store.create_session(started(run_id), context)
    chunks = [samples_for(run_id, batch, first) for first in range(0, total, batch)]

    def insert() -> None:
        for chunk in chunks:
            store.add_batch(run_id, chunk)

    seconds = timed(insert)
    assert store.sample_count(run_id) == total
    store.engine.dispose()
    return total / seconds


def raw_rate(folder: Path, batch: int, total: int, round_no: int) -> float:
    """Samples per second through sqlite3 ``executemany`` into a fresh file."""
    conn = sqlite3.connect(folder / f"raw-{batch}-{round_no}.db", isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    conn.executescript(RAW_SCHEMA)
    run_id = f"raw-{batch}-{round_no}"
    conn.execute("INSERT INTO sessions (id) VALUES (?)", (run_id,))
    chunks: list[Sequence[tuple[object, ...]]] = [
        [
            (run_id, s.seq, s.t, s.target_n, s.measured_n, str(s.phase), s.cycle)
            for s in samples_for(run_id, batch, first)
        ]
        for first in range(0, total, batch)
    ]

    def insert() -> None:
        for chunk in chunks:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)", chunk)
            conn.execute("COMMIT")

    seconds = timed(insert)
    (count,) = conn.execute("SELECT count(*) FROM samples").fetchone()
    assert count == total
    conn.close()
    return total / seconds


def never_overflows(kind: StopKind, reason: str) -> None:
    raise RuntimeError(f"the recorder asked to stop ({kind}): {reason}")


async def recorder_run(folder: Path) -> tuple[float, float, float]:
    """(samples/s while catching up, seconds to finish and seal, seconds deliver() held the loop)."""
    store, context = new_store(folder, "recorder.db")
    run_id = "recorder-run"
    samples = samples_for(run_id, RECORDER_SAMPLES)
    async with Recorder(
        store, context, never_overflows, buffer_limit=2 * RECORDER_SAMPLES
    ) as recorder:
        recorder.deliver(started(run_id))
        held = time.perf_counter()
        for sample in samples:
            recorder.deliver(sample)
        held = time.perf_counter() - held
        begin = time.perf_counter()
        # The recorder offers counts, not an event, for progress: poll them.
        while recorder.stats().written_samples < RECORDER_SAMPLES:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        catch_up = RECORDER_SAMPLES / (time.perf_counter() - begin)
        end = samples[-1].t
        finish = time.perf_counter()
        recorder.deliver(
            Finished(run_id, end, datetime.now(UTC), Outcome.COMPLETED, "bench", len(samples))
        )
        await asyncio.wait_for(recorder.wait_finished(), 60)
        sealed_s = time.perf_counter() - finish
    assert store.get_session(run_id).sample_count == RECORDER_SAMPLES
    store.engine.dispose()
    return catch_up, sealed_s, held


def main() -> None:
    machine_line = machine()
    began = time.perf_counter()
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="traction-bench-") as tmp:
        folder = Path(tmp)
        for batch, total in BATCHES:
            stores: list[float] = []
            raws: list[float] = []
            for round_no in range(ROUNDS):  # alternate, so machine load hits both alike
                raws.append(raw_rate(folder, batch, total, round_no))
                stores.append(store_rate(folder, batch, total, round_no))
            best_store, best_raw = max(stores), max(raws)
            rows.append(
                f"| {batch} | {total} | {best_store:,.0f} | {best_raw:,.0f} | "
                f"{best_store / best_raw:.2f} |"
            )
        catch_up, sealed_s, held = asyncio.run(recorder_run(folder))
    took = time.perf_counter() - began
    per_deliver_us = 1e6 * held / RECORDER_SAMPLES
    lines = [
        "### `Store.add_batch` against sqlite3 `executemany`, samples per second",
        "",
        f"One transaction per batch, fresh SQLite file each run; best of {ROUNDS} alternating "
        "runs.",
        "",
        "| rows per batch | rows | Store.add_batch /s | sqlite3 executemany /s | ratio |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "### The recorder end to end",
        "",
        f"{RECORDER_SAMPLES:,} samples (20 minutes at 50 Hz) delivered at once:",
        "",
        f"- catch-up write rate: **{catch_up:,.0f} samples/s** "
        f"({catch_up / 50:,.0f}x a 50 Hz loop's output)",
        f"- `deliver()` on the loop: {per_deliver_us:.2f} us per sample",
        f"- finish and seal (digest over every sample): {sealed_s:.2f} s",
        "",
        f"Total run time {took:.0f} s.",
        "",
    ]
    print("\n".join(lines))
    write_section(
        "bench_recorder",
        "Session recorder and store (bench/bench_recorder.py)",
        machine_line,
        lines,
    )


if __name__ == "__main__":
    main()

"""How fast samples reach a SQLite file through the session store and the recorder.

Baseline: plain ``sqlite3`` ``executemany`` of the same rows into an equivalent ``samples`` table
(same columns, primary key, foreign key to a sessions row, and the store's pragmas: WAL,
``synchronous=NORMAL``, foreign keys on), one transaction per batch, in the same process.

1. ``Store.add_batch`` against the baseline at two batch sizes: 12 rows (what the recorder writes
   every 0.25 s at 50 Hz) and 5000 (its largest batch, when it catches up after a stall).
   ``add_batch`` also skips rows already stored (a retried batch).
   On PostgreSQL (``TRACTION_TEST_PG_URL``, a schema of its own) the same against the best of
   psycopg ``executemany`` and ``COPY`` for each batch size.
2. The recorder end to end: every sample of a long session delivered at once, then the time until
   all are written (its catch-up rate), and the time to finish and seal the session.

Run from the repository root: ``TRACTION_TEST_PG_URL=postgresql+psycopg://... .venv/bin/python
bench/bench_recorder.py`` (about a minute).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import psycopg
import sqlalchemy as sa
from benchutil import machine, write_section

from devices.contract import StopKind
from devices.records import Finished, Outcome, Phase, Sample, Started
from session.db import make_engine, upgrade
from session.models import Discipline
from session.recorder import Recorder
from session.store import SessionContext, Store
from session.writer import COPY_FROM_ROWS

BATCHES = ((12, 6_000), (5_000, 150_000))  # (rows per batch, rows in all)
RECORDER_SAMPLES = 60_000  # 20 minutes at 50 Hz
ROUNDS = 5

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


class Rates(NamedTuple):
    """Rows per second of one run: by the wall clock, and by this process's CPU time (which a
    loaded machine disturbs far less: waiting for a CPU is not counted)."""

    wall: float
    cpu: float


def rates(run: Callable[[], None], rows: int) -> Rates:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return Rates(rows / (time.perf_counter() - wall), rows / (time.process_time() - cpu))


def store_rate(folder: Path, batch: int, total: int, round_no: int) -> Rates:
    """Samples per second through ``Store.add_batch`` into a fresh file."""
    store, context = new_store(folder, f"store-{batch}-{round_no}.db")
    run_id = f"store-{batch}-{round_no}"
    store.create_session(started(run_id), context)
    chunks = [samples_for(run_id, batch, first) for first in range(0, total, batch)]

    def insert() -> None:
        for chunk in chunks:
            store.add_batch(run_id, chunk)

    measured = rates(insert, total)
    assert store.sample_count(run_id) == total
    store.engine.dispose()
    return measured


def raw_rate(
    folder: Path, batch: int, total: int, round_no: int, from_samples: bool = False
) -> Rates:
    """Samples per second through sqlite3 ``executemany`` into a fresh file, of rows built before
    timing, or (``from_samples``) built in the timed loop from the same ``Sample`` objects the
    store is given."""
    conn = sqlite3.connect(folder / f"raw-{batch}-{round_no}.db", isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    conn.executescript(RAW_SCHEMA)
    run_id = f"raw-{batch}-{round_no}"
    conn.execute("INSERT INTO sessions (id) VALUES (?)", (run_id,))
    samples = [samples_for(run_id, batch, first) for first in range(0, total, batch)]
    chunks: list[Sequence[tuple[object, ...]]] = [as_rows(run_id, chunk) for chunk in samples]

    def insert() -> None:
        for chunk in chunks:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)", chunk)
            conn.execute("COMMIT")

    def insert_samples() -> None:
        for chunk in samples:
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)", as_rows(run_id, chunk)
            )
            conn.execute("COMMIT")

    measured = rates(insert_samples if from_samples else insert, total)
    (count,) = conn.execute("SELECT count(*) FROM samples").fetchone()
    assert count == total
    conn.close()
    return measured


def as_rows(run_id: str, samples: Sequence[Sample]) -> list[tuple[object, ...]]:
    """The least a caller holding ``Sample`` objects must do before ``executemany``."""
    return [(run_id, s.seq, s.t, s.target_n, s.measured_n, str(s.phase), s.cycle) for s in samples]


PG_URL_ENV = "TRACTION_TEST_PG_URL"  # the same server the tests use; the bench makes its own schema


def pg_schema_url(base: str) -> tuple[str, str]:
    """A fresh schema on the PostgreSQL server at ``base``: (its URL, its name)."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    admin.dispose()
    url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), schema


def drop_pg_schema(base: str, schema: str) -> None:
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    admin.dispose()


def pg_store_rate(url: str, batch: int, total: int, round_no: int) -> float:
    """Samples per second through ``Store.add_batch`` on PostgreSQL."""
    engine = make_engine(url)
    store = Store(engine)
    run_id = f"pg-store-{batch}-{round_no}-{uuid.uuid4().hex[:6]}"
    store.create_session(started(run_id), PG_CONTEXT[url])
    chunks = [samples_for(run_id, batch, first) for first in range(0, total, batch)]

    def insert() -> None:
        for chunk in chunks:
            store.add_batch(run_id, chunk)

    seconds = timed(insert)
    assert store.sample_count(run_id) == total
    store.close()
    engine.dispose()
    return total / seconds


PG_CONTEXT: dict[str, SessionContext] = {}


def pg_raw_rate(url: str, method: str, batch: int, total: int, round_no: int) -> float:
    """Samples per second with plain psycopg on one connection: ``executemany`` of an INSERT, or
    ``COPY``; one transaction per batch, into the same schema's samples table."""
    parsed = sa.make_url(url)
    conninfo = (
        f"host={parsed.host} port={parsed.port or 5432} user={parsed.username} "
        f"dbname={parsed.database} options={parsed.query['options']}"
    )
    run_id = f"pg-raw-{method}-{batch}-{round_no}-{uuid.uuid4().hex[:6]}"
    store = Store(make_engine(url))
    store.create_session(started(run_id), PG_CONTEXT[url])
    store.engine.dispose()
    chunks = [
        [
            (run_id, s.seq, s.t, s.target_n, s.measured_n, str(s.phase), s.cycle)
            for s in samples_for(run_id, batch, first)
        ]
        for first in range(0, total, batch)
    ]
    insert_sql = (
        "INSERT INTO samples (session_id, seq, t, target_n, measured_n, phase, cycle) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)"
    )
    copy_sql = "COPY samples (session_id, seq, t, target_n, measured_n, phase, cycle) FROM STDIN"
    with psycopg.connect(conninfo) as conn:

        def insert() -> None:
            for chunk in chunks:
                with conn.cursor() as cur:
                    if method == "executemany":
                        cur.executemany(insert_sql, chunk)
                    else:
                        with cur.copy(copy_sql) as copy:
                            for row in chunk:
                                copy.write_row(row)
                conn.commit()

        seconds = timed(insert)
    return total / seconds


def pg_rows(base: str) -> list[str]:
    """Store.add_batch against the best of psycopg executemany and COPY, per batch size."""
    url, schema = pg_schema_url(base)
    try:
        engine = make_engine(url)
        upgrade(engine)
        store = Store(engine)
        patient = store.add_patient("MRN-pg", 80.0)
        pt = store.add_clinician("Bench PT", "PT", Discipline.PT, "1000000001")
        assert patient.id is not None and pt.id is not None
        PG_CONTEXT[url] = SessionContext(patient.id, pt.id, "bench", ("lumbar",))
        engine.dispose()
        rows = []
        for batch, total in BATCHES:
            ours: list[float] = []
            raw: dict[str, list[float]] = {"executemany": [], "copy": []}
            for round_no in range(ROUNDS):
                for method, rates in raw.items():
                    rates.append(pg_raw_rate(url, method, batch, total, round_no))
                ours.append(pg_store_rate(url, batch, total, round_no))
            best_method = max(raw, key=lambda m: max(raw[m]))
            best_raw = max(raw[best_method])
            rows.append(
                f"| {batch} | {total} | {max(ours):,.0f} | {max(raw['executemany']):,.0f} | "
                f"{max(raw['copy']):,.0f} | {best_method} | {max(ours) / best_raw:.2f} |"
            )
        return rows
    finally:
        drop_pg_schema(base, schema)


def never_overflows(kind: StopKind, reason: str) -> None:
    raise RuntimeError(f"the recorder asked to stop ({kind}): {reason}")


async def recorder_run(folder: Path) -> tuple[float, float, float]:
    """(samples/s while catching up, seconds to finish and seal, seconds deliver() held the loop)."""
    store, context = new_store(folder, "recorder.db")
    run_id = "recorder-run"
    samples = samples_for(run_id, RECORDER_SAMPLES)
    async with Recorder(
        store, context, never_overflows, journal_dir=folder / "journals"
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
            runs: dict[str, list[Rates]] = {"store": [], "raw": [], "from samples": []}
            for round_no in range(ROUNDS):  # alternate, so machine load hits all alike
                runs["raw"].append(raw_rate(folder, batch, total, round_no))
                runs["store"].append(store_rate(folder, batch, total, round_no))
                runs["from samples"].append(
                    raw_rate(folder, batch, total, ROUNDS + round_no, from_samples=True)
                )
            best = {name: max(r.wall for r in measured) for name, measured in runs.items()}
            cpu = {
                name: statistics.median(r.cpu for r in measured) for name, measured in runs.items()
            }
            rows.append(
                f"| {batch} | {total} | {best['store']:,.0f} | {best['raw']:,.0f} | "
                f"{best['store'] / best['raw']:.2f} | {cpu['store']:,.0f} | {cpu['raw']:,.0f} | "
                f"**{cpu['store'] / cpu['raw']:.2f}** | {cpu['from samples'] / cpu['raw']:.2f} |"
            )
        catch_up, sealed_s, held = asyncio.run(recorder_run(folder))
    pg_base = os.environ.get(PG_URL_ENV)
    pg_lines = (
        [
            "| rows per batch | rows | Store.add_batch /s | psycopg executemany /s | "
            "psycopg COPY /s | best raw | ratio to best |",
            "|---|---|---|---|---|---|---|",
            *pg_rows(pg_base),
        ]
        if pg_base
        else [f"Not run: set {PG_URL_ENV} to a PostgreSQL database URL."]
    )
    took = time.perf_counter() - began
    per_deliver_us = 1e6 * held / RECORDER_SAMPLES
    lines = [
        "### `Store.add_batch` against sqlite3 `executemany`, samples per second",
        "",
        f"One transaction per batch, fresh SQLite file each run; {ROUNDS} alternating runs. "
        "Wall: the best run. CPU: the median of the runs' process CPU time (on a shared machine "
        "the wall clock mostly measures waiting for a CPU, and varies by half from run to run; "
        "CPU time is the ratio that travels). Raw `executemany` is given rows built before "
        "timing; the last column is raw `executemany` building its rows from the same `Sample` "
        "objects the store is given, the most any caller holding samples can reach.",
        "",
        "| rows per batch | rows | Store.add_batch /s wall | executemany /s wall | ratio wall "
        "| Store.add_batch /s CPU | executemany /s CPU | ratio CPU "
        "| executemany building rows from samples, ratio CPU |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "### `Store.add_batch` on PostgreSQL against the best raw psycopg method, samples per second",
        "",
        f"One transaction per batch on one connection, a fresh schema; best of {ROUNDS} "
        "alternating runs. The store uses COPY from "
        f"{COPY_FROM_ROWS} rows per batch and an INSERT that skips stored rows below that.",
        "",
        *pg_lines,
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
        f"Total run time {took:.0f} s; load average at the end "
        f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())}.",
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

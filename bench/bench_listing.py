"""``traction sessions list`` over a year of sessions (10,000) and ten years (100,000).

A SQLite store is filled with finished sessions whose settings snapshots are the size a real one
is, then the real command runs as its own process (what a user waits for: interpreter start,
imports, the query, drawing the table), repeated, against a raw baseline run the same way: a
``python -c`` that reads the same page of rows with ``sqlite3`` and prints them. Wall time and the
process's peak resident memory (``wait4``) are kept for both. Targets (issue 15): under 0.5 s and
120 MiB at both sizes.

Run from the repository root: ``.venv/bin/python bench/bench_listing.py`` (about a minute; the
100,000-session file is about 200 MB in a temporary folder).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from bench_recorder import started
from benchutil import machine, write_section

from devices.records import Outcome
from session.db import make_engine, upgrade
from session.models import Discipline, TreatmentSession
from session.store import Store

SIZES = (10_000, 100_000)
ROUNDS = 5
SCREEN_LINES = 50  # the terminal the command is given: a screenful is 44 rows
TRACTION = Path(sys.executable).with_name("traction")

FLOOR = "import typer, rich.table, rich.console, sqlalchemy; from pydantic import TypeAdapter"
"""What the command cannot do without: typer (which builds every option's parser as a pydantic
``TypeAdapter``), rich for the table, SQLAlchemy Core for the query on either backend."""
RAW = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
rows = conn.execute(
    "SELECT s.id, s.started_at, p.reference, s.regions, s.outcome, s.sample_count, "
    "s.seal_digest IS NOT NULL FROM sessions s JOIN patients p ON p.id = s.patient_id "
    "ORDER BY s.started_at DESC, s.id DESC LIMIT ?", (int(sys.argv[2]),)).fetchall()
for r in rows:
    print(r[0][:12], r[1][:16], r[2], r[3], r[4], r[5], "yes" if r[6] else "no")
print(len(rows), "session(s)")
"""


def fill(folder: Path, count: int) -> Path:
    """A store with ``count`` finished, sealed-looking sessions over one patient per 50."""
    engine = make_engine(f"sqlite:///{folder / 'traction.db'}")
    upgrade(engine)
    store = Store(engine)
    pt = store.add_clinician("Bench PT", "PT", Discipline.PT, "1000000001")
    patients = [store.add_patient(f"MRN-{i:05d}", 80.0).id for i in range(max(1, count // 50))]
    snapshot = json.loads(json.dumps(started("x").to_dict(), default=str))
    snapshot["profile"] = {f"setting_{i}": i * 1.5 for i in range(60)}  # a real one's size
    first = datetime(2016, 1, 4, 8, 0, tzinfo=UTC)
    table = TreatmentSession.__table__  # type: ignore[attr-defined]
    rows = []
    for i in range(count):
        at = first + timedelta(minutes=37 * i)
        rows.append(
            {
                "id": f"{i:08d}-bench-session-{i:012d}",
                "patient_id": patients[i % len(patients)],
                "treating_clinician_id": pt.id,
                "supervising_clinician_id": None,
                "workstation": "bench",
                "table_label": "modbus+tcp://127.0.0.1:5020?unit=1&map=generic-v1",
                "device_manufacturer": "Acme",
                "device_model": "TT-500",
                "device_serial": "SN-1",
                "device_firmware": "2",
                "device_rated_max_force_n": 900.0,
                "regions": ["lumbar"],
                "settings": {**snapshot, "run_id": str(i)},
                "start_t": 0.0,
                "diagnosis_codes": ["M51.16"],
                "medical_necessity": "Radiculopathy; traction per plan of care goal 2. " * 4,
                "started_at": at,
                "ended_at": at + timedelta(minutes=25),
                "outcome": Outcome.COMPLETED.value,
                "outcome_reason": "profile completed",
                "last_sample_t": 1500.0,
                "sample_count": 75_000,
                "event_count": 40,
                "seal_digest": "sha256:" + "ab" * 32,
                "seal_parts": {"samples": "cd" * 32, "sample_count": 75_000},
            }
        )
        if len(rows) == 5000:
            with engine.begin() as conn:
                conn.execute(sa.insert(table), rows)
            rows = []
    if rows:
        with engine.begin() as conn:
            conn.execute(sa.insert(table), rows)
    store.close()
    engine.dispose()
    return folder / "traction.db"


def run(command: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS MiB, output) of one process.

    The peak comes from GNU time around the command: a child forked straight from this (large)
    process would report this process's memory as its own peak."""
    begin = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "maxrss_kb=%M cpu_s=%U+%S", *command],
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - begin
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed ({done.returncode}): {done.stderr or done.stdout}")
    peak, cpu = done.stderr.rsplit("maxrss_kb=", 1)[1].split()[:2]
    user, system = cpu.removeprefix("cpu_s=").split("+")
    return seconds, float(user) + float(system), int(peak) / 1024, done.stdout


Runs = dict[str, list[tuple[float, float, float]]]


def row(size: int, runs: Runs) -> str:
    """One table row: medians of wall and CPU time, the highest peak memory."""

    def wall(name: str) -> float:
        return statistics.median(w for w, _, _ in runs[name])

    def cpu(name: str) -> float:
        return statistics.median(c for _, c, _ in runs[name])

    def peak(name: str) -> float:
        return max(m for _, _, m in runs[name])

    return (
        f"| {size:,} | {wall('ours'):.2f} | {cpu('ours'):.2f} | {peak('ours'):.0f} | "
        f"{wall('raw'):.2f} / {cpu('raw'):.2f} / {peak('raw'):.0f} | "
        f"{wall('floor'):.2f} / {cpu('floor'):.2f} / {peak('floor'):.0f} | "
        f"{cpu('ours') / cpu('floor'):.2f} | "
        f"{'yes' if wall('ours') < 0.5 and peak('ours') < 120 else 'no'} |"
    )


def main() -> None:
    machine_line = machine()
    began = time.perf_counter()
    rows: list[str] = []
    env = {**os.environ, "COLUMNS": "120", "LINES": str(SCREEN_LINES)}
    for size in SIZES:
        with tempfile.TemporaryDirectory(prefix="traction-bench-") as tmp:
            db = fill(Path(tmp), size)
            env["TRACTION_DATA_DIR"] = tmp
            runs: Runs = {
                "ours": [],
                "raw": [],
                "floor": [],
            }
            shown = 0
            for _ in range(ROUNDS):  # alternate, so machine load hits all alike
                for name, command in (
                    ("raw", [sys.executable, "-c", RAW, str(db), "44"]),
                    ("floor", [sys.executable, "-c", FLOOR]),
                    ("ours", [str(TRACTION), "sessions", "list"]),
                ):
                    seconds, cpu, rss, out = run(command, env)
                    runs[name].append((seconds, cpu, rss))
                    if name == "ours":
                        shown = sum(1 for line in out.splitlines() if "-ben " in line)
            assert shown == SCREEN_LINES - 6, f"listed {shown} rows"

            rows.append(row(size, runs))
            print(rows[-1], flush=True)
    took = time.perf_counter() - began
    load_after = "/".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        "### `traction sessions list` (its own process, a screenful: 44 rows) against a raw "
        "`sqlite3` read of the same page",
        "",
        f"Medians of {ROUNDS} alternating runs each (wall s, CPU s = user + system), peak RSS "
        "the highest of them. Raw: `sqlite3` reads and prints the same page. Floor: "
        f'`python -c "{FLOOR}"`, the libraries the command cannot do without. '
        "Target: under 0.5 s and 120 MiB.",
        "",
        "| sessions in the store | ours wall s | ours CPU s | ours peak MiB "
        "| raw wall / CPU / MiB | floor wall / CPU / MiB | ours / floor CPU | within target |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Total run time {took:.0f} s; load average at the end {load_after}.",
        "",
    ]
    print("\n".join(lines))
    write_section("bench_listing", "Listing sessions (bench/bench_listing.py)", machine_line, lines)


if __name__ == "__main__":
    main()

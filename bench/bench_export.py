"""Exporting long sessions: documents against a raw read of the samples, billing against length.

A SQLite store holds one patient's day: a 120-minute session at 50 Hz (360,000 samples), three
more 30-minute sessions and a 1-minute one, all recorded through the store and sealed as the
recorder does. Then, in this process, alternating with the baseline, repeated:

1. JSON and PDF export of the 120-minute session (``export_to_file``: the claim run over the
   patient's day, the seal verified once, the document written) against the raw baseline: a plain
   ``sqlite3`` read of that session's samples plus ``json.dumps`` of them. Target: raw / ours at
   least 0.5.
2. CSV, X12 and FHIR export of the 120-minute session against the same for the 1-minute session:
   billing output reads no samples, so the ratio should be about 1.
3. JSON export of the 1-minute session while the same day holds the long ones (the case that took
   25 s before the facts were stored).

Run from the repository root: ``.venv/bin/python bench/bench_export.py`` (a few minutes: filling
and sealing 630,000 samples dominates).
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchutil import machine, write_section

from devices.records import Event, EventKind, Finished, Outcome, Phase, Sample, Started
from session.db import make_engine, upgrade
from session.exports import ExportFormat, export_to_file
from session.models import Discipline
from session.seal import seal
from session.store import NumberedEvent, SessionContext, Store

HZ = 50
LONG_MIN = 120
ROUNDS = 3
DAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PROFILE = {
    "mode": "intermittent",
    "hold_force_n": 300.0,
    "rest_force_n": 120.0,
    "hold_s": 60.0,
    "rest_s": 20.0,
    "duration_s": 7200.0,
}


def record(store: Store, context: SessionContext, run_id: str, minutes: float, at: datetime) -> str:
    """A session of ``minutes`` at HZ written through the store in recorder-sized batches."""
    started = Started(
        run_id=run_id,
        t=0.0,
        wall=at,
        table="lumbar-1",
        device={"manufacturer": "Acme", "model": "TT-500", "serial_number": "SN-9"},
        profile=PROFILE,
        limits={},
        tick_hz=HZ,
        time_scale=1.0,
    )
    store.create_session(started, context)
    count = int(minutes * 60 * HZ)
    batch: list[Sample] = []
    for i in range(count):
        t = i / HZ
        hold = (t % 80.0) < 60.0
        target = 300.0 if hold else 120.0
        phase = Phase.HOLD if hold else Phase.REST
        batch.append(
            Sample(run_id, i, t, target, target - 2.0 + (i % 9) * 0.5, phase, int(t // 80))
        )
        if len(batch) == 5000:
            store.add_batch(run_id, batch)
            batch = []
    events = [NumberedEvent(0, Event(run_id, 30.0, EventKind.PAUSE, "clinician paused"))]
    store.add_batch(run_id, batch, events)
    end = (count - 1) / HZ
    store.finish(
        Finished(run_id, end, at + timedelta(seconds=end), Outcome.COMPLETED, "done", count)
    )
    seal(store, run_id)
    store.amend(run_id, "patient_response", "Tolerated well.", "Dana Reyes", "note")
    store.amend(run_id, "signed_by_id", context.treating_clinician_id, "Dana Reyes", "signed")
    return run_id


def timed(run: Callable[[], object], times: list[float]) -> None:
    begin = time.perf_counter()
    run()
    times.append(time.perf_counter() - begin)


def raw_read_and_dump(db: Path, run_id: str) -> int:
    """The baseline: every sample of the session read with sqlite3, then json.dumps of them."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT seq, t, target_n, measured_n, phase, cycle FROM samples "
            "WHERE session_id = ? ORDER BY seq",
            (run_id,),
        ).fetchall()
    finally:
        conn.close()
    return len(json.dumps(rows))


def main() -> None:
    machine_line = machine()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="traction-bench-") as tmp:
        folder = Path(tmp)
        db = folder / "traction.db"
        engine = make_engine(f"sqlite:///{db}")
        upgrade(engine)
        store = Store(engine)
        patient = store.add_patient("MRN-1", 80.0, payer_id="medicare")
        pt = store.add_clinician("Dana Reyes", "PT, DPT", Discipline.PT, "1234567893")
        assert patient.id is not None and pt.id is not None
        context = SessionContext(
            patient_id=patient.id,
            treating_clinician_id=pt.id,
            workstation="bench",
            regions=("lumbar",),
            diagnosis_codes=("M51.16",),
            medical_necessity="Radiculopathy; traction per plan of care goal 2.",
            plan_of_care_ref="POC-1",
        )
        fill_began = time.perf_counter()
        long_id = record(store, context, "long-120", LONG_MIN, DAY)
        for i in range(3):
            record(store, context, f"mid-30-{i}", 30, DAY + timedelta(hours=3 + i))
        short_id = record(store, context, "short-1", 1, DAY + timedelta(hours=7))
        fill_s = time.perf_counter() - fill_began
        samples = store.sample_count(long_id)
        out = folder / "out"
        out.mkdir()

        def export(run_id: str, fmt: ExportFormat) -> Callable[[], object]:
            return lambda: export_to_file(store, run_id, fmt, out / f"{run_id}{fmt.suffix}")

        raw: list[float] = []
        docs: dict[ExportFormat, list[float]] = {ExportFormat.JSON: [], ExportFormat.PDF: []}
        billing = (ExportFormat.CSV, ExportFormat.X12, ExportFormat.FHIR)
        long_bill: dict[ExportFormat, list[float]] = {f: [] for f in billing}
        short_bill: dict[ExportFormat, list[float]] = {f: [] for f in billing}
        short_json: list[float] = []
        for _ in range(ROUNDS):  # alternate, so machine load hits all alike
            timed(lambda: raw_read_and_dump(db, long_id), raw)
            for fmt, times in docs.items():
                timed(export(long_id, fmt), times)
            for fmt in billing:
                timed(export(long_id, fmt), long_bill[fmt])
                timed(export(short_id, fmt), short_bill[fmt])
            timed(export(short_id, ExportFormat.JSON), short_json)
        store.close()
        engine.dispose()
    took = time.perf_counter() - began
    raw_s = statistics.median(raw)
    doc_rows = [
        f"| {fmt.value.upper()} | {statistics.median(times):.2f} (best {min(times):.2f}) | "
        f"{raw_s:.2f} (best {min(raw):.2f}) | {raw_s / statistics.median(times):.2f} |"
        for fmt, times in docs.items()
    ]
    bill_rows = [
        f"| {fmt.value.upper()} | {1000 * statistics.median(long_bill[fmt]):.1f} | "
        f"{1000 * statistics.median(short_bill[fmt]):.1f} | "
        f"{statistics.median(short_bill[fmt]) / statistics.median(long_bill[fmt]):.2f} |"
        for fmt in billing
    ]
    lines = [
        f"One patient's day in a SQLite store: a {LONG_MIN}-minute session at {HZ} Hz "
        f"({samples:,} samples), three 30-minute sessions and a 1-minute one, recorded and sealed "
        f"through the store ({fill_s:.0f} s). Medians of {ROUNDS} alternating runs in one process.",
        "",
        f"### Documents of the {LONG_MIN}-minute session against a raw read of its samples plus "
        "`json.dumps`",
        "",
        "The export verifies the seal once (one pass over the samples); everything else comes "
        "from the facts stored at sealing. Target: raw / ours at least 0.5.",
        "",
        "| format | export_to_file s | raw sqlite3 read + json.dumps s | raw / ours |",
        "|---|---|---|---|",
        *doc_rows,
        "",
        f"### Billing formats: the {LONG_MIN}-minute session against the 1-minute one",
        "",
        "Billing lines read stored facts, never samples. Target: about 1.",
        "",
        f"| format | {LONG_MIN}-minute ms | 1-minute ms | 1-minute / {LONG_MIN}-minute |",
        "|---|---|---|---|",
        *bill_rows,
        "",
        "### A 1-minute session's JSON while the same day holds the long ones",
        "",
        f"`export_to_file` JSON: {1000 * statistics.median(short_json):.0f} ms median "
        "(the claim run takes the day's other sessions from their stored facts).",
        "",
        f"Total run time {took:.0f} s.",
        "",
    ]
    print("\n".join(lines))
    write_section("bench_export", "Exporting sessions (bench/bench_export.py)", machine_line, lines)


if __name__ == "__main__":
    main()

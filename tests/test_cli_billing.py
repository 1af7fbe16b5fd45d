"""Billing from the command line on SQLite and PostgreSQL (``db_url``): pull what is new twice, held exits 9,
local-date filters, notes reopened by amendment, and a demo that never touches the clinic."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from billing_records import people, record
from bounds_support import steady_command_line
from cli_support import QUICK_PROFILE, QUICK_SCALE, sign_in
from conftest_db import CommandRunner
from pypdf import PdfReader

from session.db import make_engine, upgrade
from session.ledger import ClaimsLedger
from session.store import Store
from traction.cli import app
from traction.exitcodes import Exit

DAY = datetime(2026, 3, 14, 14, 0, tzinfo=UTC)


@pytest.fixture
def data_dir(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRACTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRACTION_DATABASE_URL", db_url)
    steady_command_line(monkeypatch)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


@pytest.fixture
def clinic(data_dir: Path, db_url: str) -> Iterator[Store]:
    engine = make_engine(db_url)
    upgrade(engine)
    store = Store(engine)
    yield store
    store.close()
    engine.dispose()


def invoke(*args: str) -> tuple[int, str]:
    result = CommandRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_export_new_twice_sends_each_line_once(data_dir: Path, clinic: Store) -> None:
    for n in range(2):
        patient, pt = people(clinic, f"P-{n}")
        record(clinic, f"run-{n}", patient, pt, DAY + timedelta(hours=n))
    code, out = invoke("export", "--new", "-f", "csv", "--out", str(data_dir / "pull-1"))
    assert code == Exit.OK, out
    assert "2 line(s) sent" in out
    rows = list(
        csv.DictReader(io.StringIO((data_dir / "pull-1" / "billing-lines.csv").read_text()))
    )
    assert sorted(r["session_ids"] for r in rows) == ["run-0", "run-1"]
    code, out = invoke("export", "--new", "-f", "csv", "--out", str(data_dir / "pull-2"))
    assert code == Exit.OK and "nothing new" in out
    code, out = invoke("audit", "--patient", "P-1")
    assert code == Exit.OK and "traction export" in out and "csv" in out and "P-0" not in out
    assert not (data_dir / "pull-2").exists()
    code, out = invoke("claims", "pull", "--after", "0", "--csv")
    assert code == 0 and out.count("97012") == 2
    last = max(int(r["claim_line_id"]) for r in rows)
    code, out = invoke("claims", "pull", "--after", str(last))
    assert code == 0 and "0 line(s)" in out and f"--after {last}" in out


def test_new_with_since_starts_where_billing_outside_the_ledger_stopped(
    data_dir: Path, clinic: Store
) -> None:
    patient, pt = people(clinic)
    record(clinic, "run-old", patient, pt, DAY)
    record(clinic, "run-new", patient, pt, DAY + timedelta(days=1))
    code, out = invoke(
        "export", "--new", "--since", "2026-03-15", "-f", "csv", "--out", str(data_dir / "a")
    )
    assert code == 0 and "1 line(s) sent" in out, out
    assert ClaimsLedger(clinic.engine).unclaimed_sessions() == ["run-old"]
    code, out = invoke("export", "--new", "run-old", "--out", str(data_dir / "b"))
    assert code == Exit.USAGE and "--new takes no session ids" in out


def test_export_exits_9_when_held_and_lists_every_finding(data_dir: Path, clinic: Store) -> None:
    patient, pt = people(clinic, payer="cigna-example")
    record(clinic, "run-held", patient, pt, DAY, sign=False)
    code, out = invoke("export", "run-held", "-f", "csv", "--out", str(data_dir / "out"))
    assert code == Exit.HELD, out
    assert "NO_SIGNATURE (blocking)" in out
    assert "PRIOR_CARE_NOT_DOCUMENTED (warning)" in out  # warnings are shown too
    assert "1 held" in out
    assert (data_dir / "out" / "held-lines.csv").exists()
    assert not (data_dir / "out" / "billing-lines.csv").exists()


def test_date_filters_are_the_clinics_local_dates(
    data_dir: Path, clinic: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACTION_TIME_ZONE", "America/New_York")
    patient, pt = people(clinic)
    evening = datetime(2026, 3, 14, 22, 0, tzinfo=ZoneInfo("America/New_York"))
    record(clinic, "run-evening", patient, pt, evening.astimezone(UTC))  # 03:00 UTC on the 15th
    code, out = invoke(
        "export", "--since", "2026-03-15", "--until", "2026-03-15", "--out", str(data_dir / "x")
    )
    assert code == 0 and "no finished sessions match" in out
    code, out = invoke("sessions", "list", "--since", "2026-03-14", "--until", "2026-03-15")
    assert code == 0 and "run-evening" in out and "2026-03-14 22:00" in out
    code, out = invoke(
        "export",
        "--since",
        "2026-03-14",
        "--until",
        "2026-03-14",
        "-f",
        "csv",
        "--out",
        str(data_dir / "y"),
    )
    assert code == 0, out
    assert "2026-03-14" in (data_dir / "y" / "billing-lines.csv").read_text()


def test_a_second_same_day_x12_export_writes_nothing_and_says_why(
    data_dir: Path, clinic: Store
) -> None:
    patient, pt = people(clinic)
    record(clinic, "run-aaa", patient, pt, DAY)
    record(clinic, "run-bbb", patient, pt, DAY + timedelta(hours=1))
    code, out = invoke("export", "run-aaa", "-f", "x12", "--out", str(data_dir / "a.x12"))
    assert code == 0 and "wrote" in out
    code, out = invoke("export", "run-bbb", "-f", "x12", "--out", str(data_dir / "b.x12"))
    assert code == 0, out
    assert "nothing written" in out and "already sent as claim line 1" in out
    assert not (data_dir / "b.x12").exists()


def test_amending_a_signed_note_reopens_it_and_every_signed_version_is_kept(
    data_dir: Path, clinic: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient, pt = people(clinic)
    sid = record(clinic, "run-note", patient, pt, DAY)
    code, out = invoke("sessions", "amend", sid, "medical_necessity", "x", "--why", "typo")
    assert code == Exit.USAGE and "traction login" in out  # never an anonymous or typed-in author
    sign_in("dreyes", clinician=pt)
    code, out = invoke(
        "sessions", "amend", sid, "diagnosis_codes", '["M54.16","M51.16"]', "--why", "add disc"
    )
    assert code == 0 and "reopened" in out
    row = clinic.get_session(sid)
    assert row.signed_by_id is None and row.signed_at is None
    authors = {a.author for a in clinic.amendments(sid)}
    assert "dreyes" in authors
    code, out = invoke("export", sid, "-f", "json", "--out", str(data_dir / "held"))
    assert code == Exit.HELD and "NO_SIGNATURE" in out
    code, out = invoke(
        "sessions",
        "sign",
        sid,
        "--visit-timed-minutes",
        "38",
        "--visit-treatment-minutes",
        "52",
        "--same-day-code",
        "97110",
    )
    assert code == 0 and "version 2" in out, out
    versions = clinic.signed_versions(sid)
    assert [v.version for v in versions] == [1, 2]
    assert versions[0].fields["diagnosis_codes"] == ["M54.16"]
    assert versions[1].fields["diagnosis_codes"] == ["M54.16", "M51.16"]
    assert versions[1].fields["visit_timed_minutes"] == 38.0
    row = clinic.get_session(sid)
    assert row.ended_at is not None and row.signed_at is not None
    assert row.started_at <= row.ended_at <= row.signed_at
    code, out = invoke("export", sid, "-f", "json", "-f", "pdf", "--out", str(data_dir / "ok"))
    assert code == 0, out
    text = (data_dir / "ok" / sid / f"{sid}.json").read_text()
    assert '"visit_timed_minutes": 38.0' in text and '"97110"' in text
    pdf = PdfReader(data_dir / "ok" / sid / f"{sid}.pdf")
    note = "".join(page.extract_text() for page in pdf.pages)
    assert "timed 38, total treatment 52" in note


@pytest.mark.parametrize(
    ("minutes", "ok"), [("-0.01", False), ("0", True), ("720", True), ("720.01", False)]
)
def test_visit_minutes_bounds_at_sign(
    data_dir: Path, clinic: Store, minutes: str, ok: bool
) -> None:
    patient, pt = people(clinic)
    sid = record(clinic, "run-mmm", patient, pt, DAY, sign=False)
    sign_in("dreyes", clinician=pt)
    code, out = invoke("sessions", "sign", sid, "--visit-timed-minutes", minutes)
    assert (code == 0) is ok, out


def test_claims_correct_and_void_from_the_command_line(data_dir: Path, clinic: Store) -> None:
    patient, pt = people(clinic)
    record(clinic, "run-ccc", patient, pt, DAY)
    code, out = invoke("export", "run-ccc", "-f", "csv", "--out", str(data_dir / "c"))
    assert code == 0, out
    code, out = invoke("claims", "correct", "1", "--why", "payer asked")
    assert code == 0 and "replaces line 1 (frequency 7)" in out
    code, out = invoke("claims", "void", "1", "--why", "again")
    assert code == Exit.USAGE and "replaced by line 2" in out
    code, out = invoke("claims", "void", "2", "--why", "cancelled")
    assert code == 0 and "voids line 2 (frequency 8)" in out
    code, out = invoke("claims", "runs")
    assert code == 0 and "void" in out and "correct" in out and "export" in out


def _tree_digest(root: Path, skip: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and skip not in p.parents
    }


def _database_digest(url: str) -> dict[str, str]:
    """Every table's rows, in a stable order, hashed: the clinic's records as a server holds them
    (on PostgreSQL nothing of them is in the data directory)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table: hashlib.sha256(
                    repr(
                        sorted(map(repr, conn.execute(sa.text(f'SELECT * FROM "{table}"'))))
                    ).encode()
                ).hexdigest()
                for table in sa.inspect(conn).get_table_names()
            }
    finally:
        engine.dispose()


def test_demo_leaves_the_clinic_store_byte_for_byte_untouched(
    data_dir: Path, clinic: Store, db_url: str
) -> None:
    patient, pt = people(clinic)
    record(clinic, "run-real", patient, pt, DAY)
    clinic.close()  # nothing of ours holds the clinic's files open (the writer's connection too)
    clinic.engine.dispose()
    before = _tree_digest(data_dir, data_dir / "demo")
    records_before = _database_digest(db_url)
    code, out = invoke("demo", "--profile", QUICK_PROFILE, "--time-scale", QUICK_SCALE)
    assert code == 0, out
    assert _tree_digest(data_dir, data_dir / "demo") == before
    assert _database_digest(db_url) == records_before and "sessions" in records_before
    assert (data_dir / "demo" / "traction.db").exists()
    demo_store = Store(make_engine(f"sqlite:///{data_dir / 'demo' / 'traction.db'}"))
    [row] = demo_store.find_sessions()
    assert row.simulated and row.time_scale == float(QUICK_SCALE)
    assert demo_store.get_clinician(row.treating_clinician_id).name == "Demo Clinician (simulation)"
    assert row.ended_at is not None and row.sealed_at is not None and row.signed_at is not None, out
    assert row.started_at <= row.ended_at <= row.sealed_at and row.ended_at <= row.signed_at
    # the wall clock is real: a x5 one-minute profile ends 12 s after it started, not a minute
    assert row.ended_at - row.started_at < timedelta(seconds=45)
    assert row.ended_at <= datetime.now(UTC)
    demo_store.engine.dispose()

"""Backups hold what the store held, even while a session is being written, and say so."""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from conftest_db import make_started, pg_base_url
from typer.testing import CliRunner

from devices.records import Finished, Outcome, Phase, Sample
from session.backup import BackupError, backup, inspect_store, restore
from session.db import make_engine, upgrade
from session.models import Discipline
from session.seal import seal
from session.store import SessionContext, Store
from traction.cli import app
from traction.exitcodes import Exit


def _context(store: Store) -> SessionContext:
    patient = store.add_patient("MRN-0001", 82.0, payer_id="medicare")
    clinician = store.add_clinician("Dana Reyes", "PT, DPT", Discipline.PT, "1000000001")
    assert patient.id is not None and clinician.id is not None
    return _context_for(patient.id, clinician.id)


def _context_for(patient_id: int, clinician_id: int) -> SessionContext:
    return SessionContext(
        patient_id=patient_id,
        treating_clinician_id=clinician_id,
        supervising_clinician_id=None,
        workstation="ws-test",
        regions=("lumbar",),
        diagnosis_codes=("M51.16",),
        medical_necessity="Radiculopathy",
        plan_of_care_ref="POC-1",
        patient_position="supine",
        pull_angle_deg=20.0,
    )


def _record(store: Store, context: SessionContext, samples: int, *, finish: bool) -> str:
    started = make_started()
    store.create_session(started, context)
    store.add_batch(
        started.run_id,
        [
            Sample(started.run_id, i, i * 0.02, 200.0, 199.0 + i % 3, Phase.HOLD, 1)
            for i in range(samples)
        ],
    )
    if finish:
        store.finish(
            Finished(
                started.run_id,
                samples * 0.02,
                datetime.now(UTC),
                Outcome.COMPLETED,
                "done",
                samples,
            )
        )
        seal(store, started.run_id)
    return started.run_id


def test_backup_of_a_live_sqlite_store_holds_what_a_plain_copy_misses(tmp_path: Path) -> None:
    db = tmp_path / "traction.db"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    store = Store(engine)
    context = _context(store)
    sealed = _record(store, context, 500, finish=True)
    # A writer holds the store open, as a running session does: committed pages sit in the WAL.
    writer = sqlite3.connect(db)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    running = _record(store, context, 120, finish=False)
    plain = tmp_path / "plain-copy.db"
    plain.write_bytes(db.read_bytes())
    with sqlite3.connect(plain) as conn:
        tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE name='sessions'").fetchone()
        plain_sessions = (
            conn.execute("SELECT count(*) FROM sessions").fetchone()[0] if tables[0] else 0
        )
    assert plain_sessions < 2  # the failure the backup command exists for

    report = backup(f"sqlite:///{db}", tmp_path / "backup.db")
    writer.close()
    assert (report.sessions, report.unfinished, report.samples, report.sealed) == (2, 1, 620, 1)
    assert report.ok and report.newest_id == running
    assert not (tmp_path / "backup.db-wal").exists()  # one self-contained file
    assert sealed != running


def test_backup_reports_a_changed_seal_in_the_copy(tmp_path: Path) -> None:
    db = tmp_path / "traction.db"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    store = Store(engine)
    sid = _record(store, _context(store), 50, finish=True)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE samples SET measured_n = 999 WHERE seq = 7"))
    report = backup(f"sqlite:///{db}", tmp_path / "b.db")
    assert not report.ok
    assert report.changed and report.changed[0].startswith(sid) and "samples" in report.changed[0]


def test_restore_refuses_to_overwrite_sessions_unless_replace_then_keeps_the_old_store(
    tmp_path: Path,
) -> None:
    source = tmp_path / "a.db"
    engine = make_engine(f"sqlite:///{source}")
    upgrade(engine)
    store = Store(engine)
    _record(store, _context(store), 30, finish=True)
    backup(f"sqlite:///{source}", tmp_path / "backup.db")

    target = tmp_path / "b.db"
    other = make_engine(f"sqlite:///{target}")
    upgrade(other)
    other_store = Store(other)
    _record(other_store, _context(other_store), 10, finish=True)
    other.dispose()
    with pytest.raises(BackupError, match="already holds 1 session"):
        restore(tmp_path / "backup.db", f"sqlite:///{target}")
    report = restore(tmp_path / "backup.db", f"sqlite:///{target}", replace=True)
    assert (report.sessions, report.samples, report.sealed) == (1, 30, 1) and report.ok
    kept = inspect_store(make_engine(f"sqlite:///{tmp_path / 'b.db.before-restore'}"))
    assert (kept.sessions, kept.samples) == (1, 10)


def test_backup_refuses_an_existing_file_and_a_missing_store(tmp_path: Path) -> None:
    (tmp_path / "exists.db").write_bytes(b"x")
    with pytest.raises(BackupError, match="already exists"):
        backup(f"sqlite:///{tmp_path / 'none.db'}", tmp_path / "exists.db")
    with pytest.raises(BackupError, match="no store at"):
        backup(f"sqlite:///{tmp_path / 'none.db'}", tmp_path / "new.db")


@pytest.mark.postgres
def test_postgres_backup_and_restore_round_trip_with_seals(tmp_path: Path) -> None:
    base = pg_base_url()
    names = [f"traction_bk_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    admin = f"host={base.host} port={base.port or 5432} user={base.username} dbname=postgres"
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names:
                conn.execute(f'CREATE DATABASE "{name}"')
        source = base.set(database=names[0]).render_as_string(hide_password=False)
        target = base.set(database=names[1]).render_as_string(hide_password=False)
        engine = make_engine(source)
        upgrade(engine)
        store = Store(engine)
        _record(store, _context(store), 200, finish=True)
        _record(store, _context_again(store), 40, finish=False)
        report = backup(source, tmp_path / "clinic.dump")
        assert (report.sessions, report.unfinished, report.samples, report.sealed) == (2, 1, 240, 1)
        engine.dispose()
        restored = restore(tmp_path / "clinic.dump", target)
        assert (restored.sessions, restored.samples, restored.sealed) == (2, 240, 1)
        assert restored.ok
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _context_again(store: Store) -> SessionContext:
    """A second, cervical session of the patient and clinician :func:`_context` made."""
    patient = store.patient_by_reference("MRN-0001")
    [clinician] = store.list_clinicians()
    assert patient.id is not None and clinician.id is not None
    first = _context_for(patient.id, clinician.id)
    return replace(first, regions=("cervical",), diagnosis_codes=("M54.12",))


def test_cli_backup_restore_and_verify_of_an_empty_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "160")
    runner = CliRunner()
    result = runner.invoke(app, ["verify"])
    assert result.exit_code == Exit.NOTHING and "nothing to verify" in result.output
    store = Store(make_engine(f"sqlite:///{tmp_path / 'traction.db'}"))
    sid = _record(store, _context(store), 25, finish=True)
    result = runner.invoke(app, ["backup", str(tmp_path / "copy.db")])
    assert result.exit_code == 0, result.output
    assert "holds 1 session(s) (0 unfinished), 25 sample(s)" in result.output
    assert sid in result.output and "1 seal(s) verified" in result.output
    result = runner.invoke(app, ["restore", str(tmp_path / "copy.db")])
    assert result.exit_code == Exit.USAGE and "--replace" in result.output
    result = runner.invoke(app, ["restore", str(tmp_path / "copy.db"), "--replace"])
    assert result.exit_code == 0 and "1 seal(s) verified" in result.output

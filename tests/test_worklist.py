"""The worklist names what is left to do, and who must do it, for real stored sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from billing_records import people, record
from cli_support import cli
from conftest_db import make_started

from devices.records import Finished, Outcome
from session.db import make_engine, upgrade
from session.exports import ExportOptions
from session.models import Discipline
from session.store import SessionContext, Store
from session.worklist import WorkKind, worklist

DAY = datetime(2026, 3, 14, 14, 0, tzinfo=UTC)


def kinds_of(items: list, session_id: str) -> list[WorkKind]:
    return [i.kind for i in items if i.session_id == session_id]


def test_worklist_lists_each_open_item_with_who_must_act(store: Store) -> None:
    patient, pt = people(store)
    pta = store.add_clinician("Ana Ruiz", "PTA", Discipline.PTA, npi="1710000006").id or 0
    lee = store.add_clinician("Lee Park", "PT, DPT", Discipline.PT, npi="1987654320").id or 0
    unsigned = record(store, "run-unsigned", patient, pt, DAY, sign=False)
    assistant = record(store, "run-pta", patient, pta, DAY + timedelta(hours=1), sign=False)
    store.amend(assistant, "supervising_clinician_id", lee, "admin", "supervised")
    store.amend(assistant, "signed_by_id", pta, "ana", "signature")
    held = record(store, "run-held", patient, pt, DAY + timedelta(days=1), necessity=None)
    ready = record(store, "run-ready", patient, pt, DAY + timedelta(days=2))
    simulated = record(store, "run-sim", patient, pt, DAY, sign=False, simulated=True)
    old = record(store, "run-old", patient, pt, DAY - timedelta(days=60), sign=False)
    started = make_started(t=0.0)
    store.create_session(started, SessionContext(patient, pt, "ws", ("lumbar",)))
    store.finish(Finished(started.run_id, 5.0, DAY, Outcome.INTERRUPTED, "power lost", 0))

    items = worklist(store, DAY - timedelta(days=1), ExportOptions())

    assert kinds_of(items, unsigned) == [WorkKind.UNSIGNED]
    [cosign] = [i for i in items if i.session_id == assistant]
    assert cosign.kind is WorkKind.COSIGN and cosign.who == "Lee Park"
    assert "traction sessions cosign" in cosign.what
    [fix] = [i for i in items if i.session_id == held]
    assert fix.kind is WorkKind.HELD and fix.who == "Dana Reyes"
    assert fix.what.startswith("NO_MEDICAL_NECESSITY")
    assert WorkKind.INTERRUPTED in kinds_of(items, started.run_id)
    for quiet in (ready, simulated, old):
        assert kinds_of(items, quiet) == []
    order = [i.kind for i in items]
    assert order == sorted(order, key=list(WorkKind).index)


def test_cli_today_prints_the_worklist_in_the_clinics_time_zone(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRACTION_DATABASE_URL", db_url)
    monkeypatch.setenv("TRACTION_TIME_ZONE", "America/New_York")
    monkeypatch.setenv("COLUMNS", "200")
    engine = make_engine(db_url)
    upgrade(engine)
    store = Store(engine)
    patient, pt = people(store)
    recent = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    sid = record(store, "run-today", patient, pt, recent, sign=False)
    code, out = cli("today", "--days", "2")
    assert code == 0, out
    assert "Notes to sign (1)" in out and sid[:12] in out and "America/New_York" in out
    local = recent.astimezone(ZoneInfo("America/New_York"))
    assert f"{local:%Y-%m-%d %H:%M}" in out
    assert cli("today", "--days", "0")[0] == 2
    engine.dispose()

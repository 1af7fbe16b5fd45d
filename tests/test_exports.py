"""Exports of stored sessions: one 97012 unit per patient per day, wherever it is exported from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from billing_records import record

from session.exports import ExportFormat, ExportOptions, claim_run, export_to_directory
from session.models import Discipline
from session.store import Store

DAY = datetime(2026, 3, 14, 14, 0, tzinfo=UTC)


@pytest.fixture
def two_sessions_one_day(store: Store) -> tuple[str, str]:
    patient = store.add_patient("P-1", 80.0, payer_id="medicare")
    pt = store.add_clinician("Dana Reyes", "PT, DPT", Discipline.PT, npi="1234567893")
    assert patient.id is not None and pt.id is not None
    first = record(store, "run-a", patient.id, pt.id, DAY, "cervical")
    second = record(store, "run-b", patient.id, pt.id, DAY + timedelta(hours=1), "lumbar")
    return first, second


def test_a_second_session_exported_alone_is_already_sent_and_adds_no_unit(
    store: Store, two_sessions_one_day: tuple[str, str], tmp_path: Path
) -> None:
    first, second = two_sessions_one_day
    one = export_to_directory(store, [first], [ExportFormat.CSV], tmp_path / "one")
    [sent] = one.sent
    assert sent.claim_line is not None and sent.line.units == 1
    two = export_to_directory(store, [second], [ExportFormat.CSV], tmp_path / "two")
    assert two.sent == [] and len(two.already_sent) == 1
    assert two.already_sent[0].claim_line is not None
    assert two.already_sent[0].claim_line.id == sent.claim_line.id
    assert f"already sent as claim line {sent.claim_line.id}" in two.notes[second]
    assert not (tmp_path / "two" / "billing-lines.csv").exists()
    assert not (tmp_path / "two" / second / f"{second}.csv").exists()
    [doc] = two.docs
    assert doc.billing is not None and doc.billing.status == "already_sent"
    assert doc.billing.claim_line_id == sent.claim_line.id


def test_a_date_range_export_bills_the_day_once(
    store: Store, two_sessions_one_day: tuple[str, str], tmp_path: Path
) -> None:
    first, second = two_sessions_one_day
    summary = export_to_directory(
        store, [first, second], [ExportFormat.CSV, ExportFormat.JSON], tmp_path / "out"
    )
    assert len(summary.lines) == 1 and summary.lines[0].units == 1
    assert (tmp_path / "out" / first / f"{first}.csv").exists()
    assert not (tmp_path / "out" / second / f"{second}.csv").exists()
    assert (tmp_path / "out" / second / f"{second}.json").exists()
    assert (tmp_path / "out" / "billing-lines.csv").read_text().count("97012") == 1


def test_the_clinics_time_zone_decides_the_date_of_service(store: Store) -> None:
    """14:00 and 22:00 in New York are one visit, though 22:00 is already tomorrow in UTC."""
    new_york = ZoneInfo("America/New_York")
    patient = store.add_patient("P-2", 80.0, payer_id="medicare")
    pt = store.add_clinician("Dana Reyes", "PT, DPT", Discipline.PT, npi="1234567893")
    assert patient.id is not None and pt.id is not None
    afternoon = datetime(2026, 3, 14, 14, 0, tzinfo=new_york)
    evening = datetime(2026, 3, 14, 22, 0, tzinfo=new_york)
    record(store, "run-c", patient.id, pt.id, afternoon.astimezone(UTC), "lumbar")
    record(store, "run-d", patient.id, pt.id, evening.astimezone(UTC), "lumbar")

    local = claim_run(store, ["run-c", "run-d"], ExportOptions(time_zone=new_york))
    [line] = local.lines
    assert str(line.date_of_service) == "2026-03-14" and set(line.session_ids) == {"run-c", "run-d"}
    assert local.docs[1].started_at.utcoffset() == timedelta(hours=-4)
    in_utc = claim_run(store, ["run-c", "run-d"])
    assert sorted(str(x.date_of_service) for x in in_utc.lines) == ["2026-03-14", "2026-03-15"]

"""Exports of stored sessions: one 97012 unit per patient per day, wherever it is exported from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from documentation_factory import HOLD_N, intermittent_samples

from devices.records import Finished, Outcome, Phase, Sample, Started
from session.db import make_engine, upgrade
from session.exports import ExportFormat, ExportOptions, claim_run, export_to_directory, render
from session.models import Discipline
from session.seal import seal
from session.store import SessionContext, Store

DAY = datetime(2026, 3, 14, 14, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    engine = make_engine(f"sqlite:///{tmp_path / 'traction.db'}")
    upgrade(engine)
    return Store(engine)


def record(
    store: Store, run_id: str, patient_id: int, clinician_id: int, wall: datetime, region: str
) -> str:
    """A finished, sealed, signed session written through the store as the recorder would."""
    started = Started(
        run_id=run_id,
        t=0.0,
        wall=wall,
        table="lumbar-1",
        device={
            "manufacturer": "Acme",
            "model": "TT-500",
            "serial_number": "SN-9",
            "firmware": "2",
        },
        profile={
            "mode": "intermittent",
            "region": region,
            "hold_force_n": HOLD_N,
            "rest_force_n": HOLD_N / 2,
            "hold_s": 60,
            "rest_s": 20,
            "total_s": 960,
        },
        limits={},
        tick_hz=2.0,
        time_scale=1.0,
    )
    store.create_session(
        started,
        SessionContext(
            patient_id=patient_id,
            treating_clinician_id=clinician_id,
            workstation="ws",
            regions=(region,),
            diagnosis_codes=("M54.16",) if region == "lumbar" else ("M54.12",),
            medical_necessity="Radiculopathy limits sitting; traction to progress exercise.",
            plan_of_care_ref="POC-1",
        ),
    )
    samples = [
        Sample(run_id, s.seq, s.t, s.target_n, s.measured_n, Phase(s.phase))
        for s in intermittent_samples(run_id)
    ]
    store.add_batch(run_id, samples, ())
    store.finish(
        Finished(
            run_id,
            samples[-1].t,
            wall + timedelta(minutes=16),
            Outcome.COMPLETED,
            "done",
            len(samples),
        )
    )
    seal(store, run_id)
    store.amend(run_id, "patient_response", "Tolerated well.", "Dana Reyes", "note")
    store.amend(run_id, "signed_by_id", clinician_id, "Dana Reyes", "signature")
    return run_id


@pytest.fixture
def two_sessions_one_day(store: Store) -> tuple[str, str]:
    patient = store.add_patient("P-1", 80.0, payer_id="medicare")
    pt = store.add_clinician("Dana Reyes", "PT, DPT", Discipline.PT, npi="1234567893")
    assert patient.id is not None and pt.id is not None
    first = record(store, "run-a", patient.id, pt.id, DAY, "cervical")
    second = record(store, "run-b", patient.id, pt.id, DAY + timedelta(hours=1), "lumbar")
    return first, second


def test_a_second_session_exported_alone_is_documented_not_billed(
    store: Store, two_sessions_one_day: tuple[str, str]
) -> None:
    first, second = two_sessions_one_day
    alone = claim_run(store, [second])
    assert [d.session_id for d in alone.docs] == [second]
    assert alone.billed_on(second) == []  # the day's unit belongs to the first session
    assert render(store, alone, alone.docs[0], ExportFormat.X12) == b""
    csv = render(store, alone, alone.docs[0], ExportFormat.CSV).decode()
    assert csv.count("\n") == 1  # header only
    first_alone = claim_run(store, [first])
    [line] = first_alone.billed_on(first)
    assert line.units == 1 and set(line.session_ids) == {first, second}


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

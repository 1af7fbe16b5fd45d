"""Patients as records: plausible weights in kg or lb, separate precautions, every version kept."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from bounds_support import steady_command_line
from cli_support import QUICK_PROFILE, QUICK_SCALE, sign_in
from conftest_db import CommandRunner, query

from session.errors import StoreError
from session.models import Sex
from session.patient_facts import check_weight, parse_weight
from session.patients import PatientChange, PatientRecords
from session.store import Store
from traction.cli import app
from traction.exitcodes import Exit


@pytest.mark.parametrize(
    ("text", "kg"),
    [("82", 82.0), ("82 kg", 82.0), ("180 lb", 81.6466), ("180lbs", 81.6466), ("20", 20.0)],
)
def test_weights_parse_in_kg_or_lb(text: str, kg: float) -> None:
    assert parse_weight(text) == pytest.approx(kg, abs=1e-4)


@pytest.mark.parametrize("kg", [19.99, 300.01, 640.0, 0.0])
def test_implausible_weights_are_refused_naming_the_bounds(kg: float) -> None:
    with pytest.raises(StoreError, match=r"must be 20-300 kg \(44-661 lb\)"):
        check_weight(kg)


@pytest.mark.parametrize("kg", [20.0, 300.0])
def test_weights_at_the_bounds_are_accepted(kg: float) -> None:
    assert check_weight(kg) == kg


def test_a_weight_without_a_number_says_how_to_write_one() -> None:
    with pytest.raises(StoreError, match="write e.g. '82 kg' or '180 lb'"):
        parse_weight("heavy")


def test_edits_keep_every_version_with_who_and_why(store: Store) -> None:
    store.add_patient("MRN-7", 82.0, sex=Sex.FEMALE, precautions=["claustrophobia"], by="os user a")
    records = PatientRecords(store.engine)
    edited = records.edit(
        "MRN-7",
        PatientChange(body_weight_kg=84.0, add_contraindications=["osteoporosis"]),
        by="os user b",
        why="DEXA scan 2026-11-20",
    )
    assert edited.version == 2 and edited.contraindications == ["osteoporosis"]
    again = records.edit(
        "MRN-7",
        PatientChange(remove_precautions=["claustrophobia"]),
        by="os user c",
        why="resolved",
    )
    assert again.precautions == [] and again.version == 3
    history = records.history("MRN-7")
    assert [(v.version, v.by, v.why) for v in history] == [
        (1, "os user a", "registered"),
        (2, "os user b", "DEXA scan 2026-11-20"),
        (3, "os user c", "resolved"),
    ]
    assert (
        history[0].facts["body_weight_kg"] == 82.0 and history[0].facts["contraindications"] == []
    )
    assert history[1].facts["body_weight_kg"] == 84.0
    assert history[1].facts["precautions"] == ["claustrophobia"]
    assert store.patient_by_reference("MRN-7").version == 3


def test_an_edit_must_change_something_say_why_and_remove_only_what_is_recorded(
    store: Store,
) -> None:
    store.add_patient("MRN-8", 70.0)
    records = PatientRecords(store.engine)
    with pytest.raises(StoreError, match="nothing to change"):
        records.edit("MRN-8", PatientChange(), by="x", why="y")
    with pytest.raises(StoreError, match="say why"):
        records.edit("MRN-8", PatientChange(body_weight_kg=71.0), by="x", why="  ")
    with pytest.raises(StoreError, match="osteoporosis not on record"):
        records.edit(
            "MRN-8", PatientChange(remove_contraindications=["osteoporosis"]), by="x", why="y"
        )
    with pytest.raises(StoreError, match="not a plausible body weight"):
        records.edit("MRN-8", PatientChange(body_weight_kg=640.0), by="x", why="typo")
    assert [v.version for v in records.history("MRN-8")] == [1]


@pytest.fixture
def cli(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRACTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRACTION_DATABASE_URL", db_url)
    steady_command_line(monkeypatch)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def invoke(*args: str) -> tuple[int, str]:
    result = CommandRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.mark.backend("postgresql")
def test_cli_a_contraindication_found_later_blocks_the_next_session_and_is_on_record(
    cli: Path,
) -> None:
    code, out = invoke(
        "patients", "add", "MRN-1", "--weight", "180 lb", "--sex", "female",
        "--precaution", "claustrophobia", "--payer", "medicare",
    )  # fmt: skip
    assert code == 0, out
    code, out = invoke(
        "clinicians", "add", "Dana Reyes", "--credentials", "PT, DPT", "--discipline", "PT",
        "--npi", "1234567893",
    )  # fmt: skip
    assert code == 0, out
    run = (
        "run",
        QUICK_PROFILE,
        "--patient",
        "MRN-1",
        "--clinician",
        "1",
        "--time-scale",
        QUICK_SCALE,
    )
    code, out = invoke(*run)
    assert code == Exit.OK, out
    [(settings,)] = query(os.environ["TRACTION_DATABASE_URL"], "SELECT settings FROM sessions")
    settings = json.loads(settings) if isinstance(settings, str) else settings  # JSON or JSONB
    checked = settings["extra"]["patient_record"]
    assert checked["version"] == 1 and checked["precautions"] == ["claustrophobia"]
    assert checked["body_weight_kg"] == pytest.approx(81.6466, abs=1e-3)

    edit = ("patients", "edit", "MRN-1", "--add-contraindication", "osteoporosis")
    code, out = invoke(*edit, "--why", "DEXA 2026-11-20")
    assert code == Exit.USAGE and "traction login" in out  # facts change under a name
    sign_in("dreyes", clinician=1)
    code, out = invoke(*edit, "--why", "DEXA 2026-11-20")
    assert code == 0 and "version 2" in out, out
    code, out = invoke(*run)
    assert code == Exit.REFUSED and "osteoporosis" in out.lower(), out
    code, out = invoke("patients", "show", "MRN-1")
    assert code == 0, out
    assert "DEXA 2026-11-20" in out and "registered" in out
    assert "os user" in out and "dreyes" in out  # registered at the OS, edited signed in
    assert "contraindications  osteoporosis" in out and "precautions        claustrophobia" in out


def test_cli_a_precaution_given_as_a_contraindication_is_refused_naming_both(cli: Path) -> None:
    code, out = invoke(
        "patients", "add", "MRN-2", "--weight-kg", "70", "--contraindication", "claustrophobia"
    )
    assert code == Exit.USAGE
    assert "'claustrophobia' is a precaution" in out and "enter it under precautions" in out
    code, out = invoke("patients", "add", "MRN-2", "--weight", "640 kg")
    assert code == Exit.USAGE and "not a plausible body weight" in out

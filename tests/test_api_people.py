"""Patients and clinicians over HTTP: registered, listed, refused when duplicate or unknown to the
safety limits, and usable at once for a session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from api_support import TestClient, World, errors, make_world, prescription, running_client


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_db_url: str) -> Iterator[World]:
    world = make_world(tmp_path_factory.mktemp("api-people"), module_db_url)
    yield world
    world.close()


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    yield from running_client(world)


PATIENT: dict[str, Any] = {
    "reference": "MRN-0412",
    "body_weight_kg": 70.5,
    "sex": "female",
    "contraindications": [],
    "precautions": ["claustrophobia"],
    "payer_id": "medicare",
}
CLINICIAN: dict[str, Any] = {
    "name": "Sam Ortiz",
    "credentials": "DC",
    "discipline": "DC",
    "npi": "1992753880",
}


def test_patients_are_registered_listed_and_ready_for_a_session(
    client: TestClient, world: World
) -> None:
    created = client.post("/patients", json=PATIENT, headers=world.headers("clinician"))
    assert created.status_code == 201, created.text
    assert created.json() == {"id": created.json()["id"], **PATIENT, "version": 1}
    listed = client.get("/patients", headers=world.headers("billing")).json()
    assert [p["reference"] for p in listed] == ["MRN-0001", "MRN-0002", "MRN-0412"]
    assert listed[-1] == created.json()
    assert world.store.patient_by_reference("MRN-0412").precautions == ["claustrophobia"]

    body = prescription(world, patient_reference="MRN-0412")
    checked = client.post("/sessions/validate", json=body, headers=world.headers("technician"))
    assert checked.status_code == 200 and checked.json()["ok"] is True
    [warning] = checked.json()["violations"]
    assert warning["severity"] == "warn" and "laustrophobia" in warning["message"]

    blocked = {**PATIENT, "reference": "MRN-0413", "contraindications": ["osteoporosis"]}
    assert client.post("/patients", json=blocked, headers=world.headers("admin")).status_code == 201
    body = prescription(world, patient_reference="MRN-0413")
    checked = client.post("/sessions/validate", json=body, headers=world.headers("technician"))
    assert checked.json()["ok"] is False
    assert "patient.contraindications" in {v["field"] for v in checked.json()["violations"]}


def test_a_duplicate_patient_reference_is_409_naming_it(client: TestClient, world: World) -> None:
    duplicate = {**PATIENT, "reference": "MRN-0001"}
    refused = client.post("/patients", json=duplicate, headers=world.headers("clinician"))
    assert refused.status_code == 409
    assert refused.json()["detail"] == "patient reference 'MRN-0001' already exists"
    assert world.store.patient_by_reference("MRN-0001").body_weight_kg == 82.0


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        (
            {"contraindications": ["osteoporosis", "bad_knees"]},
            ["body", "contraindications", 1],
            "'bad_knees' is not one of the contraindications",
        ),
        (
            {"contraindications": ["claustrophobia"]},
            ["body", "contraindications", 0],
            "'claustrophobia' is a precaution in the safety limits; enter it under precautions",
        ),
        ({"body_weight_kg": 19.9}, ["body", "body_weight_kg"], "greater than or equal to 20"),
        ({"body_weight_kg": 640}, ["body", "body_weight_kg"], "less than or equal to 300"),
        ({"sex": "f"}, ["body", "sex"], "'female'"),
        ({"reference": ""}, ["body", "reference"], "at least 1 character"),
        ({"reference": "   "}, ["body", "reference"], "must not be empty"),
        ({"weight": 80}, ["body", "weight"], "Extra inputs"),
    ],
)
def test_a_bad_patient_is_refused_naming_the_field(
    client: TestClient, world: World, change: dict[str, Any], loc: list[Any], words: str
) -> None:
    body = {**PATIENT, "reference": "MRN-0499", **change}
    refused = client.post("/patients", json=body, headers=world.headers("admin"))
    assert refused.status_code == 422, refused.text
    [error] = errors(refused)
    assert error["loc"] == loc and words in error["msg"], error
    assert body["reference"] not in {p.reference for p in world.store.list_patients()}


def test_unknown_contraindication_message_lists_the_known_keys(
    client: TestClient, world: World
) -> None:
    body = {**PATIENT, "reference": "MRN-0498", "contraindications": ["Pregnancy"]}
    refused = client.post("/patients", json=body, headers=world.headers("clinician"))
    message = errors(refused)[0]["msg"]
    assert "'Pregnancy'" in message and "pregnancy" in message and "osteoporosis" in message


def test_clinicians_are_registered_listed_and_can_treat(client: TestClient, world: World) -> None:
    admin = world.headers("admin")
    created = client.post("/clinicians", json=CLINICIAN, headers=admin)
    assert created.status_code == 201, created.text
    clinician_id = created.json()["id"]
    assert created.json() == {"id": clinician_id, **CLINICIAN}
    listed = client.get("/clinicians", headers=world.headers("technician")).json()
    assert [c["name"] for c in listed] == ["Dana Reyes", "Sam Ortiz"]
    assert world.store.get_clinician(clinician_id).discipline == "DC"

    body = prescription(world, treating_clinician_id=clinician_id)
    checked = client.post("/sessions/validate", json=body, headers=world.headers("technician"))
    assert checked.status_code == 200 and checked.json()["ok"] is True

    no_npi = client.post("/clinicians", json={**CLINICIAN, "npi": None}, headers=admin)
    assert no_npi.status_code == 201 and no_npi.json()["npi"] is None


def test_a_duplicate_npi_is_409_naming_its_holder(client: TestClient, world: World) -> None:
    again = {**CLINICIAN, "name": "Someone Else", "npi": "1234567893"}
    refused = client.post("/clinicians", json=again, headers=world.headers("admin"))
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        f"NPI 1234567893 is already registered to Dana Reyes (id {world.clinician_id})"
    )
    assert "Someone Else" not in {c.name for c in world.store.list_clinicians()}


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"npi": "12345"}, ["body", "npi"]),
        ({"discipline": "RN"}, ["body", "discipline"]),
        ({"credentials": ""}, ["body", "credentials"]),
        ({"name": None}, ["body", "name"]),
    ],
)
def test_a_bad_clinician_is_refused_naming_the_field(
    client: TestClient, world: World, change: dict[str, Any], loc: list[str]
) -> None:
    refused = client.post(
        "/clinicians", json={**CLINICIAN, **change}, headers=world.headers("admin")
    )
    assert refused.status_code == 422, refused.text
    [error] = errors(refused)
    assert error["loc"] == loc


def test_validation_knows_the_patients_history_for_the_first_session_cap(
    client: TestClient, world: World
) -> None:
    """A new female patient's first lumbar session above 40 lbf is flagged, counted from the store."""
    new = {**PATIENT, "reference": "MRN-0500", "sex": "female", "precautions": []}
    assert client.post("/patients", json=new, headers=world.headers("clinician")).status_code == 201
    profile = {
        "mode": "intermittent",
        "region": "lumbar",
        "hold_force": "45 lbf",
        "rest_force": "20 lbf",
        "hold_s": 30,
        "rest_s": 15,
        "total_min": 5,
        "ramp_rate": "5 lbf/s",
    }
    body = prescription(
        world, patient_reference="MRN-0500", profile=profile, operator_confirmed=True
    )
    del body["profile_name"]
    checked = client.post("/sessions/validate", json=body, headers=world.headers("technician"))
    assert checked.status_code == 200, checked.text
    [cap] = checked.json()["violations"]
    assert checked.json()["ok"] is False
    assert cap["severity"] == "block" and "usual cap for lumbar session 1" in cap["message"]


def test_an_unknown_payer_is_refused_naming_the_field(client: TestClient, world: World) -> None:
    bad = {**PATIENT, "reference": "MRN-0600", "payer_id": "acme-health"}
    refused = client.post("/patients", json=bad, headers=world.headers("clinician"))
    assert refused.status_code == 422
    [error] = errors(refused)
    assert error["loc"] == ["body", "payer_id"] and "configs/payers.toml" in error["msg"]


def test_deleted_and_header_diagnosis_codes_are_refused_where_entered(
    client: TestClient, world: World
) -> None:
    body = prescription(world, diagnosis_codes=["M51.16", "M54.5"])
    refused = client.post("/sessions/validate", json=body, headers=world.headers("technician"))
    assert refused.status_code == 422
    [error] = errors(refused)
    assert error["loc"] == ["body", "diagnosis_codes", 1] and "M54.50" in error["msg"]
    header = prescription(world, diagnosis_codes=["M51.36"])
    refused = client.post("/sessions/validate", json=header, headers=world.headers("technician"))
    assert "category header" in errors(refused)[0]["msg"]
    # a valid code outside the spine list is accepted here; billing readiness flags it later
    other = prescription(world, diagnosis_codes=["M51.16", "J45.909"])
    accepted = client.post("/sessions/validate", json=other, headers=world.headers("technician"))
    assert accepted.status_code == 200

"""Bad input over HTTP: every refusal is a 422 naming the field in the refusal shape, never a 500;
bodies are bounded; the token is checked before the body is read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from api_support import TestClient, World, errors, make_world, prescription, running_client
from starlette.websockets import WebSocketDisconnect

from traction.api.auth import WS_UNAUTHORIZED
from traction.api.bounds import MAX_DIAGNOSES, MAX_NAME, MAX_TEXT
from traction.api.routes.telemetry import WS_NOT_FOUND

PROFILE = {
    "mode": "intermittent",
    "region": "lumbar",
    "hold_force": "30 lbf",
    "rest_force": "10 lbf",
    "hold_s": 15,
    "rest_s": 10,
    "total_min": 2,
    "ramp_rate": "5 lbf/s",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_db_url: str) -> Iterator[World]:
    world = make_world(tmp_path_factory.mktemp("api-bounds"), module_db_url)
    yield world
    world.close()


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    yield from running_client(world)


def raw_post(
    client: TestClient, world: World, path: str, text: str, who: str = "technician"
) -> Any:
    """POST a body exactly as written (NaN and Infinity are not JSON, so no encoder writes them)."""
    headers = {"Content-Type": "application/json", **world.headers(who)}
    return client.post(path, content=text.encode(), headers=headers)


def body_with_profile(world: World, **profile: Any) -> dict[str, Any]:
    body = prescription(world, profile={**PROFILE, **profile})
    del body["profile_name"]
    return body


@pytest.mark.parametrize(
    ("path", "field", "literal", "who"),
    [
        ("/sessions/validate", "profile.hold_s", "NaN", "technician"),
        ("/sessions/validate", "profile.rest_s", "Infinity", "technician"),
        ("/sessions/validate", "profile.total_min", "-Infinity", "technician"),
        ("/sessions/validate", "profile.total_s", "NaN", "technician"),
        ("/sessions/validate", "profile.hold_force_n", "NaN", "technician"),
        ("/sessions/validate", "pull_angle_deg", "NaN", "technician"),
        ("/sessions", "profile.hold_s", "Infinity", "technician"),
        ("/patients", "body_weight_kg", "NaN", "clinician"),
        ("/admin/tokens", "ttl_hours", "Infinity", "admin"),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_field(
    client: TestClient, world: World, path: str, field: str, literal: str, who: str
) -> None:
    if path.startswith("/sessions"):
        body: dict[str, Any] = body_with_profile(world)
        if field.startswith("profile."):
            key = field.split(".", 1)[1]
            body["profile"].pop("total_min" if key == "total_s" else "", None)
            body["profile"].pop("hold_force" if key == "hold_force_n" else "", None)
            body["profile"][key] = "__X__"
        else:
            body[field] = "__X__"
    elif path == "/patients":
        body = {"reference": "MRN-0900", "body_weight_kg": "__X__"}
    else:
        body = {"ttl_hours": "__X__"}
    refused = raw_post(client, world, path, json.dumps(body).replace('"__X__"', literal), who)
    assert refused.status_code == 422, refused.text
    [violation] = errors(refused)
    assert violation["field"] == f"body.{field}", violation
    assert literal.lstrip("-").lower()[:3] in violation["message"].lower() + violation["value"]


def test_a_huge_total_min_is_refused_not_a_500(client: TestClient, world: World) -> None:
    body = body_with_profile(world, total_min=1e308)
    refused = client.post("/sessions/validate", json=body, headers=world.headers("technician"))
    assert refused.status_code == 422, refused.text
    assert errors(refused)[0]["field"] == "body.profile.total_min"
    assert "at most 240 min" in errors(refused)[0]["message"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field"),
    [
        ("GET", "/sessions", {"params": {"clinician_id": 2**63}}, "query.clinician_id"),
        ("GET", "/sessions/x/samples", {"params": {"after_seq": 2**64}}, "query.after_seq"),
        ("POST", "/admin/tokens/18446744073709551616/revoke", {}, "path.token_id"),
        (
            "POST",
            "/admin/users",
            {"json": {"name": "z", "role": "admin", "clinician_id": 2**64}},
            "body.clinician_id",
        ),
    ],
)
def test_integers_beyond_the_stores_columns_are_refused_naming_the_field(
    client: TestClient, world: World, method: str, path: str, kwargs: dict[str, Any], field: str
) -> None:
    who = "admin" if path.startswith("/admin") else "technician"
    refused = client.request(method, path, headers=world.headers(who), **kwargs)
    assert refused.status_code == 422, refused.text
    assert [v["field"] for v in errors(refused)] == [field]
    assert errors(refused)[0]["limit"] == "<= 2147483647" or "less than" in refused.text


def test_a_treating_clinician_id_of_2_to_the_70_is_refused(
    client: TestClient, world: World
) -> None:
    body = prescription(world, treating_clinician_id=2**70)
    refused = client.post("/sessions", json=body, headers=world.headers("technician"))
    assert [v["field"] for v in errors(refused)] == ["body.treating_clinician_id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"medical_necessity": "x" * (MAX_TEXT + 1)}, "body.medical_necessity"),
        ({"plan_of_care_ref": "P" * (MAX_NAME + 1)}, "body.plan_of_care_ref"),
        ({"patient_position": "p" * (MAX_NAME + 1)}, "body.patient_position"),
        ({"patient_reference": "M" * (MAX_NAME + 1)}, "body.patient_reference"),
        ({"regions": ["lumbar"] * 5}, "body.regions"),
        ({"regions": ["lumbar", "lumbar"]}, "body.regions"),
        ({"diagnosis_codes": ["M51.16"] * 2}, "body.diagnosis_codes"),
        (
            {"diagnosis_codes": [f"M51.{i}" for i in range(MAX_DIAGNOSES + 1)]},
            "body.diagnosis_codes",
        ),
        ({"operator_confirmed": 0}, "body.operator_confirmed"),
        ({"profile": PROFILE}, "body.profile"),  # and profile_name: both
    ],
)
def test_strings_and_lists_past_their_documented_maximum_are_refused(
    client: TestClient, world: World, change: dict[str, Any], field: str
) -> None:
    body = prescription(world, **change)
    refused = client.post("/sessions/validate", json=body, headers=world.headers("technician"))
    assert field in [v["field"] for v in errors(refused)], refused.text


def test_profile_or_profile_name_may_be_left_out_but_never_null(
    client: TestClient, world: World
) -> None:
    body = {**prescription(world), "profile_name": None, "profile": PROFILE}
    refused = client.post("/sessions/validate", json=body, headers=world.headers("technician"))
    assert [v["field"] for v in errors(refused)] == ["body.profile_name"]
    del body["profile_name"]
    accepted = client.post("/sessions/validate", json=body, headers=world.headers("technician"))
    assert accepted.status_code == 200, accepted.text


def test_the_openapi_document_states_the_maxima(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    prescription_in = schemas["PrescriptionIn"]["properties"]
    assert prescription_in["medical_necessity"]["anyOf"][0]["maxLength"] == MAX_TEXT
    assert prescription_in["diagnosis_codes"]["maxItems"] == MAX_DIAGNOSES
    assert prescription_in["treating_clinician_id"]["anyOf"][0]["maximum"] == 2**31 - 1
    assert schemas["PrescriptionIn"]["oneOf"] == [
        {"required": ["profile"]},
        {"required": ["profile_name"]},
    ]


def test_a_body_over_max_request_bytes_gets_413_whether_or_not_its_length_is_declared(
    client: TestClient, world: World
) -> None:
    limit = world.settings.max_request_bytes
    body = prescription(world, medical_necessity="x" * (limit + 1))
    declared = client.post("/sessions/validate", json=body, headers=world.headers("technician"))
    assert declared.status_code == 413 and str(limit) in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    headers = {"Content-Type": "application/json", **world.headers("technician")}
    streamed = client.post("/sessions/validate", content=chunks(), headers=headers)
    assert streamed.status_code == 413, streamed.text


@pytest.mark.parametrize(
    "text",
    ["{broken", "[" * 100_000 + "]" * 100_000, '{"table": NaN}'],
    ids=["broken", "deep", "nan"],
)
def test_the_token_is_checked_before_the_body_is_read(
    client: TestClient, world: World, text: str
) -> None:
    headers = {"Content-Type": "application/json"}
    anonymous = client.post("/sessions", content=text.encode(), headers=headers)
    assert anonymous.status_code == 401, anonymous.text
    wrong_role = client.post(
        "/sessions", content=text.encode(), headers={**headers, **world.headers("billing")}
    )
    assert wrong_role.status_code == 403
    authenticated = raw_post(client, world, "/sessions", text)
    assert authenticated.status_code == 422 and errors(authenticated)[0]["loc"][0] == "body"


def test_a_step_rest_fraction_of_zero_is_refused_not_replaced(
    client: TestClient, world: World
) -> None:
    body = body_with_profile(world, progression_steps=2, step_rest_fraction=0)
    refused = client.post("/sessions/validate", json=body, headers=world.headers("technician"))
    [violation] = errors(refused)
    assert violation["field"] == "body.profile.step_rest_fraction"
    assert "must be above 0 and at most 1" in violation["message"]


@pytest.mark.parametrize("until", ["0.5", "1732780800", "2026-11-28T08:00:00", "2026-11-28"])
def test_until_must_be_a_date_time_with_a_timezone(
    client: TestClient, world: World, until: str
) -> None:
    refused = client.get("/sessions", params={"until": until}, headers=world.headers("billing"))
    assert [v["field"] for v in errors(refused)] == ["query.until"], refused.text
    accepted = client.get(
        "/sessions", params={"until": "2026-11-28T08:00:00+01:00"}, headers=world.headers("billing")
    )
    assert accepted.status_code == 200


def test_websocket_refusals_reach_the_client_as_close_codes(
    client: TestClient, world: World
) -> None:
    for headers, expected in (
        ({}, WS_UNAUTHORIZED),
        (world.headers("bad"), WS_UNAUTHORIZED),
        (world.headers("billing"), WS_NOT_FOUND),
    ):
        with client.websocket_connect("/sessions/nope/telemetry", headers=headers) as ws:
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == expected


@pytest.mark.parametrize(
    "value",
    [["M51.16"] * 65, "x" * (MAX_TEXT + 1), {"a": [[[[["deep"]]]]]}],
    ids=["many", "long", "deep"],
)
def test_an_amendment_value_is_bounded_too(client: TestClient, world: World, value: Any) -> None:
    body = {"field": "medical_necessity", "value": value, "why": "correction"}
    refused = client.post("/sessions/any/amendments", json=body, headers=world.headers("clinician"))
    assert [v["field"] for v in errors(refused)] == ["body.value"], refused.text

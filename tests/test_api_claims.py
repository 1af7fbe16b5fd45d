"""The claims ledger over HTTP: a billing run, a pull by cursor twice, corrections and voids, and
every finding of a held session, as the billing role sees them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_support import TestClient, World, make_world, running_client
from billing_records import people, record

from session.audit import AccessLog, AccessQuery


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_db_url: str) -> Iterator[World]:
    world = make_world(tmp_path_factory.mktemp("api-claims"), module_db_url)
    yield world
    world.close()


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    yield from running_client(world)


DAY = datetime(2026, 3, 14, 14, 0, tzinfo=UTC)


def test_a_billing_office_runs_claims_then_pulls_each_line_once(
    client: TestClient, world: World, tmp_path: Path
) -> None:
    billing = world.headers("billing")
    patient, pt = people(world.store, "API-1")
    record(world.store, "api-run-1", patient, pt, DAY)
    record(world.store, "api-run-2", patient, pt, DAY + timedelta(hours=1))  # same day
    record(world.store, "api-held", patient, pt, DAY + timedelta(days=1), sign=False)
    run = client.post("/claims/runs", json={"new": True}, headers=billing)
    assert run.status_code == 201, run.text
    body = run.json()
    assert len(body["sent"]) == 1 and body["held"] == 1
    statuses = {s["session_id"]: s["billing"] for s in body["sessions"]}
    assert statuses["api-run-1"]["status"] == "sent"
    assert statuses["api-run-2"]["status"] == "documented_only"
    held = statuses["api-held"]
    assert held["status"] == "held"
    assert {"code": "NO_SIGNATURE", "severity": "blocking"}.items() <= held["findings"][0].items()

    page = client.get("/claims", params={"after": 0}, headers=billing).json()
    [line] = page["lines"]
    assert line["frequency"] == "1" and line["units"] == 1 and line["cpt_code"] == "97012"
    assert line["session_ids"] == ["api-run-1", "api-run-2"]
    again = client.get("/claims", params={"after": page["next_after"]}, headers=billing).json()
    assert again["lines"] == [] and again["next_after"] == page["next_after"]

    second = client.post("/claims/runs", json={"new": True}, headers=billing).json()
    assert second["sent"] == [] and [s["session_id"] for s in second["sessions"]] == ["api-held"]

    fixed = client.post(f"/claims/{line['id']}/correct", json={"why": "payer"}, headers=billing)
    assert fixed.status_code == 201 and fixed.json()["frequency"] == "7"
    assert fixed.json()["replaces_line_id"] == line["id"]
    stale = client.post(f"/claims/{line['id']}/void", json={"why": "x"}, headers=billing)
    assert stale.status_code == 422 and "replaced by line" in stale.json()["detail"]
    voided = client.post(f"/claims/{fixed.json()['id']}/void", json={"why": "x"}, headers=billing)
    assert voided.status_code == 201 and voided.json()["frequency"] == "8"
    newer = client.get("/claims", params={"after": page["next_after"]}, headers=billing).json()
    assert [x["frequency"] for x in newer["lines"]] == ["7", "8"]


def test_claims_need_the_export_permission(client: TestClient, world: World) -> None:
    assert client.get("/claims", headers=world.headers("technician")).status_code == 403
    assert client.post("/claims/runs", json={}, headers=world.headers("admin")).status_code == 403
    bad = client.get("/claims", params={"after": -1}, headers=world.headers("billing"))
    assert bad.status_code == 422
    too_many = client.get("/claims", params={"limit": 1001}, headers=world.headers("billing"))
    assert too_many.status_code == 422


def test_an_api_amendment_of_a_signed_note_reopens_it_under_the_users_name(
    client: TestClient, world: World
) -> None:
    patient, pt = people(world.store, "API-2")
    sid = record(world.store, "api-signed", patient, pt, DAY + timedelta(days=3))
    amended = client.post(
        f"/sessions/{sid}/amendments",
        json={"field": "medical_necessity", "value": "clarified", "why": "review"},
        headers=world.headers("clinician"),
    )
    assert amended.status_code == 201 and amended.json()["author"] == "clinician"
    row = world.store.get_session(sid)
    assert row.signed_by_id is None
    log = client.get(f"/sessions/{sid}/amendments", headers=world.headers("billing")).json()
    assert any(a["field_name"] == "signed_by_id" and "reopened" in a["why"] for a in log)
    doc = client.get(f"/sessions/{sid}/export/json", headers=world.headers("billing"))
    assert doc.headers["x-billing-status"] == "held"


def test_claim_lines_pulled_and_billed_are_in_the_access_log(
    client: TestClient, world: World
) -> None:
    billing = world.headers("billing")
    patient, pt = people(world.store, "API-AUDIT")
    record(world.store, "api-audit-1", patient, pt, DAY + timedelta(days=3))
    run = client.post("/claims/runs", json={"session_ids": ["api-audit-1"]}, headers=billing)
    assert run.status_code == 201, run.text
    pulled = client.get("/claims", params={"after": 0}, headers=billing)
    assert pulled.status_code == 200
    entries = AccessLog(world.store.engine).entries(
        AccessQuery(user_name="billing", patient_reference="API-AUDIT")
    )
    assert {(e.what, e.session_id) for e in entries} == {
        ("POST /claims/runs", "api-audit-1"),
        ("GET /claims", "api-audit-1"),
    }


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field"),
    [
        ("GET", "/claims", {"params": {"after": 2**63}}, "query.after"),
        ("POST", f"/claims/{2**64}/void", {"json": {"why": "x"}}, "path.line_id"),
        ("POST", "/claims/runs", {"json": {"session_ids": ["a", "a"]}}, "body.session_ids"),
        ("POST", "/claims/runs", {"json": {"new": 1}}, "body.new"),
    ],
)
def test_claims_input_past_its_bounds_is_refused_naming_the_field(
    client: TestClient, world: World, method: str, path: str, kwargs: dict[str, Any], field: str
) -> None:
    refused = client.request(method, path, headers=world.headers("billing"), **kwargs)
    assert refused.status_code == 422, refused.text
    assert [v["field"] for v in refused.json()["violations"]] == [field]


def test_pending_shows_what_the_next_run_would_do_and_a_runs_lines_download(
    client: TestClient, world: World
) -> None:
    billing = world.headers("billing")
    patient, pt = people(world.store, "API-PEND")
    day = DAY + timedelta(days=20)
    record(world.store, "pend-ready", patient, pt, day)
    record(world.store, "pend-same-day", patient, pt, day + timedelta(hours=2))
    record(world.store, "pend-held", patient, pt, day + timedelta(days=1), sign=False)
    listed = client.get("/claims/pending", headers=billing)
    assert listed.status_code == 200, listed.text
    mine = {p["session_id"]: p for p in listed.json() if p["patient_ref"] == "API-PEND"}
    assert mine["pend-ready"]["status"] == "ready" and mine["pend-ready"]["carried_by"] is None
    assert mine["pend-same-day"]["status"] == "documented_only"
    assert mine["pend-same-day"]["carried_by"] == "pend-ready"
    held = mine["pend-held"]
    assert held["status"] == "held" and held["treating"] == "Dana Reyes"
    [unsigned] = [f for f in held["findings"] if f["code"] == "NO_SIGNATURE"]
    assert unsigned["severity"] == "blocking" and unsigned["who"] == "Dana Reyes"
    assert client.get("/claims/pending", headers=world.headers("technician")).status_code == 403

    ids = ["pend-ready", "pend-same-day", "pend-held"]
    run = client.post("/claims/runs", json={"session_ids": ids}, headers=billing).json()
    [sent] = run["sent"]
    csv = client.get(f"/claims/runs/{run['run_id']}/csv", headers=billing)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert f"claim-run-{run['run_id']}.csv" in csv.headers["content-disposition"]
    assert str(sent) in csv.text and "pend-ready" in csv.text
    x12 = client.get(f"/claims/runs/{run['run_id']}/x12", headers=billing)
    assert x12.status_code == 200 and f"TRC{sent}" in x12.text
    after = {p["session_id"] for p in client.get("/claims/pending", headers=billing).json()}
    assert "pend-held" in after and not {"pend-ready", "pend-same-day"} & after

    again = client.post("/claims/runs", json={"session_ids": ["pend-held"]}, headers=billing)
    empty = client.get(f"/claims/runs/{again.json()['run_id']}/csv", headers=billing)
    assert empty.status_code == 409 and "sent no line" in empty.json()["detail"]
    missing = client.get("/claims/runs/999999/x12", headers=billing)
    assert missing.status_code == 404 and "no claim run 999999" in missing.json()["detail"]
    wrong = client.get(f"/claims/runs/{run['run_id']}/pdf", headers=billing)
    assert wrong.status_code == 422

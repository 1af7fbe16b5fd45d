"""Sessions over HTTP against the real app: sim:// tables behind Modbus TCP, a SQLite file, a 20x
clock. Started, streamed live, controlled, stopped, exported; two tables at once; refusals."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import (
    TIME_SCALE,
    WORKSTATION,
    TestClient,
    World,
    errors,
    make_world,
    prescription,
    running_client,
    service,
    steady_bounds,
    wait_sealed,
)
from conftest_db import make_started
from pypdf import PdfReader
from starlette.websockets import WebSocketDisconnect

from devices.records import Outcome, record_name
from session.store import SessionContext
from traction.api import create_app
from traction.api.auth import WS_UNAUTHORIZED


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_db_url: str) -> Iterator[World]:
    world = make_world(tmp_path_factory.mktemp("api-sessions"), module_db_url)
    yield world
    world.close()


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    yield from running_client(world)


def start(client: TestClient, world: World, who: str = "technician", **body: Any) -> str:
    response = client.post(
        "/sessions", json=prescription(world, **body), headers=world.headers(who)
    )
    assert response.status_code == 201, response.text
    assert response.json()["running"] is True
    session_id: str = response.json()["id"]
    return session_id


def read_until(ws: Any, name: str, limit: int = 100_000) -> list[dict[str, Any]]:
    """Documents from the stream up to and including the first named ``name``."""
    docs: list[dict[str, Any]] = []
    while len(docs) < limit:
        docs.append(ws.receive_json())
        if docs[-1]["name"] == name:
            return docs
        if docs[-1]["name"] == "finished":
            raise AssertionError(f"the session finished before any {name}: {docs[-1]['doc']}")
    raise AssertionError(f"no {name} document in {limit}")


def test_a_session_is_started_streamed_live_stopped_and_exported(
    client: TestClient, world: World
) -> None:
    tech, billing = world.headers("technician"), world.headers("billing")
    session_id = start(client, world)
    table = client.get("/tables/table-1", headers=tech).json()
    assert table["live"]["session_id"] == session_id and table["state"] is None

    with client.websocket_connect(f"/sessions/{session_id}/telemetry", headers=tech) as ws:
        first = [ws.receive_json() for _ in range(20)]
        assert first[0]["name"] == "started"
        assert first[0]["doc"]["run_id"] == session_id
        assert first[0]["doc"]["profile"]["region"] == "lumbar"
        samples = [d["doc"] for d in first if d["name"] == "sample"]
        assert len(samples) >= 10 and all(s["run_id"] == session_id for s in samples)
        assert [s["seq"] for s in samples] == sorted(s["seq"] for s in samples)
        stop = client.post(f"/sessions/{session_id}/stop", headers=tech)
        assert stop.status_code == 200 and stop.json()["action"] == "stop"
        rest = read_until(ws, "finished")
    finished = rest[-1]["doc"]
    assert finished["outcome"] == "stopped" and "operator stop (technician)" in finished["reason"]

    detail = wait_sealed(client, world, session_id)
    assert detail["sealed"] and detail["outcome"] == "stopped" and not detail["running"]
    assert detail["sample_count"] == finished["sample_count"] > 10
    assert any(e["kind"] == "stop_requested" for e in detail["events"])
    assert service(client).slots["table-1"].opened.models[1].released

    exports: dict[str, bytes] = {}
    for fmt in ("pdf", "json", "fhir"):
        response = client.get(f"/sessions/{session_id}/export/{fmt}", headers=billing)
        assert response.status_code == 200, (fmt, response.text)
        assert session_id in response.headers["content-disposition"]
        assert response.headers["x-billing-status"] == "simulated"
        exports[fmt] = response.content
    pdf = PdfReader(io.BytesIO(exports["pdf"]))
    text = "".join(page.extract_text() for page in pdf.pages)
    assert "97012" in text and "SIMULATED" in text
    doc = json.loads(exports["json"])
    assert doc["session_id"] == session_id and doc["cpt_code"] == "97012"
    assert doc["simulated"] is True and doc["time_scale"] == TIME_SCALE
    assert "SIMULATED" in [f["code"] for f in doc["billing"]["findings"]]
    bundle = json.loads(exports["fhir"])
    assert bundle["resourceType"] == "Bundle" and bundle["meta"]["tag"][0]["code"] == "simulated"
    for fmt in ("csv", "x12"):  # a simulated table's session has no claim line, ever
        response = client.get(f"/sessions/{session_id}/export/{fmt}", headers=billing)
        assert response.status_code == 409 and "simulated" in response.json()["detail"]
    unknown = client.get("/sessions/nope/export/pdf", headers=billing)
    assert unknown.status_code == 404
    bad_format = client.get(f"/sessions/{session_id}/export/docx", headers=billing)
    assert bad_format.status_code == 422 and errors(bad_format)[0]["loc"][-1] == "fmt"


def test_two_tables_run_at_once_each_controlled_on_its_own(
    client: TestClient, world: World
) -> None:
    tech = world.headers("technician")
    clinician = world.headers("clinician")
    one = start(client, world, table="table-1")
    two = start(client, world, who="clinician", table="table-2", treating_clinician_id=None)
    health = client.get("/health", headers=tech).json()
    assert health["tables"] == {"table-1": one, "table-2": two}
    busy = client.post("/sessions", json=prescription(world), headers=tech)
    assert busy.status_code == 409 and one in busy.json()["detail"]

    with (
        client.websocket_connect(f"/sessions/{one}/telemetry", headers=tech) as ws1,
        client.websocket_connect(f"/sessions/{two}/telemetry", headers=clinician) as ws2,
    ):
        assert ws1.receive_json()["name"] == ws2.receive_json()["name"] == "started"
        assert client.post(f"/sessions/{one}/pause", headers=tech).status_code == 200
        read_event(ws1, "pause")  # warnings (a tick that overran) may come first
        both = [ws1.receive_json()["doc"]["run_id"], ws2.receive_json()["doc"]["run_id"]]
        assert both == [one, two]
        assert client.post(f"/sessions/{one}/resume", headers=tech).status_code == 200
        assert client.post(f"/sessions/{two}/release", headers=clinician).status_code == 200
        assert read_until(ws2, "finished")[-1]["doc"]["outcome"] == "stopped"
        assert client.post(f"/sessions/{one}/stop", headers=tech).status_code == 200
        kinds = [d["doc"].get("kind") for d in read_until(ws1, "finished")]
        assert "resume" in kinds

    first, second = wait_sealed(client, world, one), wait_sealed(client, world, two)
    assert first["outcome"] == second["outcome"] == Outcome.STOPPED.value
    assert first["sealed"] and second["sealed"]
    assert second["treating_clinician_id"] == world.clinician_id  # the clinician user's link
    assert "emergency release (clinician)" in second["outcome_reason"]
    listed = client.get("/sessions", params={"unfinished": False}, headers=tech).json()
    assert {one, two} <= {s["id"] for s in listed}
    late = client.post(f"/sessions/{one}/pause", headers=tech)
    assert late.status_code == 409 and "not running" in late.json()["detail"]
    ended = client.websocket_connect(f"/sessions/{one}/telemetry", headers=tech)
    with ended as ws:
        assert ws.receive_json() == {
            "name": "finished",
            "doc": {
                "run_id": one,
                "wall": first["ended_at"].replace("Z", "+00:00"),
                "outcome": "stopped",
                "reason": first["outcome_reason"],
                "sample_count": first["sample_count"],
            },
        }


def test_samples_page_through_the_whole_record(client: TestClient, world: World) -> None:
    tech = world.headers("technician")
    session_id = start(client, world, table="table-2")
    with client.websocket_connect(f"/sessions/{session_id}/telemetry", headers=tech) as ws:
        for _ in range(3 * 7 + 1):  # more than three pages of seven before release
            read_until(ws, "sample")
        client.post(f"/sessions/{session_id}/release", headers=tech)
        read_until(ws, "finished")
    detail = wait_sealed(client, world, session_id)
    seqs: list[int] = []
    after = -1
    while after is not None:
        page = client.get(
            f"/sessions/{session_id}/samples",
            params={"after_seq": after, "limit": 7},
            headers=tech,
        ).json()
        seqs += [s["seq"] for s in page["items"]]
        after = page["next_after_seq"]
    stored = [sample.seq for sample in world.store.iter_samples(session_id)]
    assert seqs == stored and len(seqs) == detail["sample_count"] > 3 * 7
    first_page = client.get(f"/sessions/{session_id}", params={"limit": 5}, headers=tech).json()
    assert [s["seq"] for s in first_page["samples"]["items"]] == stored[:5]
    assert first_page["samples"]["next_after_seq"] == stored[4]


def test_a_prescription_breaking_limits_is_refused_with_every_violation(
    client: TestClient, world: World
) -> None:
    tech = world.headers("technician")
    profile = {
        "mode": "intermittent",
        "region": "lumbar",
        "hold_force": "200 lbf",
        "rest_force": "20 lbf",
        "hold_s": 15,
        "rest_s": 10,
        "total_min": 5,
        "ramp_rate": "20 lbf/s",
    }
    body = prescription(world, profile_name=None, profile=profile, patient_reference="MRN-0002")
    checked = client.post("/sessions/validate", json=body, headers=tech)
    assert checked.status_code == 200 and checked.json()["ok"] is False
    fields = {v["field"] for v in checked.json()["violations"]}
    assert len(checked.json()["violations"]) >= 3
    refused = client.post("/sessions", json=body, headers=tech)
    assert refused.status_code == 422
    assert {v["field"] for v in refused.json()["violations"]} == fields
    assert any("regnan" in v["message"] for v in refused.json()["violations"])
    assert (
        client.get("/sessions", params={"patient_reference": "MRN-0002"}, headers=tech).json() == []
    )
    table = client.get("/tables/table-1", headers=tech).json()
    assert table["live"] is None and table["state"]["released"] is True
    assert table["state"]["fault"] == "none" and "fault_code" not in table["state"]  # names only

    fine = client.post("/sessions/validate", json=prescription(world), headers=tech).json()
    assert fine["ok"] is True and fine["device"]["model"] == "SIM-TX1 lumbar"


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        (
            {"profile": {"mode": "intermittent", "region": "lumbar", "hold_force": "lots"}},
            ["body", "profile", "hold_force"],
            "cannot read force",
        ),
        (
            {"profile": {"mode": "sideways", "region": "lumbar"}},
            ["body", "profile", "mode"],
            "not one of",
        ),
        ({"profile_name": "../../etc/passwd"}, ["body", "profile_name"], "not a profile"),
        (
            {"profile_name": "demo", "profile": {"mode": "continuous"}},
            ["body", "profile"],
            "exactly one",
        ),
        ({"patient_reference": "MRN-9999"}, ["body", "patient_reference"], "no patient"),
        ({"treating_clinician_id": 4242}, ["body", "treating_clinician_id"], "no clinician"),
        ({"pull_angle_deg": 120}, ["body", "pull_angle_deg"], "less than or equal to 90"),
        ({"table": 5}, ["body", "table"], "string"),
        ({"tabel": "table-1"}, ["body", "tabel"], "Extra inputs"),
    ],
)
def test_request_errors_name_the_field_and_why(
    client: TestClient, world: World, change: dict[str, Any], loc: list[str], words: str
) -> None:
    body = prescription(world)
    if "profile" in change and "profile_name" not in change:
        del body["profile_name"]
    body.update(change)
    response = client.post("/sessions/validate", json=body, headers=world.headers("technician"))
    assert response.status_code == 422, response.text
    [error] = [e for e in errors(response) if e["loc"] == loc]
    assert words in error["msg"]


def test_absurd_profile_values_are_refused_at_once_naming_every_field(
    client: TestClient, world: World
) -> None:
    profile = {
        "mode": "intermittent",
        "region": "lumbar",
        "hold_force": "35 lbf",
        "rest_force": "0 lbf",
        "hold_s": 15,
        "rest_s": 10,
        "total_s": 1e300,
        "progression_steps": 1_000_000_000,
        "ramp_rate": "5 lbf/s",
        "angle_deg": 400,
    }
    body = prescription(world, profile_name=None, profile=profile)
    response = client.post("/sessions/validate", json=body, headers=world.headers("technician"))
    assert response.status_code == 422, response.text
    found = {tuple(e["loc"]): e for e in errors(response)}
    assert set(found) == {
        ("body", "profile", "total_s"),
        ("body", "profile", "progression_steps"),
        ("body", "profile", "angle_deg"),
    }
    assert found[("body", "profile", "total_s")]["value"] == "1e+300 s"
    assert "at most 14400 s" in found[("body", "profile", "total_s")]["msg"]


def test_unknown_table_is_404_and_names_the_tables(client: TestClient, world: World) -> None:
    response = client.post(
        "/sessions", json=prescription(world, table="table-9"), headers=world.headers("technician")
    )
    assert response.status_code == 404
    assert "table-1, table-2" in response.json()["detail"]


LBF_N = 4.4482216152605
DEMO_HOLD_N = 35 * LBF_N
NEW_PROFILE = {
    "mode": "intermittent",
    "region": "lumbar",
    "hold_force": "25 lbf",
    "rest_force": "10 lbf",
    "hold_s": 6,
    "rest_s": 5,
    "total_min": 2,
    "ramp_rate": "5 lbf/s",
}


def read_event(ws: Any, kind: str, words: str = "") -> dict[str, Any]:
    """The first event of ``kind`` whose reason holds ``words``, from the stream."""
    while True:
        doc = read_until(ws, "event")[-1]["doc"]
        if doc["kind"] == kind and words in doc["reason"]:
            return doc


def test_a_live_settings_change_is_recorded_and_the_samples_follow_it(
    client: TestClient, world: World
) -> None:
    tech = world.headers("technician")
    session_id = start(client, world)
    new_hold_n = 25 * LBF_N  # the demo holds 17.5 lbf, then 35 lbf: never 25
    with client.websocket_connect(f"/sessions/{session_id}/telemetry", headers=tech) as ws:
        read_until(ws, "sample")
        body = {"profile": NEW_PROFILE, "reason": "patient asked for less"}
        changed = client.post(f"/sessions/{session_id}/settings", json=body, headers=tech)
        assert changed.status_code == 200, changed.text
        assert changed.json() == {
            "session_id": session_id,
            "applied": True,
            "detail": "takes effect at the next tick",
            "violations": [],
        }
        assert read_event(ws, "settings_changed")["data"]["new"]["hold_s"] == 6
        held_new = False  # through one whole hold at the new force, to the rest after it
        while True:
            sample = read_until(ws, "sample")[-1]["doc"]
            if sample["phase"] == "hold" and sample["target_n"] == pytest.approx(new_hold_n):
                held_new = True
            elif held_new and sample["phase"] == "rest":
                break
        assert client.post(f"/sessions/{session_id}/stop", headers=tech).status_code == 200
        read_until(ws, "finished")

    detail = wait_sealed(client, world, session_id)
    [event] = [e for e in detail["events"] if e["kind"] == "settings_changed"]
    assert event["reason"] == "settings changed (patient asked for less (technician))"
    assert event["data"]["new"]["hold_force_n"] == pytest.approx(new_hold_n)
    assert event["data"]["old"]["hold_force_n"] == pytest.approx(DEMO_HOLD_N)
    after = [s for s in world.store.iter_samples(session_id) if s.t >= event["t"]]
    held = [s.seq for s in after if s.phase == "hold" and s.target_n == pytest.approx(new_hold_n)]
    assert held, "no sample held the new force"
    assert all(s.target_n <= new_hold_n + 1e-6 for s in after if s.seq >= held[0])
    assert detail["settings"]["profile"]["hold_force_n"] == pytest.approx(DEMO_HOLD_N)


def test_a_settings_change_above_the_limits_is_refused_and_the_session_runs_on(
    client: TestClient, world: World
) -> None:
    tech = world.headers("technician")
    session_id = start(client, world)
    url = f"/sessions/{session_id}/settings"
    too_much = {"profile": {**NEW_PROFILE, "hold_force": "200 lbf"}, "operator_confirmed": True}
    with client.websocket_connect(f"/sessions/{session_id}/telemetry", headers=tech) as ws:
        read_until(ws, "sample")
        refused = client.post(url, json=too_much, headers=tech)
        assert refused.status_code == 422, refused.text
        assert "settings not changed" in refused.json()["detail"]
        violations = refused.json()["violations"]
        assert any(v["field"] == "hold_force" and v["severity"] == "block" for v in violations)
        assert all(set(v) == {"field", "value", "limit", "message", "severity"} for v in violations)
        warning = read_event(ws, "warning", "settings change refused")
        assert "(operator settings change (technician))" in warning["reason"]
        assert warning["data"]["violations"] == violations
        cervical = {"profile_name": "cervical-intermittent"}
        wrong_region = client.post(url, json=cervical, headers=tech)
        assert wrong_region.status_code == 422
        assert "region" in {v["field"] for v in wrong_region.json()["violations"]}
        neither = client.post(url, json={"operator_confirmed": True}, headers=tech)
        assert neither.status_code == 422
        assert errors(neither)[0]["loc"] == ["body", "profile"]
        assert read_until(ws, "sample")[-1]["doc"]["run_id"] == session_id
        live = client.get("/tables/table-1", headers=tech).json()["live"]
        assert live["session_id"] == session_id
        assert client.post(f"/sessions/{session_id}/release", headers=tech).status_code == 200
        read_until(ws, "finished")

    detail = wait_sealed(client, world, session_id)
    kinds = [e["kind"] for e in detail["events"]]
    assert "settings_changed" not in kinds
    assert sum("settings change refused" in e["reason"] for e in detail["events"]) == 2
    samples = list(world.store.iter_samples(session_id))
    assert max(s.target_n for s in samples) <= DEMO_HOLD_N + 1e-6
    assert detail["settings"]["profile"]["hold_force_n"] == pytest.approx(DEMO_HOLD_N)
    late = client.post(url, json={"profile_name": "demo"}, headers=tech)
    assert late.status_code == 409 and "not running" in late.json()["detail"]


def test_clinicians_amend_documentation_but_never_recorded_data(
    client: TestClient, world: World
) -> None:
    clinician = world.headers("clinician")
    session_id = start(client, world, who="clinician", table="table-2")
    client.post(f"/sessions/{session_id}/release", headers=clinician)
    wait_sealed(client, world, session_id)
    url = f"/sessions/{session_id}/amendments"
    body = {"field": "diagnosis_codes", "value": ["M54.16"], "why": "coding correction"}
    amended = client.post(url, json=body, headers=clinician)
    assert amended.status_code == 201 and amended.json()["author"] == "clinician"
    assert amended.json()["old_value"] == ["M51.16"]
    for field, value in (("outcome", "completed"), ("sample_count", 0), ("settings", {})):
        refused = client.post(
            url, json={"field": field, "value": value, "why": "x"}, headers=clinician
        )
        assert refused.status_code == 422
        assert errors(refused)[0]["loc"] == ["body", "field"]
        assert "never writable" in errors(refused)[0]["msg"]
    deleted = {"field": "diagnosis_codes", "value": ["M54.16", "M54.5"], "why": "x"}
    refused = client.post(url, json=deleted, headers=clinician)
    assert refused.status_code == 422 and errors(refused)[0]["loc"] == ["body", "value", 1]
    wrong_type = {"field": "pull_angle_deg", "value": "steep", "why": "x"}
    refused = client.post(url, json=wrong_type, headers=clinician)
    assert refused.status_code == 422 and errors(refused)[0]["loc"] == ["body", "value"]
    log = client.get(url, headers=world.headers("billing")).json()
    assert [(a["field_name"], a["new_value"]) for a in log] == [("diagnosis_codes", ["M54.16"])]
    detail = client.get(f"/sessions/{session_id}", headers=clinician).json()
    assert detail["diagnosis_codes"] == ["M54.16"] and detail["sealed"]


def test_shutdown_releases_running_sessions_and_start_up_recovers_interrupted_ones(
    tmp_path: Path, db_url: str
) -> None:
    world = make_world(tmp_path, db_url)
    patient = world.store.patient_by_reference(world.patient_ref)
    context = SessionContext(patient.id or 0, world.clinician_id, WORKSTATION, ("lumbar",))
    elsewhere = SessionContext(patient.id or 0, world.clinician_id, "other-ws", ("lumbar",))
    orphan = world.store.create_session(make_started(), context).id
    foreign = world.store.create_session(make_started(), elsewhere).id
    with TestClient(create_app(world.settings)) as client, steady_bounds(service(client)):
        tech = world.headers("technician")
        recovered = client.get(f"/sessions/{orphan}", headers=tech).json()
        assert recovered["outcome"] == "interrupted" and recovered["sealed"]
        assert client.get(f"/sessions/{foreign}", headers=tech).json()["outcome"] is None
        session_id = start(client, world)
        model = service(client).slots["table-1"].opened.models[1]
        with client.websocket_connect(f"/sessions/{session_id}/telemetry", headers=tech) as ws:
            read_until(ws, "sample")
    row = world.store.get_session(session_id)
    assert row.outcome == "stopped" and row.sealed_at is not None
    assert "service shutting down" in (row.outcome_reason or "")
    assert model.released and not model.running
    world.close()


def test_a_listener_that_arrives_after_the_end_gets_the_end_and_its_stream_closes(
    client: TestClient, world: World
) -> None:
    """The telemetry route looks a session up while it runs and subscribes a moment later (after
    an audit write that can be slow): a session that ended in between must still end that
    listener's stream with ``finished``, never leave it open and silent."""
    session_id = start(client, world)
    running = service(client).running(session_id)
    assert running is not None
    client.post(f"/sessions/{session_id}/release", headers=world.headers("technician"))
    wait_sealed(client, world, session_id)

    async def listen_late() -> list[str]:
        queue = running.listen()

        async def names() -> list[str]:
            return [record_name(record) async for record in queue]

        return await asyncio.wait_for(names(), 10.0)

    assert client.portal is not None
    assert client.portal.call(listen_late) == ["started", "finished"]


def test_a_browser_passes_its_token_as_websocket_subprotocols(
    client: TestClient, world: World
) -> None:
    """Browsers cannot set headers on a WebSocket: they offer ["bearer", token] instead, and the
    handshake must echo "bearer". A bad token offered that way is refused like any other."""
    session_id = start(client, world)
    url = f"/sessions/{session_id}/telemetry"
    with client.websocket_connect(url, subprotocols=["bearer", world.tokens["billing"]]) as ws:
        assert ws.accepted_subprotocol == "bearer"
        assert ws.receive_json()["name"] == "started"
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect(url, subprotocols=["bearer", "trk_forged"]) as ws,
    ):
        ws.receive_json()
    assert refused.value.code == WS_UNAUTHORIZED
    client.post(f"/sessions/{session_id}/release", headers=world.headers("technician"))
    wait_sealed(client, world, session_id)

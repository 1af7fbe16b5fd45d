"""A lock-severity trip over HTTP: the alarm stays raised in GET /tables, POST /sessions is refused
with 423 until someone allowed to run the table acknowledges it, and who and why are recorded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from api_support import (
    WORKSTATION,
    TestClient,
    World,
    errors,
    make_world,
    prescription,
    running_client,
    service,
    wait_sealed,
)

from session.lockouts import Lockouts


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_db_url: str) -> Iterator[World]:
    world = make_world(tmp_path_factory.mktemp("api-lockouts"), module_db_url)
    yield world
    world.close()


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    yield from running_client(world)


def tables(client: TestClient, world: World) -> dict[str, dict[str, Any]]:
    listed = client.get("/tables", headers=world.headers("technician"))
    assert listed.status_code == 200
    return {t["name"]: t for t in listed.json()}


def wait_locked(client: TestClient, world: World, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        table = tables(client, world)[name]
        if table["locked"]:
            return table
        time.sleep(0.1)
    raise AssertionError(f"table {name} was not locked within 30 s")


def test_a_hard_limit_trip_raises_an_alarm_that_blocks_starts_until_acknowledged(
    client: TestClient, world: World
) -> None:
    tech, clinician = world.headers("technician"), world.headers("clinician")
    svc = service(client)
    shipped = svc.limits
    # A runaway motor, with the over-target and tracking checks widened so the hard limit trips.
    svc.limits = replace(
        shipped,
        supervisor=replace(
            shipped.supervisor, over_target_tolerance_n=1000.0, tracking_time_s=60.0
        ),
    )
    model = svc.slots["table-1"].opened.models[1]
    model.faults.runaway = True
    try:
        started = client.post("/sessions", json=prescription(world), headers=tech)
        assert started.status_code == 201, started.text
        session_id = started.json()["id"]
        detail = wait_sealed(client, world, session_id)
        table = wait_locked(client, world, "table-1")
    finally:
        model.faults.runaway = False
        svc.limits = shipped
    assert detail["outcome"] == "tripped"
    [alarm] = table["alarms"]
    # The host's hard limit, or the table's own copy of it on its independent channel (armed
    # with the same force, it often sees the runaway first): both lock.
    assert alarm["fault"] in ("hard_limit", "force_limit")
    assert alarm["session_id"] == session_id and alarm["reason"] == detail["outcome_reason"]
    assert alarm["acknowledged_at"] is None
    assert tables(client, world)["table-2"]["locked"] is False  # only that table

    refused = client.post("/sessions", json=prescription(world), headers=tech)
    assert refused.status_code == 423
    assert "table table-1 is locked" in refused.json()["detail"]
    assert "POST /tables/table-1/ack" in refused.json()["detail"]
    other = client.post("/sessions", json=prescription(world, table="table-2"), headers=tech)
    assert other.status_code == 201, other.text
    client.post(f"/sessions/{other.json()['id']}/release", headers=tech)

    for role in ("billing", "admin"):
        body = {"reason": "looked fine"}
        denied = client.post("/tables/table-1/ack", json=body, headers=world.headers(role))
        assert denied.status_code == 403
    empty = client.post("/tables/table-1/ack", json={"reason": ""}, headers=clinician)
    assert empty.status_code == 422 and errors(empty)[0]["loc"] == ["body", "reason"]
    assert tables(client, world)["table-1"]["locked"] is True

    why = "patient checked, no distress; motor driver inspected"
    acked = client.post("/tables/table-1/ack", json={"reason": why}, headers=clinician)
    assert acked.status_code == 200, acked.text
    body = acked.json()
    assert body["acknowledged_by"] == "clinician (clinician)" and body["reason"] == why
    assert body["table_state"] == "ready"  # the fault the table latched is cleared too
    assert [a["id"] for a in body["alarms"]] == [alarm["id"]]
    assert body["alarms"][0]["acknowledged_at"] is not None
    cleared = tables(client, world)["table-1"]
    assert cleared["locked"] is False and cleared["alarms"] == []
    history = Lockouts(world.store.engine).history(WORKSTATION, "table-1")
    assert [(e.kind, e.who, e.why) for e in history][-1] == (
        "acknowledged",
        "clinician (clinician)",
        why,
    )

    again = client.post("/tables/table-1/ack", json={"reason": why}, headers=tech)
    assert again.status_code == 409 and "not locked" in again.json()["detail"]
    unknown = client.post("/tables/nope/ack", json={"reason": why}, headers=tech)
    assert unknown.status_code == 404

    restarted = client.post("/sessions", json=prescription(world), headers=tech)
    assert restarted.status_code == 201, restarted.text
    client.post(f"/sessions/{restarted.json()['id']}/stop", headers=tech)
    wait_sealed(client, world, restarted.json()["id"])

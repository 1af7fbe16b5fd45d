"""Bearer tokens and roles over the whole API: every role against every route, and the 401s."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from api_support import TIME_SCALE, TestClient, World, errors, make_world, running_client
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.websockets import WebSocketDisconnect

from session.accounts import Role
from traction.api.access import PUBLIC_PATHS, ROUTE_PERMISSIONS, WEBSOCKET, Permission, routes_for
from traction.api.app import ROUTERS
from traction.api.auth import WS_FORBIDDEN, WS_UNAUTHORIZED


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_db_url: str) -> Iterator[World]:
    world = make_world(tmp_path_factory.mktemp("api-access"), module_db_url)
    yield world
    world.close()


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    yield from running_client(world)


DUMMY = {
    "{name}": "no-such-thing",
    "{session_id}": "no-such-session",
    "{fmt}": "json",
    "{token_id}": "999999",
}


def concrete(path: str) -> str:
    for placeholder, value in DUMMY.items():
        path = path.replace(placeholder, value)
    return path


def call(client: TestClient, method: str, path: str, token: str | None) -> int:
    """Call a route with harmless arguments (unknown ids, empty bodies); return the status, or
    for the WebSocket route the close code (1000 when it was accepted)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    if method == WEBSOCKET:
        try:
            with client.websocket_connect(concrete(path), headers=headers) as ws:
                ws.receive_json()
        except WebSocketDisconnect as closed:
            return closed.code
        return 1000
    kwargs: dict[str, Any] = {"headers": headers}
    if method == "POST":
        kwargs["json"] = {}
    return client.request(method, concrete(path), **kwargs).status_code


def test_the_matrix_names_every_route_of_the_app_and_no_other(client: TestClient) -> None:
    served = set()
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute):
                served |= {(m, route.path) for m in route.methods}
            else:
                assert isinstance(route, APIWebSocketRoute)
                served.add((WEBSOCKET, route.path))
    assert served == set(ROUTE_PERMISSIONS)
    assert not {path for _, path in served} & PUBLIC_PATHS
    spec = client.get("/openapi.json").json()
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert documented == {r for r in ROUTE_PERMISSIONS if r[0] != WEBSOCKET}


@pytest.mark.parametrize("role", list(Role), ids=str)
def test_each_role_reaches_exactly_its_routes(
    client: TestClient,
    world: World,
    role: Role,
) -> None:
    reached, refused = set(), set()
    for method, path in ROUTE_PERMISSIONS:
        code = call(client, method, path, world.tokens[role.value])
        assert code not in (401, WS_UNAUTHORIZED), (method, path, code)
        if code in (403, WS_FORBIDDEN):
            refused.add((method, path))
        else:
            reached.add((method, path))
    assert reached == routes_for(role)
    assert refused == set(ROUTE_PERMISSIONS) - routes_for(role)


def test_the_matrix_gives_each_role_what_the_clinic_expects() -> None:
    start, amend = ("POST", "/sessions"), ("POST", "/sessions/{session_id}/amendments")
    change = ("POST", "/sessions/{session_id}/settings")
    export = ("GET", "/sessions/{session_id}/export/{fmt}")
    add_user, read = ("POST", "/admin/users"), ("GET", "/sessions/{session_id}")
    add_patient, add_clinician = ("POST", "/patients"), ("POST", "/clinicians")
    people = {("GET", "/patients"), ("GET", "/clinicians")}
    live = (WEBSOCKET, "/sessions/{session_id}/telemetry")
    ack = ("POST", "/tables/{name}/ack")  # clearing a safety lock: only who runs the table
    expected = {
        Role.TECHNICIAN: {start, change, ack, read, live, *people},
        Role.CLINICIAN: {start, change, ack, amend, export, add_patient, read, live, *people},
        Role.BILLING: {export, read, live, *people},
        Role.ADMIN: {add_user, add_patient, add_clinician, read, live, *people},
    }
    guarded = {start, change, ack, amend, export, add_user, add_patient, add_clinician}
    for role, granted in expected.items():
        mine = routes_for(role)
        assert granted <= mine, role
        assert not (guarded - granted) & mine, role
    writes = {r for r in ROUTE_PERMISSIONS if r[0] == "POST"}
    assert all(ROUTE_PERMISSIONS[r] is not Permission.READ for r in writes)


@pytest.mark.parametrize("case", ["none", "bad", "expired"])
def test_no_token_a_bad_token_and_an_expired_token_get_401_everywhere(
    client: TestClient,
    world: World,
    case: str,
) -> None:
    token = None if case == "none" else world.tokens[case]
    for method, path in ROUTE_PERMISSIONS:
        expected = WS_UNAUTHORIZED if method == WEBSOCKET else 401
        assert call(client, method, path, token) == expected, (method, path)
    response = client.get("/tables", headers={"Authorization": f"Bearer {token}"})
    assert response.headers["www-authenticate"] == "Bearer"
    assert "token" in response.json()["detail"]


def test_a_refusal_names_the_role_the_route_and_the_permission(
    client: TestClient,
    world: World,
) -> None:
    response = client.post("/sessions", json={}, headers=world.headers("billing"))
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "role billing may not POST /sessions; it needs the run permission"
    )


def test_admin_manages_accounts_but_never_mints_a_token_for_someone_else(
    client: TestClient,
    world: World,
) -> None:
    admin = world.headers("admin")
    created = client.post("/admin/users", json={"name": "kim", "role": "billing"}, headers=admin)
    assert created.status_code == 201 and created.json()["role"] == "billing"
    duplicate = client.post("/admin/users", json={"name": "kim", "role": "billing"}, headers=admin)
    assert duplicate.status_code == 422 and errors(duplicate)[0]["loc"] == ["body", "name"]
    bad_role = client.post("/admin/users", json={"name": "lou", "role": "nurse"}, headers=admin)
    assert bad_role.status_code == 422 and errors(bad_role)[0]["loc"] == ["body", "role"]

    for_kim = client.post("/admin/tokens", json={"user": "kim"}, headers=admin)
    assert for_kim.status_code == 403 and "traction tokens create kim" in for_kim.json()["detail"]
    assert world.accounts.tokens("kim") == []

    own = client.post("/admin/tokens", json={"label": "second screen"}, headers=admin)
    assert own.status_code == 201 and own.json()["user"] == "admin"
    second_screen = {"Authorization": f"Bearer {own.json()['token']}"}
    assert client.get("/me", headers=second_screen).json()["name"] == "admin"
    named = client.post("/admin/tokens", json={"user": "admin"}, headers=admin)
    assert named.status_code == 201 and named.json()["user"] == "admin"

    token = world.accounts.issue_token("kim", 1, "front desk")  # on the workstation, by the CLI
    kim = {"Authorization": f"Bearer {token.plaintext}"}
    assert client.get("/me", headers=kim).json()["permissions"] == ["export", "read"]
    listed = client.get("/admin/tokens", params={"user": "kim"}, headers=admin)
    assert [t["label"] for t in listed.json()] == ["front desk"]
    assert token.plaintext not in listed.text
    revoked = client.post(f"/admin/tokens/{token.token.id}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert client.get("/me", headers=kim).status_code == 401

    again = world.accounts.issue_token("kim", 1).plaintext
    assert client.get("/me", headers={"Authorization": f"Bearer {again}"}).status_code == 200
    assert client.post("/admin/users/kim/deactivate", headers=admin).json()["active"] is False
    assert client.get("/me", headers={"Authorization": f"Bearer {again}"}).status_code == 401

    itself = client.post("/admin/users/admin/deactivate", headers=admin)
    assert itself.status_code == 409 and "itself" in itself.json()["detail"]
    assert client.get("/me", headers=admin).status_code == 200
    settings = client.get("/admin/settings", headers=admin).json()
    assert settings["sim_time_scale"] == TIME_SCALE and len(settings["tables"]) == 2


def test_openapi_documents_every_route_with_security_and_responses(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert (method.upper(), path) in ROUTE_PERMISSIONS
            assert operation["security"] == [{"bearerToken": []}], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
            ok = operation["responses"].get("200") or operation["responses"].get("201")
            assert ok and ok.get("content"), (method, path)
    schemas = spec["components"]["schemas"]
    assert {"SessionDetailOut", "PrescriptionIn", "RefusedOut", "TokenIssuedOut"} <= set(schemas)

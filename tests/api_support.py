"""Shared set-up for the API tests: a real app on SQLite or PostgreSQL with two sim:// tables (Modbus TCP
simulators in-process, clock 2x), a patient, a clinician, and a token for each role."""

from __future__ import annotations

import contextlib
import time
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bounds_support import steady

from session.accounts import Accounts, Role
from session.db import make_engine, upgrade
from session.models import Discipline
from session.store import Store
from traction.api import create_app
from traction.service import WorkstationService
from traction.settings import Settings, TableSetting

with warnings.catch_warnings():
    # Starlette asks for httpx2 (not installed here); the TestClient works the same on httpx.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

TIME_SCALE = 2.0
"""Fast enough that a stopped session takes a few seconds; slow enough that every session-time
bound keeps a real-time margin a busy two-core test machine can hold while the app, its database
and the simulated tables share one process: the supervisor's 0.5 s staleness is 250 ms real, the
table's heartbeat watchdog (1 s of session time) 500 ms, and 50 Hz ticks are 100 per second."""
WORKSTATION = "ws-api"


@dataclass
class World:
    """Everything a test needs to talk to the app as any role."""

    settings: Settings
    store: Store
    accounts: Accounts
    tokens: dict[str, str] = field(default_factory=dict)  # role (or a case) -> plaintext token
    patient_ref: str = "MRN-0001"
    clinician_id: int = 0

    def close(self) -> None:
        _close(self.store, self.accounts)

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def _close(store: Store, accounts: Accounts) -> None:
    """Give back every connection of a world's store (its writer's own, then the pool)."""
    store.close()
    store.engine.dispose()
    accounts.engine.dispose()


def make_world(tmp: Path, url: str) -> World:
    """The app's settings and people on an empty database at ``url`` (see conftest_db)."""
    upgrade(url)
    engine = make_engine(url)
    store, accounts = Store(engine), Accounts(engine)
    store.add_patient("MRN-0001", 82.0, payer_id="medicare")
    store.add_patient("MRN-0002", 64.0, contraindications=["pregnancy"])
    clinician = store.add_clinician("Dana Reyes", "PT, DPT", Discipline.PT, "1234567893")
    settings = Settings(
        data_dir=tmp,
        database_url=url,
        workstation=WORKSTATION,
        sim_time_scale=TIME_SCALE,
        tables=[
            TableSetting(name="table-1", url="sim://lumbar"),
            TableSetting(name="table-2", url="sim://spare?seed=7"),
        ],
    )
    world = World(settings, store, accounts, clinician_id=clinician.id or 0)
    # a test that fails before its world.close() still gives its connections back
    weakref.finalize(world, _close, store, accounts)
    for role in Role:
        user = accounts.create_user(
            role.value, role, clinician.id if role is Role.CLINICIAN else None
        )
        world.tokens[role.value] = accounts.issue_token(user, ttl_hours=1).plaintext
    accounts.create_user("late", Role.ADMIN)
    past = datetime.now(UTC) - timedelta(hours=2)
    world.tokens["expired"] = accounts.issue_token("late", ttl_hours=1, now=past).plaintext
    world.tokens["bad"] = "trk_" + "x" * 43
    return world


def running_client(world: World) -> Iterator[TestClient]:
    """The app started (service, tables, simulators) for the duration of a ``with``/fixture, its
    sessions on :func:`steady_bounds`."""
    with TestClient(create_app(world.settings)) as test_client, steady_bounds(service(test_client)):
        yield test_client


@contextlib.contextmanager
def steady_bounds(svc: WorkstationService) -> Iterator[WorkstationService]:
    """``svc`` starting sessions on :func:`bounds_support.steady` bounds, for tests about
    something other than those bounds (that module says why)."""
    shipped = svc.limits
    svc.limits = steady(shipped)
    try:
        yield svc
    finally:
        svc.limits = shipped


def service(client: TestClient) -> WorkstationService:
    svc: WorkstationService = client.app.state.service  # type: ignore[attr-defined]
    return svc


def prescription(world: World, table: str = "table-1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "table": table,
        "profile_name": "demo",
        "patient_reference": world.patient_ref,
        "treating_clinician_id": world.clinician_id,
        "diagnosis_codes": ["M51.16"],
        "medical_necessity": "Radiculopathy; traction to reduce nerve root compression.",
        "plan_of_care_ref": "POC-17",
    }
    body.update(extra)
    for key in ("profile", "profile_name"):  # None: leave it out (the API refuses a null)
        if key in body and body[key] is None:
            del body[key]
    return body


def wait_sealed(client: TestClient, world: World, session_id: str) -> dict[str, Any]:
    """The session's detail once it is recorded, sealed and its treatment task has ended
    (the seal is written just before the task returns)."""
    deadline = time.monotonic() + 30.0
    while True:
        detail: dict[str, Any] = client.get(
            f"/sessions/{session_id}", params={"limit": 1}, headers=world.headers("technician")
        ).json()
        if detail["sealed"] and not detail["running"]:
            return detail
        if time.monotonic() > deadline:
            raise AssertionError(f"session {session_id} not sealed and ended in 30 s: {detail}")
        time.sleep(0.1)


def errors(response: Any) -> list[dict[str, Any]]:
    """A 422 refusal's violations, each with ``loc`` (its field split back into parts, list
    positions as ints) and ``msg``; asserts the refusal shape on the way."""
    body = response.json()
    assert response.status_code == 422 and isinstance(body["detail"], str), body
    found = []
    for item in body["violations"]:
        assert set(item) == {"field", "value", "limit", "message", "severity"}, item
        loc = [int(p) if p.isdigit() else p for p in item["field"].split(".")]
        found.append({"loc": loc, "msg": item["message"], **item})
    return found

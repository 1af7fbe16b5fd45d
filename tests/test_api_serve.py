"""``traction serve``'s service on a real uvicorn, bound to a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import httpx
import pytest
from api_support import make_world, prescription

from session.db import SchemaError, current_revision, head_revision, make_engine, upgrade
from traction.commands.serve import http_server
from traction.service import WorkstationService
from traction.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_up(http: httpx.AsyncClient) -> None:
    for _ in range(400):
        with contextlib.suppress(httpx.TransportError):
            await http.get("/health")
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the service never answered")


def test_the_service_binds_to_loopback_unless_configured() -> None:
    assert Settings().bind_host == "127.0.0.1"


async def test_a_real_server_serves_tokens_only_and_releases_sessions_on_the_way_out(
    tmp_path: Path, db_url: str
) -> None:
    world = make_world(tmp_path, db_url)
    port = free_port()
    async with WorkstationService(world.settings) as service:
        server = http_server(world.settings, service, "127.0.0.1", port)
        serving = asyncio.create_task(server.serve())
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            await wait_up(http)
            assert (await http.get("/tables")).status_code == 401
            health = await http.get("/health", headers=world.headers("billing"))
            assert health.status_code == 200
            assert health.json()["schema_revision"] == head_revision()
            started = await http.post(
                "/sessions", json=prescription(world), headers=world.headers("technician")
            )
            assert started.status_code == 201, started.text
            session_id = started.json()["id"]
        server.should_exit = True  # what Ctrl-C does
        await serving
        assert service.running(session_id) is not None
    row = world.store.get_session(session_id)
    assert row.outcome == "stopped" and row.sealed_at is not None
    assert "shutting down" in (row.outcome_reason or "")
    world.close()


async def test_the_service_creates_an_empty_store_but_never_upgrades_one_in_use(
    tmp_path: Path,
) -> None:
    """Upgrading a shared store locks out every workstation still on the older software, so only
    ``traction db upgrade`` does it, on purpose; a fresh store is simply created."""
    old = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(old, "0002")
    engine = make_engine(old)
    with engine.begin() as conn:  # a patient as that older schema holds one
        conn.exec_driver_sql(
            "INSERT INTO patients (reference, body_weight_kg, sex, contraindications) "
            "VALUES ('MRN-1', 70.0, 'unknown', '[]')"
        )
    settings = Settings(data_dir=tmp_path / "a", database_url=old, tables=[])
    with pytest.raises(SchemaError, match="older than this software needs.*traction db upgrade"):
        async with WorkstationService(settings):
            pass
    assert current_revision(engine) == "0002"
    engine.dispose()

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    settings = Settings(data_dir=tmp_path / "b", database_url=fresh, tables=[])
    async with WorkstationService(settings) as service:
        assert service.schema_revision == head_revision()
        assert service.identity is not None

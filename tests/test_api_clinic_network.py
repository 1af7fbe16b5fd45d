"""The service on a clinic network: TLS from `traction tls self-signed`, no plain HTTP off
loopback, logs without patient references or tokens, and the access log of who read or exported
which patient's records."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import websockets
from api_support import World, make_world, prescription
from served import Served, serving, with_tls
from typer.testing import CliRunner

from devices.errors import ConfigError
from session.audit import Access, AccessLog, AccessQuery
from traction.api.auth import WS_UNAUTHORIZED
from traction.api.routes.telemetry import WS_NOT_FOUND
from traction.cli import app as cli
from traction.exitcodes import Exit
from traction.logs import configure_logging
from traction.settings import Settings
from traction.tls import check_exposure, self_signed


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, World]]:
    folder = tmp_path_factory.mktemp("clinic-network")
    # TLS, logs and the contract are the HTTP layer's: one backend is enough here
    world = with_tls(make_world(folder, f"sqlite:///{folder / 'traction.db'}"), folder / "tls")
    with serving(world) as server:
        yield server, world


def https(server: Served) -> httpx.Client:
    trusted = ssl.create_default_context(cafile=str(server.ca))
    return httpx.Client(base_url=server.base_url, verify=trusted, timeout=30)


def test_the_api_is_served_over_tls_to_clients_that_trust_the_clinic_authority(
    served: tuple[Served, World],
) -> None:
    server, world = served
    with https(server) as http:
        health = http.get("/health", headers=world.headers("billing"))
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert http.get("/health").status_code == 401
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{server.base_url}/health", timeout=30)  # the system's authorities only
    plain = server.base_url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{plain}/health", headers=world.headers("billing"), timeout=30)


def test_websocket_close_codes_reach_a_real_client_over_tls(served: tuple[Served, World]) -> None:
    server, world = served
    context = ssl.create_default_context(cafile=str(server.ca))
    url = server.base_url.replace("https://", "wss://") + "/sessions/nope/telemetry"

    async def close_code(headers: dict[str, str]) -> int | None:
        async with websockets.connect(url, ssl=context, additional_headers=headers) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 30)
            return closed.value.rcvd.code if closed.value.rcvd else None

    assert asyncio.run(close_code({})) == WS_UNAUTHORIZED
    assert asyncio.run(close_code(world.headers("technician"))) == WS_NOT_FOUND


def test_logs_name_routes_and_users_but_no_patient_reference_query_or_token(
    served: tuple[Served, World], capfd: pytest.CaptureFixture[str]
) -> None:
    server, world = served
    root, client_log = logging.getLogger(), logging.getLogger("httpx")
    saved = (root.handlers[:], root.level)
    configure_logging("info", json=True)
    client_log.setLevel(logging.WARNING)  # the test's own client logs the URLs it asks for
    try:
        with https(server) as http:
            listed = http.get(
                "/sessions",
                params={"patient_reference": "MRN-0002", "clinician_id": 1},
                headers=world.headers("billing"),
            )
            assert listed.status_code == 200
            refused = http.post(
                "/sessions/validate",
                json=prescription(world, patient_reference="MRN-0002", pull_angle_deg=400),
                headers=world.headers("technician"),
            )
            assert refused.status_code == 422
            assert http.get("/me", headers=world.headers("bad")).status_code == 401
        time.sleep(0.2)  # the server thread writes its lines as it answers
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        client_log.setLevel(logging.NOTSET)
    written = capfd.readouterr()
    text = written.out + written.err
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "http request"]
    assert {(r["method"], r["route"], r["status"], r["user"]) for r in requests} >= {
        ("GET", "/sessions", 200, "billing"),
        ("POST", "/sessions/validate", 422, "technician"),
        ("GET", "/me", 401, "-"),
    }
    assert "MRN-0002" not in text and "patient_reference" not in text and "clinician_id" not in text
    assert not any(token in text for token in world.tokens.values())
    assert "trk_" not in text


def test_a_token_in_any_log_message_is_redacted(capfd: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("info", json=True)
    try:
        logging.getLogger("somelib").warning("refused Bearer trk_abcdefghijklmnop0123 at /x")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    err = capfd.readouterr().err
    assert "trk_[redacted]" in err and "abcdefghijklmnop" not in err


def test_reads_listings_and_exports_are_in_the_access_log_and_traction_audit_lists_them(
    served: tuple[Served, World], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, world = served
    with https(server) as http:
        started = http.post(
            "/sessions", json=prescription(world), headers=world.headers("technician")
        )
        assert started.status_code == 201, started.text
        session_id = started.json()["id"]
        http.post(f"/sessions/{session_id}/stop", headers=world.headers("technician"))
        deadline = time.monotonic() + 60
        while not http.get(
            f"/sessions/{session_id}", params={"limit": 1}, headers=world.headers("technician")
        ).json()["sealed"]:
            assert time.monotonic() < deadline, "the session was never sealed"
            time.sleep(0.2)
        assert http.get("/sessions", headers=world.headers("billing")).status_code == 200
        exported = http.get(f"/sessions/{session_id}/export/json", headers=world.headers("billing"))
        assert exported.status_code == 200
        assert http.get("/patients", headers=world.headers("clinician")).status_code == 200

    log = AccessLog(world.store.engine)
    billing = log.entries(AccessQuery(user_name="billing", patient_reference="MRN-0001"))
    assert {(e.action, e.what, e.session_id) for e in billing} >= {
        (Access.LIST.value, "GET /sessions", session_id),
        (Access.EXPORT.value, "GET /sessions/{session_id}/export/{fmt}", session_id),
    }
    assert [e.detail for e in billing if e.action == Access.EXPORT.value] == ["json"]
    technician = log.entries(AccessQuery(user_name="technician", patient_reference="MRN-0001"))
    assert {e.what for e in technician} == {"GET /sessions/{session_id}"}
    patients = log.entries(AccessQuery(user_name="clinician"))
    assert {e.patient_reference for e in patients} >= {"MRN-0001", "MRN-0002"}
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert log.entries(AccessQuery(since=later)) == []

    monkeypatch.setenv("TRACTION_DATABASE_URL", world.settings.effective_database_url)
    monkeypatch.setenv("TRACTION_DATA_DIR", str(world.settings.data_dir))
    monkeypatch.delenv("TRACTION_CONFIG", raising=False)
    listed = CliRunner().invoke(
        cli, ["audit", "--user", "billing", "--patient", "MRN-0001", "--since", "2020-01-01"]
    )
    assert listed.exit_code == 0, listed.output
    assert "export" in listed.output and "MRN-0001" in listed.output and "json" in listed.output
    assert "technician" not in listed.output
    bad = CliRunner().invoke(cli, ["audit", "--since", "last tuesday"])
    assert bad.exit_code == Exit.USAGE and "2026-11-01" in bad.output


def test_serve_refuses_plain_http_off_loopback(tmp_path: Path) -> None:
    check_exposure(Settings(data_dir=tmp_path), "127.0.0.1")
    check_exposure(Settings(data_dir=tmp_path), "::1")
    for host in ("0.0.0.0", "192.168.10.20", "ws1.clinic.lan", "::"):
        with pytest.raises(ConfigError, match="tls_certfile and tls_keyfile.*behind_tls_proxy"):
            check_exposure(Settings(data_dir=tmp_path), host)
    check_exposure(Settings(data_dir=tmp_path, behind_tls_proxy=True), "0.0.0.0")
    files = self_signed(["ws1.clinic.lan"], tmp_path / "tls")
    with_tls_settings = Settings(
        data_dir=tmp_path, tls_certfile=files.server_cert, tls_keyfile=files.server_key
    )
    check_exposure(with_tls_settings, "0.0.0.0")
    mismatched = Settings(
        data_dir=tmp_path, tls_certfile=files.server_cert, tls_keyfile=files.ca_cert
    )
    with pytest.raises(ConfigError, match="not a PEM certificate and its private key"):
        check_exposure(mismatched, "0.0.0.0")
    with pytest.raises(ValueError, match="tls_certfile is set without its pair"):
        Settings(data_dir=tmp_path, tls_certfile=files.server_cert)


def test_traction_serve_on_every_interface_without_tls_exits_before_opening_a_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACTION_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TRACTION_CONFIG", raising=False)
    monkeypatch.delenv("TRACTION_DATABASE_URL", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == Exit.USAGE
    assert "traction tls self-signed" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "traction.db").exists()  # refused before the service started


def test_tls_self_signed_makes_a_clinic_authority_once_and_private_keys(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    made = CliRunner(env={"COLUMNS": "250"}).invoke(  # long paths stay on one line
        cli,
        [
            "tls",
            "self-signed",
            "--host",
            "ws1.clinic.lan",
            "--host",
            "192.168.10.20",
            "--out",
            str(out),
            "--days",
            "30",
        ],
    )
    assert made.exit_code == 0, made.output
    assert "tls_certfile" in made.output and "ca.pem" in made.output
    for key in ("ca-key.pem", "server-key.pem"):
        assert stat.S_IMODE((out / key).stat().st_mode) == 0o600
    authority = (out / "ca.pem").read_bytes()
    again = CliRunner(env={"COLUMNS": "250"}).invoke(
        cli, ["tls", "self-signed", "--host", "ws1.clinic.lan", "--out", str(out)]
    )
    assert again.exit_code == 0 and (out / "ca.pem").read_bytes() == authority

    context = ssl.create_default_context(cafile=str(out / "ca.pem"))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(out / "server.pem", out / "server-key.pem")
    assert context.cert_store_stats()["x509_ca"] == 1
    too_long = CliRunner().invoke(
        cli, ["tls", "self-signed", "--host", "x", "--out", str(out), "--days", "9999"]
    )
    assert too_long.exit_code == Exit.USAGE

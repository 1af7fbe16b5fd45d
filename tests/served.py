"""The API on a real uvicorn server over TLS, in a thread of its own, for clients in the test's
thread (httpx, schemathesis): a clinic authority and server certificate from
``traction tls self-signed``'s code, bound to an ephemeral loopback port."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from api_support import World

from traction.commands.serve import http_server
from traction.service import WorkstationService
from traction.tls import self_signed

SUMMARY = "schemathesis summary"
"""The user property under which tests/test_api_contract.py reports what schemathesis ran, for the
terminal summary (tests/conftest.py)."""


@dataclass(frozen=True)
class Served:
    base_url: str
    ca: Path


def with_tls(world: World, folder: Path) -> World:
    """The world's settings with a server certificate for 127.0.0.1 and localhost."""
    files = self_signed(["127.0.0.1", "localhost"], folder, days=2)
    world.settings = world.settings.model_copy(
        update={"tls_certfile": files.server_cert, "tls_keyfile": files.server_key}
    )
    return world


@contextmanager
def serving(world: World) -> Iterator[Served]:
    """Serve ``world`` (its settings must name a certificate) until the ``with`` ends; then the
    server stops the way Ctrl-C stops it and the service releases every table."""
    assert world.settings.tls_certfile is not None
    up = threading.Event()
    holder: dict[str, uvicorn.Server | int | BaseException] = {}

    async def main() -> None:
        async with WorkstationService(world.settings) as service:
            server = http_server(world.settings, service, "127.0.0.1", 0)
            holder["server"] = server
            serve = asyncio.create_task(server.serve())
            for _ in range(3000):  # 60 s at most; `up` times out sooner
                if server.started or serve.done():
                    break
                await asyncio.sleep(0.02)
            if server.started:
                holder["port"] = server.servers[0].sockets[0].getsockname()[1]
            up.set()
            await serve

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the test thread below
            holder["error"] = exc
        finally:
            up.set()

    thread = threading.Thread(target=run, name="uvicorn-tls", daemon=True)
    thread.start()
    if not up.wait(60):
        raise AssertionError("the TLS server did not start within 60 s")
    if "port" not in holder:
        raise AssertionError(f"the TLS server failed to start: {holder.get('error')!r}")
    try:
        yield Served(
            f"https://127.0.0.1:{holder['port']}", world.settings.tls_certfile.parent / "ca.pem"
        )
    finally:
        server = holder["server"]
        assert isinstance(server, uvicorn.Server)
        server.should_exit = True
        thread.join(60)
        assert not thread.is_alive(), "the TLS server did not stop within 60 s"

"""``traction serve``: the workstation's HTTP service (see traction.api)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

import typer
import uvicorn

from traction.api import create_app
from traction.context import settings_from
from traction.errors import friendly_errors
from traction.options import ConfigOption
from traction.service import WorkstationService
from traction.settings import Settings


def http_server(
    settings: Settings, service: WorkstationService, host: str, port: int
) -> uvicorn.Server:
    """A uvicorn server for the API over an already started ``service``."""
    app = create_app(settings, service)
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info"))


async def run_service(settings: Settings, host: str, port: int) -> None:
    """Start the service (database, recovery, tables), then serve HTTP until a signal; on the way
    out every running session is released and recorded, then the tables close."""
    async with WorkstationService(settings) as service:
        await http_server(settings, service, host, port).serve()


def serve(
    config: ConfigOption = None,
    host: Annotated[
        str | None, typer.Option(help="Bind address (default: the bind_host setting, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port (default: the bind_port setting, 8750)."),
    ] = None,
) -> None:
    """Serve the tables, sessions, live telemetry and exports over HTTP until Ctrl-C.

    Every configured table is opened (sim:// tables start their simulator, on a clock running
    sim_time_scale times faster), the database is migrated and interrupted sessions recovered.
    Every route needs a bearer token from `traction tokens create USER`. On Ctrl-C every running
    session is released and recorded before the service exits. OpenAPI docs: /docs.

    Example: traction serve --config configs/traction.example.toml --port 8750
    """
    with friendly_errors():
        settings = settings_from(config)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                run_service(settings, host or settings.bind_host, port or settings.bind_port)
            )

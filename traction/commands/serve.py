"""``traction serve``: the workstation's HTTP service (see traction.api)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Annotated

import typer
import uvicorn

from traction.api import create_app
from traction.context import settings_from
from traction.errors import friendly_errors
from traction.options import ConfigOption
from traction.service import WorkstationService
from traction.settings import Settings
from traction.tls import check_exposure


class _Server(uvicorn.Server):
    """uvicorn's server, except that the signal that stopped it is not raised again as it returns.

    uvicorn re-raises a captured SIGTERM or SIGINT at the end of ``serve()`` so that the default
    action ends the process; here that would end it before the service has released every table
    and recorded every session to its end (found by the fault matrix: a SIGTERM during a session
    left the table to its watchdog and the record unfinished). The process ends once the service
    has closed instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def http_server(
    settings: Settings, service: WorkstationService, host: str, port: int
) -> uvicorn.Server:
    """A uvicorn server for the API over an already started ``service``: HTTPS when the settings
    name a certificate. Uvicorn's access log is off (it records query strings, which carry
    patient references); the API's gate logs each request by route template instead, and
    uvicorn's other messages go through the logging configured by the CLI."""
    check_exposure(settings, host)
    app = create_app(settings, service)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        ssl_certfile=settings.tls_certfile,
        ssl_keyfile=settings.tls_keyfile,
    )
    # uvicorn decides per connection whether to write its access line (query strings included)
    # by whether the logger has handlers, so a root handler configured later would revive it.
    logging.getLogger("uvicorn.access").disabled = True
    return _Server(config)


async def run_service(settings: Settings, host: str, port: int) -> None:
    """Start the service (database, recovery, tables), then serve HTTP until a signal; on the way
    out every running session is released and recorded, then the tables close."""
    check_exposure(settings, host)  # before a table is opened
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
    sim_time_scale times faster). An empty database gets its schema; an older one is left as it is
    (run `traction db upgrade`). Sessions of this workstation whose process ended are recorded as
    interrupted; sessions other processes are running are left alone. One service per workstation.
    Every route needs a bearer token from `traction tokens create USER`. On Ctrl-C every running
    session is released and recorded before the service exits. OpenAPI docs: /docs.

    Only loopback is served over plain HTTP: any other address needs tls_certfile and
    tls_keyfile (see `traction tls self-signed`), or behind_tls_proxy = true when a TLS proxy on
    this machine is what the network reaches.

    Example: traction serve --config configs/traction.example.toml --port 8750
    """
    with friendly_errors():
        settings = settings_from(config)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                run_service(settings, host or settings.bind_host, port or settings.bind_port)
            )

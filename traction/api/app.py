"""The FastAPI application: the workstation service behind bearer tokens and roles.

The service (tables, treatments, database) starts with the application and stops with it; on
stop every running treatment is released and recorded before the tables close.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from devices.errors import ConfigError, TableError
from session.documentation import DocumentationError
from session.store import StoreError
from traction.api.auth import authorize
from traction.api.routes import (
    admin,
    clinicians,
    exports,
    health,
    patients,
    sessions,
    tables,
    telemetry,
)
from traction.api.schemas import ErrorOut
from traction.service import (
    NotStarted,
    SafetyRefused,
    ServiceError,
    SessionNotRunning,
    TableBusy,
    UnknownSession,
    UnknownTable,
    WorkstationService,
)
from traction.settings import Settings

DESCRIPTION = """
Drive the traction tables wired to this workstation, watch them live, and read and export what
they recorded. Every route needs `Authorization: Bearer <token>` (tokens come from
`traction tokens create USER`). Roles: technician (run sessions, read), clinician (run, document
through amendments, register patients, export, read), billing (read, export), admin (users,
tokens, settings, register patients and clinicians, read).
Live telemetry: WebSocket `/sessions/{session_id}/telemetry`, one JSON document
`{"name", "doc"}` per record. Forces are newtons.
"""

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No token, or an unknown, expired or revoked one"},
    403: {"model": ErrorOut, "description": "The token's role may not call this route"},
}

GUARDED_ROUTERS = (
    health.router,
    tables.router,
    sessions.router,
    patients.router,
    clinicians.router,
    exports.router,
    admin.router,
)
"""Routers behind :func:`authorize`; the telemetry WebSocket checks its handshake itself."""
ROUTERS = (*GUARDED_ROUTERS, telemetry.router)

_STATUS: list[tuple[type[Exception], int]] = [
    (UnknownTable, 404),
    (UnknownSession, 404),
    (TableBusy, 409),
    (SessionNotRunning, 409),
    (NotStarted, 409),
    (DocumentationError, 409),
    (TableError, 503),
    (ServiceError, 400),
    (StoreError, 422),
]


def _error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, SafetyRefused):
        violations = [v.to_dict() for v in exc.violations]
        return JSONResponse({"detail": str(exc), "violations": violations}, status_code=422)
    if isinstance(exc, ConfigError):
        where = [part for part in exc.where.split(": ") if part]
        body = {"detail": [{"loc": where, "msg": exc.message, "type": "value_error"}]}
        return JSONResponse(body, status_code=422)
    code = next(status for kind, status in _STATUS if isinstance(exc, kind))
    return JSONResponse({"detail": str(exc)}, status_code=code)


def create_app(settings: Settings, service: WorkstationService | None = None) -> FastAPI:
    """The application for ``settings``. Without ``service`` the app starts and stops its own
    with its lifespan; a ``service`` given is already started and stays the caller's to close
    (``traction serve`` starts it first, so start-up errors are reported before serving)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service is not None:
            app.state.service = service
            yield
            return
        async with WorkstationService(settings) as running:
            app.state.service = running
            yield

    app = FastAPI(
        title="traction workstation",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    guarded = [Depends(authorize)]
    for router in GUARDED_ROUTERS:
        app.include_router(router, dependencies=guarded, responses=AUTH_RESPONSES)
    app.include_router(telemetry.router)
    for kind in (SafetyRefused, ConfigError, *(kind for kind, _ in _STATUS)):
        app.add_exception_handler(kind, _error)
    return app

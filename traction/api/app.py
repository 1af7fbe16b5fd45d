"""The FastAPI application: the workstation service behind bearer tokens and roles.

The service (tables, treatments, database) starts with the application and stops with it; on
stop every running treatment is released and recorded before the tables close.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from devices.errors import ConfigError, TableError
from session.documentation import DocumentationError
from session.lockouts import NotLocked, TableLocked
from session.store import StoreError
from traction.api.access import ROUTE_PERMISSIONS, WEBSOCKET
from traction.api.auth import authorize
from traction.api.gate import Gate
from traction.api.refusals import (
    config_refused,
    http_refused,
    refusal,
    validation_refused,
    violation,
)
from traction.api.routes import (
    admin,
    claims,
    clinicians,
    exports,
    health,
    patients,
    sessions,
    tables,
    telemetry,
    worklist,
)
from traction.api.schemas import ErrorOut, RefusedOut
from traction.console import pages as console
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
`{"name", "doc"}` per record; refusals close it with 4401 (token), 4403 (role) or 4404 (no such
session). Forces are newtons.

The token is checked before the body is read (401/403 first). Every refused input is a 422
`{"detail", "violations": [{"field", "value", "limit", "message", "severity"}]}` naming each
field; bodies over the `max_request_bytes` setting get 413. Reads and exports of a patient's
records are kept in the access log (`traction audit`).
"""

GUARDED_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorOut,
        "description": "No token, or an unknown, expired or revoked one (checked before the "
        "body is read)",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    403: {"model": ErrorOut, "description": "The token's role may not call this route"},
    413: {"model": ErrorOut, "description": "The body is larger than max_request_bytes"},
    422: {
        "model": RefusedOut,
        "description": "Refused input: every field that breaks a bound or a rule, named",
    },
}

GUARDED_ROUTERS = (
    health.router,
    tables.router,
    sessions.router,
    patients.router,
    clinicians.router,
    exports.router,
    claims.router,
    admin.router,
    worklist.router,
)
"""Routers behind :func:`authorize`; the telemetry WebSocket checks its handshake itself."""
ROUTERS = (*GUARDED_ROUTERS, telemetry.router)

_STATUS: list[tuple[type[Exception], int]] = [
    (UnknownTable, 404),
    (UnknownSession, 404),
    (TableLocked, 423),
    (NotLocked, 409),
    (TableBusy, 409),
    (SessionNotRunning, 409),
    (NotStarted, 409),
    (DocumentationError, 409),
    (TableError, 503),
    (ServiceError, 400),
]


def _error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, SafetyRefused):
        violations = [v.to_dict() for v in exc.violations]
        return JSONResponse({"detail": str(exc), "violations": violations}, status_code=422)
    code = next((status for kind, status in _STATUS if isinstance(exc, kind)), None)
    if code is None:  # a StoreError not listed above: what the request named is not known
        return refusal([violation(("body",), str(exc), None, "known to the store")])
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
        app.include_router(router, dependencies=guarded, responses=GUARDED_RESPONSES)
    app.include_router(telemetry.router)
    app.include_router(console.router)
    app.mount("/console/static", console.static, name="console-static")
    http_routes = [route for route in ROUTE_PERMISSIONS if route[0] != WEBSOCKET]
    app.add_middleware(Gate, guarded=http_routes, max_body_bytes=settings.max_request_bytes)
    app.add_exception_handler(RequestValidationError, validation_refused)
    app.add_exception_handler(ConfigError, config_refused)
    app.add_exception_handler(StarletteHTTPException, http_refused)
    for kind in (SafetyRefused, StoreError, *(kind for kind, _ in _STATUS)):
        app.add_exception_handler(kind, _error)
    return app

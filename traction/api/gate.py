"""The door every HTTP request passes first: who is calling, how big the body is, one log line.

Order matters. The token is checked before a byte of the body is read, so an unauthenticated
caller learns nothing from how its body is parsed (broken JSON without a token is a 401, not a
422). Then the body is read up to ``max_request_bytes`` (413 past it, whether or not the client
said its length), and only then does FastAPI parse it. The access line names the route template,
the status and the user, never the path's ids, the query string (``?patient_reference=MRN-1``)
or any header: uvicorn's own access log is off for that reason.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.routing import compile_path, get_route_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from traction.api.auth import GATE_USER, Denied, check_token
from traction.api.schemas import ErrorOut

log = structlog.get_logger("traction.http")


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


def content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorOut(detail=detail).model_dump(), status_code=status, headers=headers)


class Gate:
    """Authenticate the ``(method, path template)`` routes in ``guarded`` (the access matrix),
    bound every request's body, log every request. The API's description, the console's pages
    and unknown paths are not authenticated here (the console checks its own session; a guarded
    route the gate did not see is refused by :func:`traction.api.auth.authorize`: fail closed)."""

    def __init__(
        self, app: ASGIApp, guarded: Iterable[tuple[str, str]], max_body_bytes: int
    ) -> None:
        self.app = app
        # literal paths before templates, so /sessions/validate is never taken for an id
        ordered = sorted(guarded, key=lambda route: ("{" in route[1], route[1]))
        self.guarded = [(method, path, compile_path(path)[0]) for method, path in ordered]
        self.max_body_bytes = max_body_bytes

    def _template(self, scope: Scope) -> tuple[str | None, list[str]]:
        """The route template this request is for, or else the methods its path allows. A
        literal path owns itself: /sessions/validate is never a session id, whatever the method."""
        path = get_route_path(scope)
        owner = next((t for _, t, pattern in self.guarded if pattern.match(path)), None)
        methods = sorted({m for m, t, _ in self.guarded if t == owner})
        if owner is not None and scope["method"] in methods:
            return owner, []
        return None, methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        template, allowed = self._template(scope)
        if template is None and allowed:
            # A path with a GET and a POST is two routes to Starlette, whose 405 names only the
            # first one's method; the Allow header names all of them.
            detail = f"{scope['method']} is not allowed here; use {', '.join(allowed)}"
            response = _error(405, detail, {"Allow": ", ".join(allowed)})
            await response(scope, receive, send)
            return
        started = time.monotonic()
        status: dict[str, str | int] = {"code": 0, "user": "-"}

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self._serve(scope, receive, logged_send, template, status)
        finally:
            log.info(
                "http request",
                method=scope["method"],
                route=template or "(not an API route)",
                status=status["code"],
                user=status["user"],
                ms=round((time.monotonic() - started) * 1000, 1),
            )

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        template: str | None,
        status: dict[str, str | int],
    ) -> None:
        if template is not None:
            try:
                user = await run_in_threadpool(
                    check_token,
                    scope["app"].state.service,
                    HTTPConnection(scope),
                    bearer_token(scope),
                    scope["method"],
                    template,
                )
            except Denied as denied:
                headers = {"WWW-Authenticate": "Bearer"} if denied.status_code == 401 else None
                await _error(denied.status_code, denied.message, headers)(scope, receive, send)
                return
            status["user"] = user.name
            scope.setdefault("state", {})[GATE_USER] = user
        await self._bounded(scope, receive, send)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand the request on with its body read, or answer 413 past ``max_body_bytes``."""
        declared = content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending its body
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is larger than {self.max_body_bytes} bytes (max_request_bytes)"
        await _error(413, detail)(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, then whatever the client sends next (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay

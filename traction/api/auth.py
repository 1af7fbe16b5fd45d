"""Bearer tokens in, a user with a role out; the route's permission from the matrix decides.

No token, an unknown, malformed, expired or revoked token, or a deactivated user: 401. A valid
token whose role lacks the route's permission: 403, naming the role, the route and the permission.
HTTP requests are checked by :class:`traction.api.gate.Gate` before their body is read.
WebSockets present the same ``Authorization: Bearer`` header at the handshake (or, from a browser,
the subprotocols ``bearer, <token>``); they are accepted and then closed with code 4401 or 4403,
so the client sees the code (closing before accepting would reach it as a bare HTTP 403).
Pages of the clinic console authenticate with their session cookie instead of a token
(traction.console.cookies), under the same matrix.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, WebSocket, status
from fastapi.routing import APIWebSocketRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from session.accounts import User
from session.console_sessions import ConsoleSessions
from traction.api.access import WEBSOCKET, allowed, required
from traction.console.cookies import CsrfRefused, cookie_user
from traction.service import WorkstationService

WS_UNAUTHORIZED = 4401
WS_FORBIDDEN = 4403

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerToken",
    description="A token from `traction tokens create USER` (shown once; stored only as a hash).",
)


def service_of(connection: HTTPConnection) -> WorkstationService:
    service: WorkstationService = connection.app.state.service
    return service


class Denied(Exception):
    def __init__(self, status_code: int, message: str) -> None:
        self.status_code = status_code
        self.message = message


def check_token(
    service: WorkstationService,
    connection: HTTPConnection,
    token: str | None,
    method: str,
    path: str,
) -> User:
    """The user of ``token`` (or, without one, of the console cookie ``connection`` carries) if
    the matrix lets their role call ``method path`` (the route's template); :class:`Denied` with
    401 or 403 otherwise. Reads headers and cookies only, never the body."""
    if token:
        user = service.accounts.authenticate(token)
        if user is None:
            raise Denied(
                401, "the token is unknown, expired or revoked, or its user is deactivated"
            )
    else:
        try:
            user = cookie_user(connection, ConsoleSessions(service.store.engine), method)
        except CsrfRefused as refused:
            raise Denied(403, str(refused)) from None
        if user is None:
            raise Denied(401, "a bearer token is required (Authorization: Bearer <token>)")
    if not allowed(user.role, method, path):
        needs = required(method, path)
        raise Denied(
            403,
            f"role {user.role} may not {method} {path}"
            + (f"; it needs the {needs} permission" if needs else ""),
        )
    return user


GATE_USER = "traction.user"
"""Where :class:`traction.api.gate.Gate` leaves the user it authenticated, in the request scope."""


def authorize(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """The user the gate authenticated (before the body was read) for this route. ``credentials``
    is here so the OpenAPI document declares the bearer scheme on every guarded route."""
    user = request.scope.get("state", {}).get(GATE_USER)
    if not isinstance(user, User):  # a route the gate did not see: refuse, never guess
        raise HTTPException(401, "not authenticated", headers={"WWW-Authenticate": "Bearer"})
    return user


BEARER_SUBPROTOCOL = "bearer"


def offered_bearer(websocket: WebSocket) -> str | None:
    """The token a browser offers as subprotocols ``["bearer", token]`` (a browser's WebSocket
    cannot set an Authorization header; a token in the URL would land in access logs)."""
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    if len(offered) >= 2 and offered[0] == BEARER_SUBPROTOCOL:
        return offered[1]
    return None


def websocket_close_code(denied: Denied) -> int:
    return WS_UNAUTHORIZED if denied.status_code == 401 else WS_FORBIDDEN


def authorize_websocket(websocket: WebSocket) -> User:
    """The user of a WebSocket handshake's token, allowed this route by the matrix; raises
    :class:`Denied` (see :func:`websocket_close_code`). Blocking: call it in a thread."""
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    header_token = token.strip() if scheme.lower() == "bearer" else None
    route = websocket.scope.get("route")
    path = route.path if isinstance(route, APIWebSocketRoute) else websocket.url.path
    offered = header_token or offered_bearer(websocket)
    return check_token(service_of(websocket), websocket, offered, WEBSOCKET, path)


CurrentUser = Annotated[User, Depends(authorize)]
Service = Annotated[WorkstationService, Depends(service_of)]
UNAUTHORIZED = status.HTTP_401_UNAUTHORIZED

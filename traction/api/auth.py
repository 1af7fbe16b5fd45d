"""Bearer tokens in, a user with a role out; the route's permission from the matrix decides.

No token, an unknown, malformed, expired or revoked token, or a deactivated user: 401. A valid
token whose role lacks the route's permission: 403, naming the role, the route and the permission.
WebSockets present the same ``Authorization: Bearer`` header at the handshake; they are closed
with code 4401 or 4403 instead.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, WebSocket, WebSocketException, status
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from session.accounts import User
from traction.api.access import WEBSOCKET, allowed, required
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


def _route_key(connection: HTTPConnection, method: str) -> tuple[str, str]:
    route = connection.scope.get("route")
    path = route.path if isinstance(route, APIRoute | APIWebSocketRoute) else connection.url.path
    return method, path


class Denied(Exception):
    def __init__(self, status_code: int, message: str) -> None:
        self.status_code = status_code
        self.message = message


def _check(connection: HTTPConnection, token: str | None, method: str) -> User:
    if not token:
        raise Denied(401, "a bearer token is required (Authorization: Bearer <token>)")
    user = service_of(connection).accounts.authenticate(token)
    if user is None:
        raise Denied(401, "the token is unknown, expired or revoked, or its user is deactivated")
    method, path = _route_key(connection, method)
    if not allowed(user.role, method, path):
        needs = required(method, path)
        raise Denied(
            403,
            f"role {user.role} may not {method} {path}"
            + (f"; it needs the {needs} permission" if needs else ""),
        )
    return user


def authorize(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """The authenticated user, allowed this route by the matrix."""
    token = credentials.credentials if credentials is not None else None
    try:
        return _check(request, token, request.method)
    except Denied as denied:
        headers = {"WWW-Authenticate": "Bearer"} if denied.status_code == 401 else None
        raise HTTPException(denied.status_code, denied.message, headers=headers) from None


BEARER_SUBPROTOCOL = "bearer"


def offered_bearer(websocket: WebSocket) -> str | None:
    """The token a browser offers as subprotocols ``["bearer", token]`` (a browser's WebSocket
    cannot set an Authorization header; a token in the URL would land in access logs)."""
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    if len(offered) >= 2 and offered[0] == BEARER_SUBPROTOCOL:
        return offered[1]
    return None


def authorize_websocket(websocket: WebSocket) -> User:
    """Same as :func:`authorize`, for a WebSocket handshake: the token comes in the Authorization
    header, or from a browser as the subprotocols ``bearer, <token>``."""
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    header_token = token.strip() if scheme.lower() == "bearer" else None
    try:
        return _check(websocket, header_token or offered_bearer(websocket), WEBSOCKET)
    except Denied as denied:
        code = WS_UNAUTHORIZED if denied.status_code == 401 else WS_FORBIDDEN
        raise WebSocketException(code, denied.message) from None


CurrentUser = Annotated[User, Depends(authorize)]
Service = Annotated[WorkstationService, Depends(service_of)]
UNAUTHORIZED = status.HTTP_401_UNAUTHORIZED

"""The console's session cookie, and the CSRF rule every state change through it must meet.

A browser sends cookies with any request to this origin, so a cookie alone proves nothing about
who asked for a change: every unsafe request must also echo the session's CSRF token in a header
(a page of another origin cannot read it), and a WebSocket handshake must come from this origin.
"""

from __future__ import annotations

import hmac

from starlette.requests import HTTPConnection

from session.accounts import User
from session.console_sessions import ConsoleSessions, SignedIn

COOKIE = "traction_console"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfRefused(Exception):
    """A state change with a console cookie but without its CSRF token (or from another origin)."""


def signed_in(connection: HTTPConnection, sessions: ConsoleSessions) -> SignedIn | None:
    """The console session the request's cookie belongs to, if it is live."""
    cookie = connection.cookies.get(COOKIE)
    return sessions.resolve(cookie) if cookie else None


def same_origin(connection: HTTPConnection) -> bool:
    """The Origin header, when a browser sends one, names this server."""
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    host = connection.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


def cookie_user(connection: HTTPConnection, sessions: ConsoleSessions, method: str) -> User | None:
    """The user behind a console cookie, for an API request made by a console page.

    Unsafe methods need the CSRF header; WebSocket handshakes (method ``WS``) need this origin.
    """
    found = signed_in(connection, sessions)
    if found is None:
        return None
    if not same_origin(connection):
        raise CsrfRefused("the request comes from another origin than the console")
    if method not in SAFE_METHODS and method != "WS":
        sent = connection.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), found.csrf_token.encode()):
            raise CsrfRefused(
                f"a console request that changes something must carry the {CSRF_HEADER} header "
                "of its page; reload the page and retry"
            )
    return found.user

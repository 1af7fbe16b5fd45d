"""The console's pages and its sign-in: HTML shells whose scripts call the JSON API.

A page needs a live console session (else it redirects to sign-in) and the permission of the API
routes it drives (else 403, with the role named), so a technician's browser gets no billing page
even by typing its address. The pages carry no data of their own: their scripts fetch it from the
API, where the role matrix applies again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from session.accounts import Role
from session.console_sessions import IDLE_TIMEOUT, ConsoleSessions, SignedIn
from session.passwords import MAX_LENGTH, Passwords, SignInRefused
from traction.api.access import ROLE_PERMISSIONS, Permission
from traction.api.auth import service_of
from traction.console.cookies import COOKIE, CsrfRefused, cookie_user, signed_in

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
static = StaticFiles(directory=HERE / "static")
router = APIRouter(prefix="/console", include_in_schema=False)

# Scripts and styles come only from this server; nothing inline, nothing from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Page(BaseModel):
    """A console page: where it lives, what the nav calls it, what permission opens it."""

    path: str
    title: str
    template: str
    permission: Permission
    nav: bool = True


PAGES = {
    "board": Page(
        path="/console/", title="Tables", template="board.html", permission=Permission.READ
    ),
    "treat": Page(
        path="/console/treat", title="Start", template="treat.html", permission=Permission.RUN
    ),
    "sessions": Page(
        path="/console/sessions",
        title="Sessions",
        template="sessions.html",
        permission=Permission.READ,
    ),
    "billing": Page(
        path="/console/billing",
        title="Billing",
        template="billing.html",
        permission=Permission.EXPORT,
    ),
    "live": Page(
        path="/console/live/{session_id}",
        title="Live",
        template="live.html",
        permission=Permission.READ,
        nav=False,
    ),
    "session": Page(
        path="/console/sessions/{session_id}",
        title="Session",
        template="session.html",
        permission=Permission.READ,
        nav=False,
    ),
}


def _sessions(request: Request) -> ConsoleSessions:
    return ConsoleSessions(service_of(request).store.engine)


def _secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def _render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    return _secure(templates.TemplateResponse(request, template, context, status_code=status))


def _page(request: Request, name: str, **context: Any) -> Response:
    page = PAGES[name]
    found: SignedIn | None = signed_in(request, _sessions(request))
    if found is None:
        return _secure(RedirectResponse(f"/console/login?next={request.url.path}", status_code=303))
    role = Role(found.user.role)
    if page.permission not in ROLE_PERMISSIONS[role]:
        return _render(
            request,
            "forbidden.html",
            status=403,
            user=found.user,
            csrf=found.csrf_token,
            nav=_nav(role),
            page=page,
        )
    return _render(
        request,
        page.template,
        user=found.user,
        csrf=found.csrf_token,
        nav=_nav(role),
        page=page,
        permissions=sorted(p.value for p in ROLE_PERMISSIONS[role]),
        idle_minutes=int(IDLE_TIMEOUT.total_seconds() // 60),
        time_zone=service_of(request).settings.time_zone,
        **context,
    )


def _nav(role: Role) -> list[Page]:
    return [p for p in PAGES.values() if p.nav and p.permission in ROLE_PERMISSIONS[role]]


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/console/") -> Response:  # noqa: A002
    target = next if next.startswith("/console/") else "/console/"
    return _render(request, "login.html", next=target, page=None, nav=[], user=None)


class SignInIn(BaseModel):
    user: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_LENGTH)


@router.post("/login")
def sign_in(request: Request, body: SignInIn) -> Response:
    """Check the password; on success set the session cookie (HttpOnly, Secure, Strict)."""
    service = service_of(request)
    try:
        user = Passwords(service.store.engine).check(body.user, body.password)
    except SignInRefused as refused:
        return _secure(JSONResponse({"detail": str(refused)}, status_code=401))
    opened = ConsoleSessions(service.store.engine).open(user)
    response = JSONResponse({"user": user.name, "role": user.role})
    response.set_cookie(
        COOKIE,
        opened.cookie,
        httponly=True,
        secure=True,
        samesite="strict",
        path="/",
    )
    return _secure(response)


@router.post("/logout")
def sign_out(request: Request) -> Response:
    sessions = _sessions(request)
    try:
        user = cookie_user(request, sessions, "POST")
    except CsrfRefused as refused:
        return _secure(JSONResponse({"detail": str(refused)}, status_code=403))
    cookie = request.cookies.get(COOKIE)
    if user is not None and cookie:
        sessions.close(cookie)
    response = JSONResponse({"signed_out": user.name if user else None})
    response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return _secure(response)


@router.get("/", response_class=HTMLResponse)
def board(request: Request) -> Response:
    return _page(request, "board")


@router.get("/treat", response_class=HTMLResponse)
def treat(request: Request) -> Response:
    return _page(request, "treat")


@router.get("/sessions", response_class=HTMLResponse)
def sessions(request: Request) -> Response:
    return _page(request, "sessions")


@router.get("/sessions/{session_id}", response_class=HTMLResponse)
def session_detail(request: Request, session_id: str) -> Response:
    return _page(request, "session", session_id=session_id[:64])


@router.get("/live/{session_id}", response_class=HTMLResponse)
def live(request: Request, session_id: str) -> Response:
    return _page(request, "live", session_id=session_id[:64])


@router.get("/billing", response_class=HTMLResponse)
def billing(request: Request) -> Response:
    return _page(request, "billing")

"""Administration: users, their tokens, and the workstation's settings (read-only here)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy.engine import make_url

from session.accounts import AccountError, ApiToken, User
from traction.api.auth import Service
from traction.api.routes.sessions import field_error
from traction.api.schemas import (
    ErrorOut,
    SettingsOut,
    TokenIn,
    TokenIssuedOut,
    TokenOut,
    UserIn,
    UserOut,
)

router = APIRouter(prefix="/admin", tags=["admin"])


def user_out(user: User) -> UserOut:
    return UserOut.model_validate(user, from_attributes=True)


def token_out(token: ApiToken, user: User) -> TokenOut:
    return TokenOut(user=user.name, **token.model_dump(exclude={"user_id", "token_sha256"}))


@router.get("/users", response_model=list[UserOut], summary="List users")
def list_users(service: Service) -> list[UserOut]:
    return [user_out(u) for u in service.accounts.users()]


@router.post("/users", response_model=UserOut, status_code=201, summary="Add a user")
def add_user(body: UserIn, service: Service) -> UserOut:
    """A user with a role; a clinician user may be linked to their clinicians row."""
    try:
        return user_out(service.accounts.create_user(body.name, body.role, body.clinician_id))
    except AccountError as exc:
        field = "clinician_id" if "clinician_id" in str(exc) else "name"
        raise field_error(("body", field), str(exc)) from None


@router.post(
    "/users/{name}/deactivate",
    response_model=UserOut,
    summary="Deactivate a user",
    responses={404: {"model": ErrorOut, "description": "No such user"}},
)
def deactivate_user(name: str, service: Service) -> UserOut:
    """Every token of the user stops working at once; the user stays on record."""
    try:
        return user_out(service.accounts.deactivate(name))
    except AccountError as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/tokens", response_model=list[TokenOut], summary="List tokens")
def list_tokens(
    service: Service, user: Annotated[str | None, Query(description="Only this user's")] = None
) -> list[TokenOut]:
    """Tokens by metadata only; their values were shown once and are not stored."""
    try:
        return [token_out(t, u) for t, u in service.accounts.tokens(user)]
    except AccountError as exc:
        raise field_error(("query", "user"), str(exc), user) from None


@router.post("/tokens", response_model=TokenIssuedOut, status_code=201, summary="Issue a token")
def issue_token(body: TokenIn, service: Service) -> TokenIssuedOut:
    """A new bearer token for a user; the response is the only place its value ever appears."""
    ttl = body.ttl_hours or service.settings.token_ttl_hours
    try:
        issued = service.accounts.issue_token(body.user, ttl, body.label)
    except AccountError as exc:
        raise field_error(("body", "user"), str(exc), body.user) from None
    owner = service.accounts.get_user(body.user)
    return TokenIssuedOut(token=issued.plaintext, **token_out(issued.token, owner).model_dump())


@router.post(
    "/tokens/{token_id}/revoke",
    response_model=TokenOut,
    summary="Revoke a token",
    responses={404: {"model": ErrorOut, "description": "No such token"}},
)
def revoke_token(token_id: int, service: Service) -> TokenOut:
    try:
        token = service.accounts.revoke_token(token_id)
    except AccountError as exc:
        raise HTTPException(404, str(exc)) from None
    owner = next(u for t, u in service.accounts.tokens() if t.id == token.id)
    return token_out(token, owner)


@router.get("/settings", response_model=SettingsOut, summary="Workstation settings")
def get_settings(service: Service) -> SettingsOut:
    """The settings in force (database password hidden). Change them in the settings file."""
    s = service.settings
    return SettingsOut(
        workstation=s.workstation,
        database_url=make_url(s.effective_database_url).render_as_string(hide_password=True),
        data_dir=str(s.data_dir),
        display_unit=s.display_unit.value,
        bind_host=s.bind_host,
        bind_port=s.bind_port,
        tables=[{"name": t.name, "url": t.url} for t in s.tables],
        token_ttl_hours=s.token_ttl_hours,
        sim_time_scale=s.sim_time_scale,
        place_of_service=s.place_of_service,
        time_zone=s.time_zone,
    )

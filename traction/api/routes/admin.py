"""Administration: users, their tokens, and the workstation's settings (read-only here).

An admin manages accounts but never acts as anyone else: it cannot issue a token for another user
(that would make it that clinician), deactivate itself, or deactivate the last active admin.
Another user's token comes from `traction tokens create USER` on the workstation itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from sqlalchemy.engine import make_url

from session.accounts import AccountError, ApiToken, LastAdmin, UnknownUser, User
from traction.api.auth import CurrentUser, Service
from traction.api.bounds import MAX_ID, MAX_NAME
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
    responses={
        404: {"model": ErrorOut, "description": "No such user"},
        409: {"model": ErrorOut, "description": "The caller itself, or the last active admin"},
    },
)
def deactivate_user(
    name: Annotated[str, Path(min_length=1, max_length=MAX_NAME)],
    user: CurrentUser,
    service: Service,
) -> UserOut:
    """Every token of the user stops working at once; the user stays on record. An admin cannot
    deactivate itself, nor the last active admin."""
    if name == user.name:
        raise HTTPException(409, "an admin cannot deactivate itself; another admin can")
    try:
        return user_out(service.accounts.deactivate(name))
    except UnknownUser as exc:
        raise HTTPException(404, str(exc)) from None
    except LastAdmin as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/tokens", response_model=list[TokenOut], summary="List tokens")
def list_tokens(
    service: Service,
    user: Annotated[str | None, Query(max_length=MAX_NAME, description="Only this user's")] = None,
) -> list[TokenOut]:
    """Tokens by metadata only; their values were shown once and are not stored. An unknown
    user has none."""
    try:
        return [token_out(t, u) for t, u in service.accounts.tokens(user)]
    except UnknownUser:
        return []  # no such user, so no tokens: a filter, like every other listing's


@router.post(
    "/tokens",
    response_model=TokenIssuedOut,
    status_code=201,
    summary="Issue a token to yourself",
    responses={403: {"model": ErrorOut, "description": "A token for another user"}},
)
def issue_token(body: TokenIn, user: CurrentUser, service: Service) -> TokenIssuedOut:
    """A new bearer token for the calling admin (another screen, a script); the response is the
    only place its value ever appears. Tokens for other users are created on the workstation
    with `traction tokens create USER`, never through the API."""
    if body.user is not None and body.user != user.name:
        raise HTTPException(
            403,
            f"a token is issued only to its own user, not to {body.user!r}; create it on the "
            f"workstation: traction tokens create {body.user}",
        )
    ttl = body.ttl_hours or service.settings.token_ttl_hours
    try:
        issued = service.accounts.issue_token(user.name, ttl, body.label)
    except AccountError as exc:
        raise field_error(("body", "user"), str(exc), user.name) from None
    return TokenIssuedOut(token=issued.plaintext, **token_out(issued.token, user).model_dump())


@router.post(
    "/tokens/{token_id}/revoke",
    response_model=TokenOut,
    summary="Revoke a token",
    responses={404: {"model": ErrorOut, "description": "No such token"}},
)
def revoke_token(token_id: Annotated[int, Path(ge=1, le=MAX_ID)], service: Service) -> TokenOut:
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

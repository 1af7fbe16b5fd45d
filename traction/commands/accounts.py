"""``traction users`` and ``traction tokens``: who may use the HTTP service, with which role.

A token is printed once, when created, and stored only as its SHA-256 digest; lose it and create
another. Revoking a token or deactivating its user refuses it at once.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from session.accounts import Accounts, Role
from session.localtime import local_time
from session.passwords import Passwords
from traction.context import open_store, settings_from
from traction.errors import friendly_errors
from traction.options import ConfigOption
from traction.settings import Settings

users_app = typer.Typer(
    help="Users of the HTTP service and their roles: technician, clinician, billing, admin.",
    no_args_is_help=True,
)
tokens_app = typer.Typer(
    help="Bearer tokens for the HTTP service (shown once, stored as a hash).", no_args_is_help=True
)
console = Console()


def _accounts(settings: Settings) -> Accounts:
    return Accounts(open_store(settings).engine)


@users_app.command("add")
def add_user(
    name: Annotated[str, typer.Argument(help="Login name, e.g. dreyes.")],
    role: Annotated[Role, typer.Option(help="What the user may do through the API.")],
    clinician: Annotated[
        int | None, typer.Option(help="Clinician id to link (a clinician user treats as them).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Add a user. Example: traction users add dreyes --role clinician --clinician 1"""
    with friendly_errors():
        user = _accounts(settings_from(config)).create_user(name, role, clinician)
        console.print(f"user {user.name} added as {user.role} (id {user.id})")


@users_app.command("list")
def list_users(config: ConfigOption = None) -> None:
    """List users, active or not."""
    with friendly_errors():
        settings = settings_from(config)
        table = Table("id", "name", "role", "clinician", "active", "created")
        for user in _accounts(settings).users():
            table.add_row(
                str(user.id),
                user.name,
                user.role,
                str(user.clinician_id or ""),
                "yes" if user.active else "no",
                local_time(user.created_at, settings.zone),
            )
        console.print(table)


@users_app.command("deactivate")
def deactivate_user(
    name: Annotated[str, typer.Argument(help="The user to deactivate.")],
    config: ConfigOption = None,
) -> None:
    """Deactivate a user: every token of theirs stops working now. Example: traction users deactivate dreyes"""
    with friendly_errors():
        user = _accounts(settings_from(config)).deactivate(name)
        console.print(f"user {user.name} deactivated; their tokens are refused from now on")


@users_app.command("passwd")
def set_password(
    name: Annotated[str, typer.Argument(help="The user whose password to set.")],
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from standard input (scripts)."),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Set or reset a user's password (at least 12 characters); clears a lockout.

    People sign in with it to the clinic console and with `traction login`. Run on the
    workstation itself. Example: traction users passwd dreyes
    """
    with friendly_errors():
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = typer.prompt(
                f"new password for {name}", hide_input=True, confirmation_prompt=True
            )
        Passwords(open_store(settings_from(config)).engine).set(name, password)
        console.print(f"password set for {name}")


@tokens_app.command("create")
def create_token(
    user: Annotated[str, typer.Argument(help="The user the token belongs to.")],
    ttl_hours: Annotated[
        float | None,
        typer.Option(help="Hours until it expires (default: the token_ttl_hours setting)."),
    ] = None,
    label: Annotated[str, typer.Option(help="What the token is for, e.g. 'room 2 screen'.")] = "",
    config: ConfigOption = None,
) -> None:
    """Create a token and print it once. Example: traction tokens create dreyes --ttl-hours 8 --label 'room 2'"""
    with friendly_errors():
        settings = settings_from(config)
        ttl = ttl_hours if ttl_hours is not None else settings.token_ttl_hours
        issued = _accounts(settings).issue_token(user, ttl, label)
        print(issued.plaintext)  # plain stdout, so scripts can capture it
        Console(stderr=True).print(
            f"[dim]token {issued.token.id} for {user}, expires "
            f"{local_time(issued.token.expires_at, settings.zone)}; it is not shown again[/]"
        )


@tokens_app.command("list")
def list_tokens(
    user: Annotated[str | None, typer.Option(help="Only this user's tokens.")] = None,
    config: ConfigOption = None,
) -> None:
    """List tokens (their values are never stored, so never shown)."""
    with friendly_errors():
        now = datetime.now(UTC)
        settings = settings_from(config)
        table = Table("id", "user", "label", "created", "expires", "state")
        for token, owner in _accounts(settings).tokens(user):
            state = "revoked" if token.revoked_at else "valid" if token.valid_at(now) else "expired"
            table.add_row(
                str(token.id),
                owner.name,
                token.label,
                local_time(token.created_at, settings.zone),
                local_time(token.expires_at, settings.zone),
                state,
            )
        console.print(table)


@tokens_app.command("revoke")
def revoke_token(
    token_id: Annotated[int, typer.Argument(help="Token id from `traction tokens list`.")],
    config: ConfigOption = None,
) -> None:
    """Revoke a token now. Example: traction tokens revoke 3"""
    with friendly_errors():
        token = _accounts(settings_from(config)).revoke_token(token_id)
        console.print(f"token {token.id} revoked")

"""``traction login``, ``logout`` and ``whoami``: a person signed in at this command line."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from session.localtime import local_time
from traction.context import open_store, settings_from
from traction.errors import friendly_errors
from traction.options import ConfigOption
from traction.signin import LOGIN_TTL_HOURS, current_user
from traction.signin import login as sign_in
from traction.signin import logout as sign_out

console = Console()


def login(
    name: Annotated[str, typer.Argument(help="Your user name, e.g. dreyes.")],
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from standard input (scripts)."),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Sign in with your password, for one shift.

    Signing, co-signing and amending notes and editing patients record the person signed in
    here. The sign-in lasts 8 hours and is kept only for this operating-system user.
    Example: traction login dreyes
    """
    with friendly_errors():
        settings = settings_from(config)
        if password_stdin:
            password = typer.get_text_stream("stdin").readline().rstrip("\n")
        else:
            password = typer.prompt("password", hide_input=True)
        done = sign_in(open_store(settings), settings, name, password)
        console.print(
            f"signed in as {done.user} for {LOGIN_TTL_HOURS:g} hours "
            f"(until {local_time(done.expires_at, settings.zone)})"
        )


def logout(config: ConfigOption = None) -> None:
    """Sign out: the saved sign-in is revoked at once."""
    with friendly_errors():
        settings = settings_from(config)
        name = sign_out(open_store(settings), settings)
        console.print(f"{name} signed out" if name else "nobody was signed in")


def whoami(config: ConfigOption = None) -> None:
    """Who is signed in at this command line, and their role."""
    with friendly_errors():
        settings = settings_from(config)
        user = current_user(open_store(settings), settings)
        console.print(f"{user.name} ({user.role})")

"""The ``traction`` command: one entry point for the workstation, the technician and billing.

Each command's module is imported only when that command runs (or its own ``--help`` is asked
for): ``traction sessions list`` never loads the HTTP service, the PDF writer or the simulators,
and ``traction --help`` loads none of them. The listing below names every command with the
one-line summary its own help starts with (a test keeps the two the same).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import Any, NamedTuple

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup


class Entry(NamedTuple):
    target: str  # "module:attribute", a command function or a typer.Typer group
    summary: str


COMMANDS: dict[str, Entry] = {
    "demo": Entry(
        "traction.commands.demo:demo",
        "Run a simulated lumbar session end to end and document it for CPT 97012.",
    ),
    "run": Entry(
        "traction.commands.run:run", "Treat one patient on one table, with a live force readout."
    ),
    "simulate": Entry(
        "traction.commands.simulate:simulate",
        "Serve simulated traction tables on a real wire protocol until Ctrl-C.",
    ),
    "export": Entry(
        "traction.commands.export:export",
        "Bill sessions through the claims ledger and write their documents.",
    ),
    "claims": Entry(
        "traction.commands.claims:claims_app",
        "The claims ledger: lines sent, by cursor; corrections (frequency 7) and voids (8).",
    ),
    "verify": Entry(
        "traction.commands.records:verify",
        "Recompute each session's seal and report anything changed since it was sealed.",
    ),
    "serve": Entry(
        "traction.commands.serve:serve",
        "Serve the tables, sessions, live telemetry and exports over HTTP until Ctrl-C.",
    ),
    "today": Entry(
        "traction.commands.today:today",
        "The worklist: unsigned notes, co-signatures due, held claims with what to fix and who "
        "must fix it, and interrupted sessions, in the clinic's local time.",
    ),
    "backup": Entry(
        "traction.commands.backup:backup",
        "Back up the session store while sessions may be running, then check the copy.",
    ),
    "restore": Entry(
        "traction.commands.backup:restore",
        "Restore a backup into the configured store, then verify every seal in it.",
    ),
    "login": Entry("traction.commands.login:login", "Sign in with your password, for one shift."),
    "logout": Entry(
        "traction.commands.login:logout", "Sign out: the saved sign-in is revoked at once."
    ),
    "whoami": Entry(
        "traction.commands.login:whoami", "Who is signed in at this command line, and their role."
    ),
    "sessions": Entry("traction.cli:SESSIONS", "Recorded sessions: list, show, amend, sign."),
    "patients": Entry(
        "traction.commands.people:patients_app",
        "Patients by the clinic's reference (never a name).",
    ),
    "plans": Entry(
        "traction.commands.plans:plans_app",
        "Plans of care: each patient's dose and its per-session progression.",
    ),
    "clinicians": Entry(
        "traction.commands.people:clinicians_app", "Treating and supervising clinicians."
    ),
    "db": Entry(
        "traction.commands.records:db_app", "The session database: schema status and upgrades."
    ),
    "tables": Entry("traction.commands.tables:tables_app", "The tables wired to this workstation."),
    "users": Entry(
        "traction.commands.accounts:users_app",
        "Users of the HTTP service and their roles: technician, clinician, billing, admin.",
    ),
    "tokens": Entry(
        "traction.commands.accounts:tokens_app",
        "Bearer tokens for the HTTP service (shown once, stored as a hash).",
    ),
    "tls": Entry(
        "traction.commands.tls:tls_app",
        "TLS certificates for `traction serve` on a clinic network.",
    ),
    "audit": Entry(
        "traction.commands.audit:audit",
        "List who read or exported which patient's records, and when.",
    ),
}


SESSIONS: dict[str, Entry] = {
    "list": Entry("traction.commands.listing:list_sessions", "List sessions, newest first."),
    "show": Entry(
        "traction.commands.records:show_session",
        "Show one session: device, settings, outcome, events and amendments.",
    ),
    "amend": Entry(
        "traction.commands.records:amend_session",
        "Complete or correct a documentation field; recorded forces and events never change.",
    ),
    "sign": Entry(
        "traction.commands.records:sign_session",
        "Sign the note as the clinician signed in with `traction login`, first recording the "
        "visit's minutes and same-day codes (each an amendment, so when and by whom is kept; "
        "every signed version is kept).",
    ),
    "cosign": Entry(
        "traction.commands.records:cosign_session",
        "Co-sign an assistant's signed note as its supervising therapist (signed in with "
        "`traction login`): a second, distinct signature.",
    ),
}
"""``traction sessions``: a group whose commands load one by one too, so that the listing (asked
for far more often than the rest) never loads what signing and amending need."""


def load_command(name: str, entries: dict[str, Entry] = COMMANDS) -> Any:
    """Import one command's module and build its (click) command; a target that is itself a
    listing like :data:`COMMANDS` becomes a group that loads its commands the same way."""
    module, _, attribute = entries[name].target.partition(":")
    target: Any = getattr(importlib.import_module(module), attribute)
    if isinstance(target, dict):
        group = LazyCommands(
            name=name, help=entries[name].summary, no_args_is_help=True, rich_markup_mode="rich"
        )
        group.entries = target
        return group
    if isinstance(target, typer.Typer):
        return _with_paragraphs(typer.main.get_group(target))
    single = typer.Typer(rich_markup_mode="rich")
    single.command(name)(target)
    return _with_paragraphs(typer.main.get_command(single))


def _with_paragraphs(command: Any) -> Any:
    """``command`` (and its subcommands) with each paragraph of its help on one line.

    In rich markup mode typer keeps every line break of a docstring, so lines wrapped at the
    source's 100 columns were broken again at the terminal's width, leaving every other line a
    few words long. A line that starts a list item (``-``) or is indented keeps its break."""
    if command.help:
        command.help = paragraphs(command.help)
    for sub in getattr(command, "commands", {}).values():
        _with_paragraphs(sub)
    return command


def paragraphs(text: str) -> str:
    """``text`` (a docstring) with the lines of each paragraph joined by spaces."""
    kept = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        lines = paragraph.split("\n")
        joined = lines[:1]
        for line in lines[1:]:
            if line.startswith(("-", " ")):
                joined.append(line)
            else:
                joined[-1] = f"{joined[-1]} {line}"
        kept.append("\n".join(joined))
    return "\n\n".join(kept)


class LazyCommands(TyperGroup):
    """A command group that imports a command's module only when it is about to run."""

    entries = COMMANDS
    _listing = False

    # Contexts and formatters are typer's own click types; Any keeps this file off its internals.
    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.entries)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.entries:
            return None
        if self._listing:  # the group's own help: a name and a summary is all it shows
            return TyperCommand(cmd_name, help=self.entries[cmd_name].summary)
        return load_command(cmd_name, self.entries)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="traction",
    cls=LazyCommands,
    help=(
        "Drive mechanical traction tables inside safety limits, record what they did, "
        "and document CPT 97012 for billing."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)


QUIET = frozenset(
    {"sessions", "patients", "plans", "clinicians", "db", "users", "tokens", "verify"}
)
"""Commands that read and write records but log nothing of their own: structured logging (and
its traceback renderer) is set up for them only when asked for with --log-level or --log-json."""


@app.callback()
def _global(
    ctx: typer.Context,
    log_level: str = typer.Option("warning", help="debug, info, warning or error."),
    log_json: bool = typer.Option(False, "--log-json", help="Write logs as JSON lines on stderr."),
) -> None:
    """Traction tables: simulate, run, record, export."""
    ctx.call_on_close(_close_opened)
    if ctx.invoked_subcommand in QUIET and log_level == "warning" and not log_json:
        return
    from traction.logs import configure_logging

    configure_logging(log_level, json=log_json)


def _close_opened() -> None:
    """Close the stores the command opened (if it opened any: a command that never loaded
    :mod:`traction.context` pays nothing for this)."""
    context = sys.modules.get("traction.context")
    if context is not None:
        context.close_opened()


def main() -> None:
    app()

"""The ``traction`` command: one entry point for the workstation, the technician and billing."""

from __future__ import annotations

import typer

from traction.commands.accounts import tokens_app, users_app
from traction.commands.demo import demo
from traction.commands.export import export
from traction.commands.people import clinicians_app, patients_app
from traction.commands.records import db_app, sessions_app, verify
from traction.commands.run import run
from traction.commands.serve import serve
from traction.commands.simulate import simulate
from traction.commands.tables import tables_app
from traction.logs import configure_logging

app = typer.Typer(
    name="traction",
    help=(
        "Drive mechanical traction tables inside safety limits, record what they did, "
        "and document CPT 97012 for billing."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@app.callback()
def _global(
    log_level: str = typer.Option("warning", help="debug, info, warning or error."),
    log_json: bool = typer.Option(False, "--log-json", help="Write logs as JSON lines on stderr."),
) -> None:
    """Traction tables: simulate, run, record, export."""
    configure_logging(log_level, json=log_json)


app.command()(demo)
app.command()(run)
app.command()(simulate)
app.command()(export)
app.command()(verify)
app.add_typer(sessions_app, name="sessions")
app.add_typer(patients_app, name="patients")
app.add_typer(clinicians_app, name="clinicians")
app.add_typer(db_app, name="db")
app.add_typer(tables_app, name="tables")
app.command()(serve)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")


def main() -> None:
    app()

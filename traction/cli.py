"""The ``traction`` command: one entry point for the workstation, the technician and billing."""

from __future__ import annotations

import typer

from traction.commands.simulate import simulate
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


app.command()(simulate)


def main() -> None:
    app()

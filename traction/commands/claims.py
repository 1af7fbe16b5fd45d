"""``traction claims``: the claims ledger - pull lines by cursor, correct or void a sent line."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from session.exports import correct_line, render_ledger_csv, void_line
from session.ledger import MAX_PULL, ClaimsLedger
from session.localtime import local_time
from session.models import ClaimLine
from traction.commands.export import _who
from traction.context import open_store, settings_from
from traction.errors import friendly_errors
from traction.options import ConfigOption

claims_app = typer.Typer(
    help="The claims ledger: lines sent, by cursor; corrections (frequency 7) and voids (8).",
    no_args_is_help=True,
)
console = Console()


def lines_table(rows: list[ClaimLine]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("line", "freq", "replaces", "date", "patient", "code", "modifiers"):
        table.add_column(column, no_wrap=True)
    table.add_column("units", justify="right")
    table.add_column("charge", justify="right")
    table.add_column("diagnoses")
    table.add_column("sessions")
    for r in rows:
        table.add_row(
            str(r.id),
            r.frequency,
            "" if r.replaces_line_id is None else str(r.replaces_line_id),
            str(r.date_of_service),
            r.patient_ref,
            r.cpt_code,
            " ".join(r.modifiers),
            str(r.units),
            f"${r.charge}",
            " ".join(r.diagnoses),
            " ".join(s[:12] for s in r.session_ids),
        )
    return table


@claims_app.command("pull")
def pull(
    after: Annotated[
        int, typer.Option(min=0, help="Lines after this claim line id (0: from the start).")
    ] = 0,
    limit: Annotated[int, typer.Option(min=1, max=MAX_PULL, help="Lines at most.")] = 100,
    csv: Annotated[bool, typer.Option("--csv", help="Print the lines as CSV.")] = False,
    config: ConfigOption = None,
) -> None:
    """Lines sent after a cursor, oldest first; pass the printed next cursor back as --after.

    Example: traction claims pull --after 41 --csv > new-lines.csv
    """
    with friendly_errors():
        store = open_store(settings_from(config))
        rows = ClaimsLedger(store.engine).lines_after(after, limit)
        if csv:
            typer.echo(render_ledger_csv(rows), nl=False)
            return
        console.print(lines_table(rows))
        cursor = rows[-1].id if rows else after
        console.print(f"{len(rows)} line(s); next cursor: --after {cursor}")


@claims_app.command("runs")
def runs(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Runs at most.")] = 20,
    config: ConfigOption = None,
) -> None:
    """Export runs, newest first: who, when, which sessions, lines and files, what was held."""
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        ledger = ClaimsLedger(store.engine)
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("run", "at", "by", "kind", "sessions", "lines", "held", "files"):
            table.add_column(column)
        for run in ledger.runs(limit):
            lines = [str(line.id) for line in ledger.run_lines(run.id or 0)]
            table.add_row(
                str(run.id),
                local_time(run.at, settings.zone, seconds=True),
                run.by,
                run.kind,
                str(len(run.session_ids)),
                " ".join(lines),
                str(len(run.held)),
                "\n".join(run.files),
            )
        console.print(table)


@claims_app.command("correct")
def correct(
    line_id: Annotated[int, typer.Argument(help="The claim line in force to replace.")],
    why: Annotated[str, typer.Option(help="Why the sent line is corrected (kept in the ledger).")],
    config: ConfigOption = None,
) -> None:
    """Replace a sent line (frequency 7) with what its sessions' documentation gives now.

    Amend the documentation first (e.g. diagnoses), then: traction claims correct 12 --why "..."
    """
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        row = correct_line(store, line_id, why, _who(settings), settings.export_options())
        console.print(lines_table([row]))
        console.print(f"claim line {row.id} replaces line {line_id} (frequency 7)")


@claims_app.command("void")
def void(
    line_id: Annotated[int, typer.Argument(help="The claim line in force to void.")],
    why: Annotated[str, typer.Option(help="Why the sent line is voided (kept in the ledger).")],
    config: ConfigOption = None,
) -> None:
    """Void a sent line (frequency 8): the payer is told to cancel it."""
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        row = void_line(store, line_id, why, _who(settings))
        console.print(f"claim line {row.id} voids line {line_id} (frequency 8)")

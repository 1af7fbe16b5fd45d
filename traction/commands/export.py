"""``traction export``: documents and billing lines for one session or a date range."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from session.billing import parse_money
from session.exports import ExportFormat, ExportSummary, export_to_directory, export_to_file
from session.store import SessionQuery
from traction.context import open_store, settings_from
from traction.errors import friendly_errors
from traction.options import ConfigOption

console = Console()


def summary_table(summary: ExportSummary) -> Table:
    table = Table(title="Billing readiness")
    table.add_column("session", no_wrap=True, min_width=32)
    table.add_column("status")
    table.add_column("what to fix")
    for session_id in summary.ready:
        table.add_row(session_id, "[green]ready[/]", "")
    for session_id, findings in summary.blocked.items():
        fixes = "\n".join(
            f"{f.code}: {f.message}" for f in findings if f.severity.value == "blocking"
        )
        table.add_row(session_id, "[red]blocked[/]", fixes)
    return table


def export(
    session_ids: Annotated[
        list[str] | None, typer.Argument(help="Session ids; or use --since/--until.")
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Finished sessions from this date (UTC)."),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="... up to (not including) this date."),
    ] = None,
    fmt: Annotated[
        list[ExportFormat] | None,
        typer.Option(
            "--format",
            "-f",
            help="json, csv, pdf, fhir, x12; repeatable (default: pdf, json, csv).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output directory (default: the data directory's exports/), or a file name "
            "for one session in one format."
        ),
    ] = None,
    payer: Annotated[
        str | None, typer.Option(help="Payer key overriding each patient's own.")
    ] = None,
    ytd_spend: Annotated[
        str,
        typer.Option(help="Patient's therapy spend this year before these lines, in dollars (KX)."),
    ] = "0",
    config: ConfigOption = None,
) -> None:
    """Export sessions as documents and billing lines, and say which are ready to bill.

    Two sessions of one patient on one date are one 97012 unit: the second is documented, not billed.
    A combined billing-lines.csv holds every line of the run.

    Examples:

      traction export 3f2a... --format pdf

      traction export --since 2026-11-01 --until 2026-12-01 -f csv -f x12 --out claims/
    """
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        spend = parse_money(ytd_spend, "--ytd-spend")
        ids = [store.resolve_session_id(text) for text in session_ids or []]
        if not ids:
            if since is None and until is None:
                raise typer.BadParameter(
                    "name session ids or give --since/--until", param_hint="SESSION_IDS"
                )
            query = SessionQuery(
                since=since.replace(tzinfo=UTC) if since else None,
                until=until.replace(tzinfo=UTC) if until else None,
                unfinished=False,
            )
            ids = [row.id for row in store.find_sessions(query)]
        if not ids:
            console.print("no finished sessions match; nothing exported")
            return
        formats = fmt or [ExportFormat.PDF, ExportFormat.JSON, ExportFormat.CSV]
        target = out or settings.export_dir
        if out is not None and out.suffix and not out.is_dir():
            if len(ids) != 1 or len(formats) != 1:
                raise typer.BadParameter(
                    "a file name takes one session and one --format; give a directory for more",
                    param_hint="--out",
                )
            summary = export_to_file(
                store,
                ids[0],
                formats[0],
                out,
                settings.export_options(payer, spend),
            )
            console.print(summary_table(summary))
            console.print(f"wrote {out}")
            return
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("exporting", total=len(ids))
            summary = export_to_directory(
                store,
                ids,
                formats,
                target,
                settings.export_options(payer, spend),
                progress=lambda _sid: progress.advance(task),
            )
        console.print(summary_table(summary))
        console.print(
            f"{len(summary.files)} file(s) in {target}; {len(summary.ready)} ready, "
            f"{len(summary.blocked)} blocked; {len(summary.lines)} billing line(s)"
        )

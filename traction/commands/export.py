"""``traction export``: bill sessions through the claims ledger and write their documents."""

from __future__ import annotations

import getpass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from session.audit import Access, Accessed, AccessLog
from session.billing import parse_money
from session.exports import (
    MAX_SESSIONS_PER_EXPORT,
    ExportFormat,
    ExportSummary,
    export_to_directory,
    export_to_file,
)
from session.ledger import ClaimsLedger
from session.store import SessionQuery
from traction.context import open_store, settings_from
from traction.errors import friendly_errors
from traction.exitcodes import Exit
from traction.options import ConfigOption
from traction.settings import Settings

console = Console()

STATUS_STYLE = {
    "sent": "[green]sent[/]",
    "already_sent": "[cyan]already sent[/]",
    "ready": "[green]ready[/]",
    "documented_only": "[cyan]documented only[/]",
    "held": "[red]held[/]",
    "simulated": "[magenta]simulated[/]",
}


def summary_table(summary: ExportSummary) -> Table:
    """Every session with its billing status and every finding of every severity."""
    table = Table(title="Billing")
    table.add_column("session", no_wrap=True, min_width=32)
    table.add_column("status", no_wrap=True)
    table.add_column("line", no_wrap=True)
    table.add_column("findings (code, severity: text) and notes")
    for doc in summary.docs:
        status = doc.billing
        if status is None:
            continue
        text = [
            f"{'[red]' if f.severity == 'blocking' else '[yellow]'}{f.code}[/] "
            f"({f.severity}): {f.message}"
            for f in status.findings
        ]
        if status.note:
            text.append(status.note)
        table.add_row(
            doc.session_id,
            STATUS_STYLE[status.status],
            "" if status.claim_line_id is None else str(status.claim_line_id),
            "\n".join(text),
        )
    return table


def _local_day(day: datetime | None, settings: Settings) -> datetime | None:
    """Midnight of a calendar date in the clinic's time zone (dates of service are local)."""
    if day is None:
        return None
    return datetime.combine(day.date(), time.min, tzinfo=settings.zone)


def _who(settings: Settings) -> str:
    return f"{getpass.getuser()}@{settings.workstation}"


def export(
    session_ids: Annotated[
        list[str] | None, typer.Argument(help="Session ids; or use --new or --since/--until.")
    ] = None,
    new: Annotated[
        bool,
        typer.Option(
            "--new",
            help="Every finished session no claim line covers yet (held ones come back until "
            "they are ready); with --since/--until, only those dates. A store that billed "
            "before it had a ledger starts with --new --since <first day not billed>.",
        ),
    ] = False,
    since: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"], help="Finished sessions from this date (clinic's local date)."
        ),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="... up to and including this local date."),
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
        typer.Option(
            help="Each patient's therapy spend this year billed outside traction, in dollars; "
            "what the ledger billed them is added (KX is decided per patient)."
        ),
    ] = "0",
    config: ConfigOption = None,
) -> None:
    """Bill sessions through the claims ledger and write their documents.

    Each patient's date of service is billed once: a line already sent is reported with its
    claim line id and adds no unit. Claim files (billing-lines.csv, claims.837p.txt) hold only
    the lines this export sent; held lines go to held-lines.csv with their findings. Every
    finding of every severity is listed. Exit code 9 means something was held or simulated.

    Examples:

      traction export --new -f csv -f x12 --out claims/

      traction export 3f2a... --format pdf

      traction export --since 2026-11-01 --until 2026-11-30 -f csv
    """
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        spend = parse_money(ytd_spend, "--ytd-spend")
        ids = [store.resolve_session_id(text) for text in session_ids or []]
        if new and ids:
            raise typer.BadParameter("--new takes no session ids", param_hint="--new")
        start = _local_day(since, settings)
        end = _local_day(until, settings)
        end = end + timedelta(days=1) if end else None
        if new:
            ledger = ClaimsLedger(store.engine)
            ids = ledger.unclaimed_sessions(start, end, MAX_SESSIONS_PER_EXPORT + 1)
            if not ids:
                console.print("nothing new: every finished session is covered by a claim line")
                return
            if len(ids) > MAX_SESSIONS_PER_EXPORT:
                ids = ids[:MAX_SESSIONS_PER_EXPORT]
                console.print(
                    f"[yellow]more than {MAX_SESSIONS_PER_EXPORT} sessions are new: billing the "
                    "oldest now; run again for the rest[/]"
                )
        elif not ids:
            if since is None and until is None:
                raise typer.BadParameter(
                    "name session ids, or give --new or --since/--until",
                    param_hint="SESSION_IDS",
                )
            query = SessionQuery(since=start, until=end, unfinished=False)
            ids = store.session_ids(query)
        if not ids:
            console.print("no finished sessions match; nothing exported")
            return
        formats = fmt or [ExportFormat.PDF, ExportFormat.JSON, ExportFormat.CSV]
        target = out or settings.export_dir
        options = settings.export_options(payer, spend)
        if out is not None and out.suffix and not out.is_dir():
            if len(ids) != 1 or len(formats) != 1:
                raise typer.BadParameter(
                    "a file name takes one session and one --format; give a directory for more",
                    param_hint="--out",
                )
            summary = export_to_file(store, ids[0], formats[0], out, options, _who(settings))
            console.print(summary_table(summary))
            if summary.files:
                console.print(f"wrote {out}")
            else:
                console.print(f"[yellow]nothing written to {out}[/]: {summary.notes[ids[0]]}")
        else:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("exporting", total=len(ids))
                summary = export_to_directory(
                    store,
                    ids,
                    formats,
                    target,
                    options,
                    progress=lambda _sid: progress.advance(task),
                    by=_who(settings),
                )
            console.print(summary_table(summary))
            console.print(
                f"export run {summary.run_id}: {len(summary.files)} file(s) in {target}; "
                f"{len(summary.sent)} line(s) sent, {len(summary.already_sent)} already sent, "
                f"{len(summary.held)} held, {len(summary.simulated)} simulated (never billed)"
            )
        exported = ",".join(f.value for f in formats)
        accessed = [Accessed(session_id, detail=exported) for session_id in ids]
        AccessLog(store.engine).record(_who(settings), Access.EXPORT, "traction export", accessed)
        if summary.anything_held:
            raise typer.Exit(Exit.HELD)

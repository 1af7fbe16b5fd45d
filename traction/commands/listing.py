"""``traction sessions list``: a screenful of sessions, newest first, at once.

It loads settings, SQLAlchemy Core and the listing query (:mod:`session.listing`), and nothing of
the ORM models, the HTTP service or the exports: a year of sessions answers in a fraction of a
second, most of it the interpreter and the command-line libraries starting.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import datetime, time, tzinfo
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from devices.records import Outcome
from session import listing
from session.listing import MAX_PAGE, SessionQuery, SessionSummary
from session.localtime import local_time
from traction.context import open_engine, settings_from
from traction.errors import friendly_errors
from traction.options import ConfigOption

LIST_PAGE = 500
"""Sessions read and drawn at a time, so --all over a year of sessions stays small in memory."""
_WIDTHS = {"session": 12, "started": 24, "patient": 16, "region": 18, "outcome": 11}

console = Console()


def list_sessions(
    patient: Annotated[str | None, typer.Option(help="Patient reference.")] = None,
    clinician: Annotated[
        int | None, typer.Option(help="Treating or supervising clinician id.")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="From this local date.")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Before this local date.")
    ] = None,
    outcome: Annotated[
        Outcome | None, typer.Option(help="completed, stopped, tripped or interrupted.")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1, max=MAX_PAGE, help="Show this many, newest first (default: a screenful)."
        ),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Show every matching session, newest first.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """List sessions, newest first. Example: traction sessions list --patient MRN-00412 --since 2026-11-01"""
    with friendly_errors():
        settings = settings_from(config)
        engine = open_engine(settings)
        try:
            query = SessionQuery(
                patient_id=listing.patient_id(engine, patient) if patient else None,
                clinician_id=clinician,
                since=datetime.combine(since.date(), time.min, settings.zone) if since else None,
                until=datetime.combine(until.date(), time.min, settings.zone) if until else None,
                outcome=outcome,
            )
            wanted = None if show_all else (limit or _screenful())
            shown = 0
            after = None
            while wanted is None or shown < wanted:
                page_size = LIST_PAGE if wanted is None else min(LIST_PAGE, wanted - shown)
                rows = listing.list_sessions(
                    engine, query, limit=page_size, after=after, newest_first=True
                )
                if rows:
                    console.print(_session_table(rows, settings.zone, header=shown == 0))
                    shown += len(rows)
                    after = rows[-1].cursor
                if len(rows) < page_size:
                    break
            total = listing.count_sessions(engine, query) if shown == wanted else shown
        finally:
            engine.dispose()
        if shown < total:
            console.print(
                f"{shown} of {total} session(s); --limit N or --all for more, "
                "--since/--patient to narrow"
            )
        else:
            console.print(f"{total} session(s)")


def _screenful() -> int:
    """Rows that fit the terminal with the header and the summary line."""
    return max(10, shutil.get_terminal_size((100, 30)).lines - 6)


def _session_table(rows: Sequence[SessionSummary], zone: tzinfo, *, header: bool) -> Table:
    """One page of the listing, times in the clinic's zone; fixed column widths, so pages line
    up under one header."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, show_header=header)
    for column, width in _WIDTHS.items():
        table.add_column(column, no_wrap=True, min_width=width, max_width=width)
    table.add_column("samples", justify="right", no_wrap=True, min_width=8, max_width=8)
    table.add_column("sealed", no_wrap=True, min_width=6, max_width=6)
    for row in rows:
        table.add_row(
            row.id[:12],
            local_time(row.started_at, zone) + (" SIM" if row.simulated else ""),
            row.patient_reference,
            ", ".join(row.regions),
            row.outcome or "[yellow]running[/]",
            str(row.sample_count),
            "yes" if row.sealed else "no",
        )
    return table

"""``traction today``: what is left to do, and who must do it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from session.localtime import local_time
from session.worklist import WorkKind, worklist
from traction.context import open_store, settings_from
from traction.errors import friendly_errors
from traction.options import ConfigOption

console = Console()

_TITLES = {
    WorkKind.UNSIGNED: "Notes to sign",
    WorkKind.COSIGN: "Co-signatures due",
    WorkKind.HELD: "Claims held",
    WorkKind.INTERRUPTED: "Interrupted sessions to review",
}


def today(
    days: Annotated[
        int, typer.Option(min=1, max=366, help="Look back this many days (clinic time).")
    ] = 30,
    config: ConfigOption = None,
) -> None:
    """The worklist: unsigned notes, co-signatures due, held claims with what to fix and who must
    fix it, and interrupted sessions, in the clinic's local time.

    Example: traction today --days 7
    """
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        now = datetime.now(settings.zone)
        since = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
        items = worklist(store, since, settings.export_options())
        zone = settings.time_zone
        console.print(
            f"[bold]Worklist[/] since {since:%Y-%m-%d} ({zone}); {len(items)} open item(s)"
        )
        for kind in WorkKind:
            mine = [i for i in items if i.kind is kind]
            if not mine:
                continue
            table = Table(
                "started", "session", "patient", "who", "what", box=box.SIMPLE,
                title=f"{_TITLES[kind]} ({len(mine)})", title_justify="left",
            )  # fmt: skip
            for item in mine:
                table.add_row(
                    local_time(item.started_at, settings.zone),
                    item.session_id[:12],
                    item.patient_ref,
                    item.who,
                    item.what,
                )
            console.print(table)
        if not items:
            console.print("[green]nothing left to do[/]")

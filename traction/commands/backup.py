"""``traction backup`` and ``restore``: copies of the store that are known to be whole."""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from session.backup import CopyReport
from session.backup import backup as backup_store
from session.backup import restore as restore_store
from session.localtime import local_time
from traction.context import settings_from
from traction.errors import friendly_errors
from traction.exitcodes import Exit
from traction.options import ConfigOption

console = Console()


def backup(
    file: Annotated[Path, typer.Argument(help="The backup file to write (must not exist).")],
    config: ConfigOption = None,
) -> None:
    """Back up the session store while sessions may be running, then check the copy.

    SQLite stores are copied with SQLite's online backup (a plain file copy can miss everything
    still in the -wal file); PostgreSQL stores with pg_dump. The copy's seals are verified and
    what it holds is printed. Example: traction backup /mnt/usb/traction-2026-11-28.db
    """
    with friendly_errors():
        settings = settings_from(config)
        report = backup_store(settings.effective_database_url, file)
        _print(report, f"backup written to {file}", settings.zone)
        if not report.ok:
            raise typer.Exit(Exit.INTEGRITY)


def restore(
    file: Annotated[Path, typer.Argument(help="A file written by `traction backup`.")],
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Restore over a store that already holds sessions (kept aside)."
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Restore a backup into the configured store, then verify every seal in it.

    Refuses to overwrite a store holding sessions unless --replace is given; a replaced SQLite
    store is kept as <file>.before-restore. Example: traction restore traction-2026-11-28.db
    """
    with friendly_errors():
        settings = settings_from(config)
        report = restore_store(file, settings.effective_database_url, replace=replace)
        _print(report, f"restored {file} into {report.where}", settings.zone)
        if not report.ok:
            raise typer.Exit(Exit.INTEGRITY)


def _print(report: CopyReport, headline: str, zone: tzinfo) -> None:
    console.print(headline)
    newest = (
        f"{report.newest_id} started {local_time(report.newest_started_at, zone)}"
        if report.newest_id and report.newest_started_at
        else "none"
    )
    console.print(
        f"holds {report.sessions} session(s) ({report.unfinished} unfinished), "
        f"{report.samples} sample(s); newest session: {newest}"
    )
    if report.ok:
        console.print(f"[green]{report.sealed} seal(s) verified[/]")
        return
    console.print(f"[red]{len(report.changed)} of {report.sealed} seal(s) do not match:[/]")
    for line in report.changed:
        console.print(f"  {line}")

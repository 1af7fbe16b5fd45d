"""``traction audit``: who read or exported which patient's records (the access log)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from devices.errors import ConfigError
from session.audit import MAX_ENTRIES, AccessLog, AccessQuery
from session.localtime import local_time
from traction.context import open_store, settings_from
from traction.errors import friendly_errors
from traction.options import ConfigOption

console = Console()


def _moment(text: str | None, name: str, zone: ZoneInfo) -> datetime | None:
    """A date (midnight in the clinic's zone) or an ISO 8601 date-time (clinic zone if naive)."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            name, f"{text!r} is not a date or date-time; write 2026-11-01 or 2026-11-01T08:00"
        ) from None
    if len(text) == 10:
        moment = datetime.combine(moment.date(), time(0))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def audit(
    user: Annotated[str | None, typer.Option(help="Only this user's accesses.")] = None,
    patient: Annotated[
        str | None, typer.Option(help="Only accesses to this patient reference's records.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="From this date or date-time (clinic time zone).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Before this date or date-time (clinic time zone).")
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_ENTRIES, help="At most this many entries, oldest first.")
    ] = 1000,
    config: ConfigOption = None,
) -> None:
    """List who read or exported which patient's records, and when.

    Every session read, listing, sample page, amendment log, live telemetry stream, export and
    claim line served by `traction serve` is an entry, with the user, the route and the patient;
    so is every `traction export` on the workstation, under the OS user who ran it.

    Example: traction audit --patient MRN-1 --since 2026-11-01
    """
    with friendly_errors():
        settings = settings_from(config)
        query = AccessQuery(
            user,
            patient,
            _moment(since, "--since", settings.zone),
            _moment(until, "--until", settings.zone),
            limit,
        )
        rows = AccessLog(open_store(settings).engine).entries(query)
        table = Table("at", "user", "action", "patient", "session", "what", "detail")
        for row in rows:
            table.add_row(
                local_time(row.at, settings.zone, seconds=True),
                row.user_name,
                row.action,
                row.patient_reference or "",
                (row.session_id or "")[:8],
                row.what,
                row.detail,
            )
        console.print(table)
        if len(rows) == limit:
            console.print(f"[dim]first {limit} entries; narrow with --since/--until or --limit[/]")

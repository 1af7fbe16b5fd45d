"""``traction sessions``, ``verify`` and ``db``: reading the record back, checking it, migrating it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from devices.records import Outcome
from devices.units import format_force
from session.db import current_revision, head_revision, make_engine, upgrade
from session.documentation import build_documentation
from session.exports import render_plot
from session.seal import verify as verify_seal
from session.store import AMENDABLE_FIELDS, SessionQuery
from traction.context import open_store, settings_from
from traction.diagnoses import check_diagnoses
from traction.errors import friendly_errors
from traction.exitcodes import Exit
from traction.options import ConfigOption

sessions_app = typer.Typer(help="Recorded sessions: list, show, amend, sign.", no_args_is_help=True)
db_app = typer.Typer(help="The session database: schema status and upgrades.", no_args_is_help=True)
console = Console()


@sessions_app.command("list")
def list_sessions(
    patient: Annotated[str | None, typer.Option(help="Patient reference.")] = None,
    clinician: Annotated[
        int | None, typer.Option(help="Treating or supervising clinician id.")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="From this date (UTC).")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Before this date (UTC).")
    ] = None,
    outcome: Annotated[
        Outcome | None, typer.Option(help="completed, stopped, tripped or interrupted.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """List sessions, newest first. Example: traction sessions list --patient MRN-00412 --since 2026-11-01"""
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        query = SessionQuery(
            patient_id=store.patient_by_reference(patient).id if patient else None,
            clinician_id=clinician,
            since=since.replace(tzinfo=UTC) if since else None,
            until=until.replace(tzinfo=UTC) if until else None,
            outcome=outcome,
        )
        rows = store.find_sessions(query)[::-1]  # newest first
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        for column in ("session", "started UTC", "patient", "region", "outcome"):
            table.add_column(column, no_wrap=True)
        table.add_column("samples", justify="right", no_wrap=True)
        table.add_column("sealed", no_wrap=True)
        patients: dict[int, str] = {}
        for row in rows:
            if row.patient_id not in patients:
                patients[row.patient_id] = store.get_patient(row.patient_id).reference
            table.add_row(
                row.id[:12],
                f"{row.started_at:%Y-%m-%d %H:%M}",
                patients[row.patient_id],
                ", ".join(row.regions),
                row.outcome or "[yellow]running[/]",
                str(row.sample_count),
                "yes" if row.seal_digest else "no",
            )
        console.print(table)
        console.print(f"{len(rows)} session(s)")


@sessions_app.command("show")
def show_session(
    session_id: Annotated[
        str,
        typer.Argument(help="Session id or its first characters (see `traction sessions list`)."),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the stored record as JSON.")
    ] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Also write the force/time plot to this PNG file.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Show one session: device, settings, outcome, events and amendments."""
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        session_id = store.resolve_session_id(session_id)
        row = store.get_session(session_id)
        if as_json:
            console.print_json(json.dumps(row.model_dump(mode="json")))
            return
        unit = settings.display_unit
        profile: dict[str, Any] = row.settings.get("profile", {})
        info = Table.grid(padding=(0, 2))
        info.add_column(style="bold")
        info.add_column()
        info.add_row("patient", store.get_patient(row.patient_id).reference)
        info.add_row(
            "device",
            f"{row.device_manufacturer} {row.device_model} s/n {row.device_serial} fw {row.device_firmware}",
        )
        info.add_row("regions", ", ".join(row.regions))
        info.add_row("profile", str(profile.get("name", "")))
        if "hold_force_n" in profile:
            info.add_row(
                "hold / rest",
                f"{format_force(profile['hold_force_n'], unit)} / {format_force(profile.get('rest_force_n', 0.0), unit)}",
            )
        info.add_row("started", f"{row.started_at:%Y-%m-%d %H:%M:%S %Z}")
        info.add_row("ended", f"{row.ended_at:%Y-%m-%d %H:%M:%S %Z}" if row.ended_at else "-")
        info.add_row("outcome", f"{row.outcome or 'running'} {row.outcome_reason or ''}")
        info.add_row("samples / events", f"{row.sample_count} / {row.event_count}")
        info.add_row("diagnoses", ", ".join(row.diagnosis_codes) or "-")
        info.add_row("signed", "yes" if row.signed_by_id else "no")
        console.print(info)
        events = Table("t (s)", "kind", "reason", title="events")
        for stored in store.iter_events(session_id):
            if stored.kind != "phase":
                events.add_row(f"{stored.t - row.start_t:.1f}", stored.kind, stored.reason)
        console.print(events)
        if plot is not None and row.outcome is not None:
            doc = build_documentation(
                store, session_id, unit, settings.place_of_service, settings.zone
            )
            plot.write_bytes(render_plot(store, doc))
            console.print(f"plot written to {plot}")
        for amendment in store.amendments(session_id):
            console.print(
                f"amended {amendment.field_name} by {amendment.author} at {amendment.at:%Y-%m-%d %H:%M}: {amendment.why}"
            )


@sessions_app.command("amend")
def amend_session(
    session_id: Annotated[str, typer.Argument(help="Session id.")],
    field: Annotated[str, typer.Argument(help=f"One of: {', '.join(AMENDABLE_FIELDS)}.")],
    value: Annotated[
        str, typer.Argument(help="New value; JSON for lists and numbers, e.g. '[\"M51.16\"]'.")
    ],
    who: Annotated[str, typer.Option(help="Who makes the amendment.")],
    why: Annotated[str, typer.Option(help="Why (kept in the append-only amendment log).")],
    config: ConfigOption = None,
) -> None:
    """Complete or correct a documentation field; recorded forces and events never change."""
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        session_id = store.resolve_session_id(session_id)
        try:
            parsed: Any = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        if field == "diagnosis_codes" and isinstance(parsed, list):
            day = store.get_session(session_id).started_at.astimezone(settings.zone).date()
            check_diagnoses([str(code) for code in parsed], day)
        store.amend(session_id, field, parsed, who, why)
        console.print(f"session {session_id}: {field} amended")


@sessions_app.command("sign")
def sign_session(
    session_id: Annotated[str, typer.Argument(help="Session id.")],
    clinician: Annotated[int, typer.Option(help="Id of the signing clinician.")],
    config: ConfigOption = None,
) -> None:
    """Sign the note as a clinician (an amendment, so when and by whom is kept)."""
    with friendly_errors():
        store = open_store(settings_from(config))
        session_id = store.resolve_session_id(session_id)
        name = store.get_clinician(clinician).name
        store.amend(session_id, "signed_by_id", clinician, name, "signature")
        console.print(f"session {session_id} signed by {name}")


def verify(
    session_ids: Annotated[
        list[str] | None, typer.Argument(help="Session ids; none means all.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Recompute each session's seal and report anything changed since it was sealed."""
    with friendly_errors():
        store = open_store(settings_from(config))
        ids = [store.resolve_session_id(text) for text in session_ids or []] or [
            row.id for row in store.find_sessions(SessionQuery(unfinished=False))
        ]
        bad = 0
        for session_id in ids:
            report = verify_seal(store, session_id)
            if report.ok:
                console.print(f"[green]ok[/]       {session_id}  {report.actual[:16]}…")
            else:
                bad += 1
                console.print(f"[red]CHANGED[/]  {session_id}: " + "; ".join(report.differences))
        if bad:
            console.print(f"[red]{bad} of {len(ids)} session(s) do not match their seal[/]")
            raise typer.Exit(Exit.INTEGRITY)
        console.print(f"{len(ids)} session(s) verified")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Create or migrate the session database to this software's schema."""
    with friendly_errors():
        settings = settings_from(config)
        revision = upgrade(settings.effective_database_url)
        console.print(f"database at revision {revision} ({settings.effective_database_url})")


@db_app.command("status")
def db_status(config: ConfigOption = None) -> None:
    """Show the database's schema revision against this software's."""
    with friendly_errors():
        settings = settings_from(config)
        engine = make_engine(settings.effective_database_url)
        console.print(f"database {engine.url.render_as_string(hide_password=True)}")
        console.print(
            f"schema revision {current_revision(engine) or 'none'}; software expects {head_revision()}"
        )

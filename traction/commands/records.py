"""``traction sessions`` show, amend, sign and cosign, ``verify`` and ``db``: reading the record
back, completing it, checking it, migrating it (the listing is :mod:`traction.commands.listing`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from devices.units import format_force
from session.db import current_revision, head_revision, make_engine, upgrade
from session.localtime import local_time
from session.store import AMENDABLE_FIELDS, MAX_VISIT_MINUTES, SessionQuery
from traction.context import open_store, settings_from
from traction.errors import friendly_errors
from traction.exitcodes import Exit
from traction.options import ConfigOption
from traction.signin import documenting_user, signing_clinician

db_app = typer.Typer(help="The session database: schema status and upgrades.", no_args_is_help=True)
console = Console()


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
        if row.simulated:
            info.add_row("SIMULATED", f"simulated table, x{row.time_scale:g} time: never billed")
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
        zone = settings.zone
        info.add_row("started", local_time(row.started_at, zone, seconds=True))
        info.add_row("ended", local_time(row.ended_at, zone, seconds=True) if row.ended_at else "-")
        info.add_row("outcome", f"{row.outcome or 'running'} {row.outcome_reason or ''}")
        info.add_row("samples / events", f"{row.sample_count} / {row.event_count}")
        info.add_row("diagnoses", ", ".join(row.diagnosis_codes) or "-")
        info.add_row("signed", local_time(row.signed_at, zone) if row.signed_at else "no")
        if row.cosigned_at is not None:
            info.add_row("co-signed", local_time(row.cosigned_at, zone))
        console.print(info)
        events = Table("t (s)", "kind", "reason", title="events")
        for stored in store.iter_events(session_id):
            if stored.kind != "phase":
                events.add_row(f"{stored.t - row.start_t:.1f}", stored.kind, stored.reason)
        console.print(events)
        if plot is not None and row.outcome is not None:
            from session.documentation import build_documentation
            from session.exports import render_plot

            doc = build_documentation(
                store, session_id, unit, settings.place_of_service, settings.zone
            )
            plot.write_bytes(render_plot(store, doc))
            console.print(f"plot written to {plot}")
        for amendment in store.amendments(session_id):
            console.print(
                f"amended {amendment.field_name} by {amendment.author} at "
                f"{local_time(amendment.at, zone)}: {amendment.why}"
            )


def amend_session(
    session_id: Annotated[str, typer.Argument(help="Session id.")],
    field: Annotated[str, typer.Argument(help=f"One of: {', '.join(AMENDABLE_FIELDS)}.")],
    value: Annotated[
        str, typer.Argument(help="New value; JSON for lists and numbers, e.g. '[\"M51.16\"]'.")
    ],
    why: Annotated[str, typer.Option(help="Why (kept in the append-only amendment log).")],
    config: ConfigOption = None,
) -> None:
    """Complete or correct a documentation field; recorded forces and events never change.

    The amendment names the clinician signed in with `traction login`. Amending a signed note
    reopens it: it must be signed again before it bills.
    """
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        session_id = store.resolve_session_id(session_id)
        author = documenting_user(store, settings).name
        try:
            parsed: Any = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        if field == "diagnosis_codes" and isinstance(parsed, list):
            from traction.diagnoses import check_diagnoses

            day = store.get_session(session_id).started_at.astimezone(settings.zone).date()
            check_diagnoses([str(code) for code in parsed], day)
        was_signed = store.get_session(session_id).signed_by_id is not None
        store.amend(session_id, field, parsed, author, why)
        console.print(f"session {session_id}: {field} amended by {author}")
        if was_signed and field != "signed_by_id":
            console.print("[yellow]the note was signed: it is reopened until signed again[/]")


def sign_session(
    session_id: Annotated[str, typer.Argument(help="Session id.")],
    visit_timed_minutes: Annotated[
        float | None,
        typer.Option(min=0, max=MAX_VISIT_MINUTES, help="Total timed-code minutes of the visit."),
    ] = None,
    visit_treatment_minutes: Annotated[
        float | None,
        typer.Option(min=0, max=MAX_VISIT_MINUTES, help="Total treatment minutes of the visit."),
    ] = None,
    same_day_code: Annotated[
        list[str] | None,
        typer.Option(help="Another CPT code billed on the visit (NCCI pairs). Repeatable."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Sign the note as the clinician signed in with `traction login`, first recording the
    visit's minutes and same-day codes (each an amendment, so when and by whom is kept; every
    signed version is kept).

    Example: traction sessions sign 3f2a91 --visit-timed-minutes 38
    --visit-treatment-minutes 52 --same-day-code 97110
    """
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        session_id = store.resolve_session_id(session_id)
        user, signer = signing_clinician(store, settings)
        author = user.name
        entries: list[tuple[str, Any]] = [
            ("visit_timed_minutes", visit_timed_minutes),
            ("visit_treatment_minutes", visit_treatment_minutes),
            ("same_day_codes", list(same_day_code) if same_day_code else None),
        ]
        for name, entered in entries:
            if entered is not None:
                store.amend(session_id, name, entered, author, "entered at signing")
        store.amend(session_id, "signed_by_id", signer, author, "signature")
        versions = store.signed_versions(session_id)
        console.print(f"session {session_id} signed by {author} (version {len(versions)})")


def cosign_session(
    session_id: Annotated[str, typer.Argument(help="Session id.")],
    config: ConfigOption = None,
) -> None:
    """Co-sign an assistant's signed note as its supervising therapist (signed in with
    `traction login`): a second, distinct signature. Amending the note afterwards withdraws
    both signatures until the note is signed and co-signed again.

    Example: traction sessions cosign 3f2a91
    """
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        session_id = store.resolve_session_id(session_id)
        user, cosigner = signing_clinician(store, settings)
        store.amend(session_id, "cosigned_by_id", cosigner, user.name, "co-signature")
        console.print(f"session {session_id} co-signed by {user.name}")


def verify(
    session_ids: Annotated[
        list[str] | None, typer.Argument(help="Session ids; none means all.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Recompute each session's seal and report anything changed since it was sealed."""
    from session.seal import verify as verify_seal

    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        ids = [store.resolve_session_id(text) for text in session_ids or []]
        ids = ids or store.session_ids(SessionQuery(unfinished=False))
        if not ids:
            console.print(
                "nothing to verify: the store holds no finished session "
                f"({settings.effective_database_url}). A copy made with a plain file copy while "
                "sessions ran can be empty: use `traction backup`."
            )
            raise typer.Exit(Exit.NOTHING)
        bad = 0
        for session_id in ids:
            report = verify_seal(store, session_id, keep=True)
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

"""``traction run``: treat one patient on one table from a profile."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console

from devices.limits import load_limits
from devices.loop import StartRefused
from devices.profiles import ForceProfile
from devices.records import Outcome
from devices.units import ForceUnit, format_force
from session.models import AbnStatus
from session.plans import CarePlans, next_step, progression_of
from session.store import SessionContext
from traction.context import open_store, settings_from
from traction.diagnoses import check_diagnoses
from traction.dose import DoseChange, HoldForce, HoldSeconds, Minutes, RestForce, RestSeconds
from traction.errors import friendly_errors
from traction.exitcodes import Exit
from traction.faults import parse_fault
from traction.options import ConfigOption
from traction.treat import Refused, resolve_profile, treat

OUTCOME_EXIT = {
    Outcome.COMPLETED: Exit.OK,
    Outcome.STOPPED: Exit.STOPPED,
    Outcome.TRIPPED: Exit.TRIPPED,
    Outcome.INTERRUPTED: Exit.FAILED,
}


def run(
    patient: Annotated[str, typer.Option(help="Patient reference (see `traction patients`).")],
    clinician: Annotated[
        int, typer.Option(help="Treating clinician id (see `traction clinicians`).")
    ],
    profile: Annotated[
        str | None,
        typer.Argument(
            help="Profile file, or a shipped one: demo, lumbar-intermittent, ...; default: the "
            "patient's plan of care (`traction plans`)."
        ),
    ] = None,
    supervisor: Annotated[
        int | None, typer.Option(help="Supervising clinician id, if another.")
    ] = None,
    table: Annotated[
        str | None, typer.Option(help="Table name from the settings (default: the first).")
    ] = None,
    url: Annotated[str | None, typer.Option(help="Table URL instead of a configured name.")] = None,
    region: Annotated[
        str | None, typer.Option(help="Region treated; must match the profile's.")
    ] = None,
    diagnosis: Annotated[
        list[str] | None, typer.Option(help="ICD-10-CM code, primary first. Repeatable.")
    ] = None,
    necessity: Annotated[
        str | None, typer.Option(help="Medical necessity: how traction serves the plan of care.")
    ] = None,
    plan_of_care: Annotated[str | None, typer.Option(help="Plan-of-care reference.")] = None,
    abn: Annotated[
        AbnStatus | None, typer.Option(help="Advance Beneficiary Notice status.")
    ] = None,
    confirm_force: Annotated[
        bool,
        typer.Option(
            "--confirm-force",
            help="Operator confirms a hold force above the confirmation threshold.",
        ),
    ] = False,
    hold_force: HoldForce = None,
    rest_force: RestForce = None,
    hold_s: HoldSeconds = None,
    rest_s: RestSeconds = None,
    minutes: Minutes = None,
    time_scale: Annotated[
        float,
        typer.Option(
            min=0.01, max=20, help="Simulated tables only: run this many times faster (at most 20)."
        ),
    ] = 1.0,
    tick_hz: Annotated[
        float | None, typer.Option(help="Control rate; default follows the wire.")
    ] = None,
    fault: Annotated[
        list[str] | None,
        typer.Option(help="Simulated tables only: rehearse KIND@SECONDS, e.g. stop-switch@30."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Treat one patient on one table, with a live force readout.

    Without a profile the dose is the patient's plan of care; --hold-force, --rest-force,
    --hold-s, --rest-s and --minutes change it for this session only. The prescription is checked
    against the safety limits, the table and the patient first; any violation is listed and
    nothing starts. Ctrl-C stops with a controlled ramp-down; a second Ctrl-C releases at once.
    Every sample is recorded and the session sealed.

    Example:

      traction run lumbar-intermittent --patient MRN-00412 --clinician 1 --diagnosis M51.16

      traction run --patient MRN-00412 --clinician 1 --hold-force '45 lbf' --confirm-force
    """
    console = Console()
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        person = store.patient_by_reference(patient)
        plan = None
        if profile is None:
            plan = CarePlans(store.engine).current(patient)
            planned = plan.profile(patient)
        else:
            planned = resolve_profile(profile)
        prescription = DoseChange(hold_force, rest_force, hold_s, rest_s, minutes).apply(planned)
        if region is not None and region != prescription.region.value:
            raise typer.BadParameter(
                f"the profile treats {prescription.region.value}, not {region}; pick a "
                f"{region} profile",
                param_hint="--region",
            )
        if url is not None:
            target_url, label, name = url, url, None
        else:
            configured = settings.table(table) if table is not None else settings.tables[0]
            target_url, label = configured.url, f"{configured.name} ({configured.url})"
            name = configured.name
        check_diagnoses(diagnosis or [], datetime.now(settings.zone).date())
        store.get_clinician(clinician)
        context = SessionContext(
            patient_id=person.id or 0,
            treating_clinician_id=clinician,
            supervising_clinician_id=supervisor,
            workstation=settings.workstation,
            regions=(prescription.region.value,),
            diagnosis_codes=tuple(diagnosis or ()),
            medical_necessity=necessity,
            plan_of_care_ref=plan_of_care,
            patient_position=prescription.position,
            pull_angle_deg=prescription.angle_deg,
            abn_status=abn,
        )
        try:
            result = asyncio.run(
                treat(
                    store,
                    target_url,
                    prescription,
                    person,
                    context,
                    data_dir=settings.data_dir,
                    time_scale=time_scale,
                    unit=settings.display_unit,
                    console=console,
                    operator_confirmed=confirm_force,
                    tick_hz=tick_hz,
                    faults=[parse_fault(text) for text in fault or []],
                    label=label,
                    name=name,
                    memory_limit_mb=settings.treatment_memory_mb,
                )
            )
        except Refused as refused:
            console.print(
                f"[red]Refused:[/] {len(refused.violations)} safety violation(s); nothing was started."
            )
            _confirm_hint(console, prescription, confirm_force, settings.display_unit)
            raise typer.Exit(Exit.REFUSED) from None
        except StartRefused as refused:
            console.print(f"[red]Not started:[/] {refused}")
            raise typer.Exit(Exit.REFUSED) from None
        finished = result.finished
        console.print(
            f"session {result.session_id}: {finished.outcome.value} ({finished.reason}); "
            f"{finished.sample_count} samples recorded, sealed {result.seal[:16]}…"
        )
        console.print(
            f"hold force {format_force(prescription.hold_force_n, settings.display_unit)}; "
            f"export: traction export {result.session_id} --format pdf"
        )
        if plan is not None:
            step = next_step(planned, progression_of(plan), finished.outcome, settings.display_unit)
            console.print(f"plan of care v{plan.version}: {step.text}")
            if step.dose is not None:
                console.print(f'  to confirm it: traction plans advance {patient} --why "..."')
        if result.locked:
            console.print(
                f"[bold white on red]table {name or target_url} is now LOCKED[/]: no session "
                "starts on it until a clinician has checked the patient and the table and "
                f'acknowledged: traction tables ack {name or target_url} --reason "what was checked"'
            )
        raise typer.Exit(OUTCOME_EXIT[finished.outcome])


def _confirm_hint(console: Console, dose: ForceProfile, confirmed: bool, unit: ForceUnit) -> None:
    """Name the option that confirms a high force, and the region's threshold in the clinic's
    unit: a refusal that does not say how to confirm teaches staff to confirm every time."""
    threshold = load_limits().confirm_force_n(dose.region)
    if dose.hold_force_n > threshold and not confirmed:
        console.print(
            f"the hold force {format_force(dose.hold_force_n, unit)} is above the "
            f"{dose.region.value} confirmation force {format_force(threshold, unit)}: after "
            "checking the dose with the patient, confirm it with --confirm-force"
        )

"""``traction plans``: each patient's plan of care, the dose ``traction run`` gives by default."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from devices.limits import load_limits
from devices.profiles import ForceProfile, Mode
from devices.units import ForceUnit, format_force, parse_force
from session.localtime import local_time
from session.models import Patient
from session.plans import (
    CarePlans,
    PlanVersion,
    Progression,
    next_step,
    progression_of,
    unsafe,
)
from traction.api.access import Permission
from traction.context import open_store, settings_from
from traction.dose import DoseChange, HoldForce, HoldSeconds, Minutes, RestForce, RestSeconds
from traction.errors import friendly_errors
from traction.exitcodes import Exit
from traction.options import ConfigOption
from traction.signin import authorized_user
from traction.treat import resolve_profile, violations_table

plans_app = typer.Typer(
    help="Plans of care: each patient's dose and its per-session progression.",
    no_args_is_help=True,
)
console = Console()


@plans_app.command("set")
def set_plan(
    reference: Annotated[str, typer.Argument(help="The clinic's patient reference.")],
    why: Annotated[str, typer.Option(help="Why the plan changes; kept with the new version.")],
    profile: Annotated[
        str | None,
        typer.Option(
            help="Start from this profile (file or shipped name: its region, kind, ramp, steps, "
            "angle); default: the patient's current plan."
        ),
    ] = None,
    hold_force: HoldForce = None,
    rest_force: RestForce = None,
    hold_s: HoldSeconds = None,
    rest_s: RestSeconds = None,
    minutes: Minutes = None,
    step: Annotated[
        str | None,
        typer.Option(help="Per-session progression: raise the hold force this much, e.g. '5 lbf'."),
    ] = None,
    up_to: Annotated[
        str | None, typer.Option(help="The progression's goal hold force, e.g. '80 lbf'.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Set a patient's plan of care: the dose `traction run --patient` gives without a profile,
    and the per-session progression it suggests. Every version is kept with who (the person
    signed in with `traction login`), when and why.

    Example: traction plans set MRN-00412 --profile lumbar-intermittent --hold-force '40 lbf'
    --rest-force '20 lbf' --minutes 10 --step '5 lbf' --up-to '80 lbf' --why "initial evaluation"
    """
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        plans = CarePlans(store.engine)
        patient = store.patient_by_reference(reference)
        if profile is not None:
            base = resolve_profile(profile)
            old_progression = None
        else:
            current = plans.current(reference)
            base, old_progression = current.profile(reference), progression_of(current)
        change = DoseChange(hold_force, rest_force, hold_s, rest_s, minutes)
        dose = change.apply(base, settings.display_unit)
        progression = _progression(step, up_to, old_progression)
        _refuse_unsafe(dose, patient, settings.display_unit)
        user = authorized_user(store, settings, Permission.REGISTER, "set a plan of care")
        saved = plans.set(reference, dose, progression, by=user.name, why=why)
        console.print(f"plan of care for {reference} is now at version {saved.version}")
        _print_plan(reference, saved, settings.display_unit)


def _refuse_unsafe(dose: ForceProfile, patient: Patient, unit: ForceUnit) -> None:
    """Refuse (exit 3) a dose that breaks a limit no table or session count can change."""
    found = unsafe(dose, patient, load_limits())
    if found:
        console.print(violations_table(found, unit))
        console.print("[red]Refused:[/] the plan breaks the safety limits; it was not saved.")
        raise typer.Exit(Exit.REFUSED)


def _progression(
    step: str | None, up_to: str | None, old: Progression | None
) -> Progression | None:
    if step is None and up_to is None:
        return old
    if step is None or up_to is None:
        raise typer.BadParameter("a progression needs both --step and --up-to", param_hint="--step")
    return Progression(parse_force(step, "--step"), parse_force(up_to, "--up-to"))


@plans_app.command("advance")
def advance_plan(
    reference: Annotated[str, typer.Argument(help="The clinic's patient reference.")],
    why: Annotated[
        str, typer.Option(help="What the clinician saw, e.g. 'tolerated 40 lbf, pain 3/10'.")
    ],
    config: ConfigOption = None,
) -> None:
    """Confirm the plan's suggested next step: the hold force rises by the plan's step (rest in
    proportion), as a new version of the plan.

    Example: traction plans advance MRN-00412 --why "tolerated 40 lbf, pain down to 3/10"
    """
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        plans = CarePlans(store.engine)
        current = plans.current(reference)
        suggestion = next_step(
            current.profile(reference), progression_of(current), None, settings.display_unit
        )
        if suggestion.dose is None:
            console.print(f"nothing to advance: {suggestion.text}")
            raise typer.Exit(Exit.NOTHING)
        _refuse_unsafe(
            suggestion.dose, store.patient_by_reference(reference), settings.display_unit
        )
        user = authorized_user(store, settings, Permission.REGISTER, "set a plan of care")
        saved = plans.set(
            reference, suggestion.dose, progression_of(current), by=user.name, why=why
        )
        console.print(f"plan of care for {reference} is now at version {saved.version}")
        _print_plan(reference, saved, settings.display_unit)


@plans_app.command("show")
def show_plan(
    reference: Annotated[str, typer.Argument(help="The clinic's patient reference.")],
    config: ConfigOption = None,
) -> None:
    """A patient's plan of care, its suggested next step and every earlier version (who, when,
    why)."""
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        plans = CarePlans(store.engine)
        current = plans.current(reference)
        _print_plan(reference, current, settings.display_unit)
        table = Table("version", "when", "by", "why", "dose", box=box.SIMPLE)
        for version in plans.history(reference):
            table.add_row(
                str(version.version),
                local_time(version.at, settings.zone),
                version.by,
                version.why,
                dose_text(version.profile(reference), settings.display_unit),
            )
        console.print(table)


def dose_text(dose: ForceProfile, unit: ForceUnit) -> str:
    """One line a clinician reads: region, kind, forces, times."""
    minutes = f"{dose.total_s / 60:g} min"
    if dose.mode is Mode.CONTINUOUS:
        return f"{dose.region.value} continuous {format_force(dose.hold_force_n, unit)}, {minutes}"
    return (
        f"{dose.region.value} intermittent {format_force(dose.hold_force_n, unit)} / "
        f"{format_force(dose.rest_force_n, unit)}, {dose.hold_s:g} s / {dose.rest_s:g} s, "
        f"{minutes}"
    )


def _print_plan(reference: str, version: PlanVersion, unit: ForceUnit) -> None:
    dose = version.profile(reference)
    progression = progression_of(version)
    console.print(f"[bold]{reference}[/] plan of care, version {version.version}")
    console.print(f"dose         {dose_text(dose, unit)}")
    if progression is not None:
        console.print(
            f"progression  +{format_force(progression.step_n, unit)} per completed session, "
            f"up to {format_force(progression.goal_n, unit)}"
        )
    console.print(f"suggests     {next_step(dose, progression, None, unit).text}")

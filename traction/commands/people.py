"""``traction patients`` and ``traction clinicians``: the people a session is recorded against."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from devices.limits import load_limits
from session.billing import default_payers
from session.localtime import local_time
from session.models import Discipline, Sex
from session.patient_facts import check_weight, parse_weight
from session.patients import PatientChange, PatientRecords
from traction.api.access import Permission
from traction.context import open_store, settings_from
from traction.errors import friendly_errors
from traction.options import ConfigOption
from traction.people import check_new_patient
from traction.signin import authorized_user

patients_app = typer.Typer(
    help="Patients by the clinic's reference (never a name).", no_args_is_help=True
)
clinicians_app = typer.Typer(help="Treating and supervising clinicians.", no_args_is_help=True)
console = Console()


def _operator() -> str:
    """Who changes a record from this workstation's command line: the operating-system user."""
    return f"os user {getpass.getuser()}"


@patients_app.command("add")
def add_patient(
    reference: Annotated[
        str, typer.Argument(help="The clinic's patient reference, e.g. MRN-00412.")
    ],
    weight: Annotated[
        str | None,
        typer.Option(help="Body weight with its unit, e.g. '82 kg' or '180 lb' (limits force)."),
    ] = None,
    weight_kg: Annotated[float | None, typer.Option(help="Body weight in kg.")] = None,
    sex: Annotated[
        Sex, typer.Option(help="Recorded because some limits depend on it.")
    ] = Sex.UNKNOWN,
    contraindication: Annotated[
        list[str] | None,
        typer.Option(
            help="Blocks treatment: a key of [contraindications] in configs/safety.toml, "
            "e.g. osteoporosis. Repeatable."
        ),
    ] = None,
    precaution: Annotated[
        list[str] | None,
        typer.Option(
            help="Warns: a key of [precautions] in configs/safety.toml, e.g. claustrophobia. "
            "Repeatable."
        ),
    ] = None,
    payer: Annotated[str | None, typer.Option(help="Payer key from configs/payers.toml.")] = None,
    config: ConfigOption = None,
) -> None:
    """Register a patient. Example: traction patients add MRN-00412 --weight '180 lb' --sex male --payer medicare"""
    with friendly_errors():
        kg = _weight(weight, weight_kg)
        if kg is None:
            raise typer.BadParameter(
                "give the body weight, e.g. --weight '82 kg'", param_hint="--weight"
            )
        store = open_store(settings_from(config))
        check_new_patient(
            contraindication or [], payer, load_limits(), default_payers(), precaution or []
        )
        patient = store.add_patient(
            reference,
            kg,
            sex=sex,
            contraindications=contraindication or [],
            precautions=precaution or [],
            payer_id=payer,
            by=_operator(),
        )
        console.print(f"patient {patient.reference} added (id {patient.id})")


def _weight(text: str | None, kg: float | None) -> float | None:
    if text is not None and kg is not None:
        raise typer.BadParameter("give --weight or --weight-kg, not both", param_hint="--weight")
    if text is not None:
        return parse_weight(text, "--weight")
    return None if kg is None else check_weight(kg, "--weight-kg")


@patients_app.command("edit")
def edit_patient(
    reference: Annotated[str, typer.Argument(help="The clinic's patient reference.")],
    why: Annotated[str, typer.Option(help="Why the facts change; kept with the new version.")],
    weight: Annotated[
        str | None, typer.Option(help="New body weight, e.g. '84 kg' or '185 lb'.")
    ] = None,
    weight_kg: Annotated[float | None, typer.Option(help="New body weight in kg.")] = None,
    sex: Annotated[Sex | None, typer.Option(help="Corrected sex.")] = None,
    payer: Annotated[str | None, typer.Option(help="New payer key.")] = None,
    add_contraindication: Annotated[
        list[str] | None, typer.Option(help="A contraindication found later. Repeatable.")
    ] = None,
    remove_contraindication: Annotated[
        list[str] | None, typer.Option(help="A contraindication that no longer applies.")
    ] = None,
    add_precaution: Annotated[
        list[str] | None, typer.Option(help="A precaution. Repeatable.")
    ] = None,
    remove_precaution: Annotated[
        list[str] | None, typer.Option(help="A precaution that no longer applies.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Correct or update a patient's facts; the previous version is kept with who (the person
    signed in with `traction login`), when and why.

    Example: traction patients edit MRN-00412 --add-contraindication osteoporosis --why "DEXA 2026-11-20"
    """
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        check_new_patient(
            add_contraindication or [], payer, load_limits(), default_payers(), add_precaution or []
        )
        change = PatientChange(
            body_weight_kg=_weight(weight, weight_kg),
            sex=sex,
            payer_id=payer,
            add_contraindications=add_contraindication or [],
            remove_contraindications=remove_contraindication or [],
            add_precautions=add_precaution or [],
            remove_precautions=remove_precaution or [],
        )
        user = authorized_user(store, settings, Permission.REGISTER, "change a patient's facts")
        patient = PatientRecords(store.engine).edit(reference, change, by=user.name, why=why)
        console.print(f"patient {patient.reference} is now at version {patient.version}")


@patients_app.command("show")
def show_patient(
    reference: Annotated[str, typer.Argument(help="The clinic's patient reference.")],
    config: ConfigOption = None,
) -> None:
    """A patient's current facts and every earlier version, with who changed what and why."""
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        patient = store.patient_by_reference(reference)
        console.print(f"[bold]{patient.reference}[/] (id {patient.id}, version {patient.version})")
        console.print(f"weight      {_kg_lb(patient.body_weight_kg)}")
        console.print(f"sex         {patient.sex}")
        console.print(f"payer       {patient.payer_id or '-'}")
        console.print(f"contraindications  {', '.join(patient.contraindications) or 'none'}")
        console.print(f"precautions        {', '.join(patient.precautions) or 'none'}")
        table = Table("version", "when", "by", "why", "facts", box=box.SIMPLE)
        for version in PatientRecords(store.engine).history(reference):
            facts = version.facts
            table.add_row(
                str(version.version),
                local_time(version.at, settings.zone),
                version.by,
                version.why,
                f"{_kg_lb(facts['body_weight_kg'])}; CI: {', '.join(facts['contraindications']) or '-'}; "
                f"P: {', '.join(facts['precautions']) or '-'}"
                if facts
                else "-",
            )
        console.print(table)


def _kg_lb(kg: float) -> str:
    return f"{kg:g} kg ({kg * 2.2046226218:.0f} lb)"


@patients_app.command("list")
def list_patients(config: ConfigOption = None) -> None:
    """List patients."""
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        changed = PatientRecords(store.engine).last_changed()
        table = Table(
            "id", "reference", "weight", "sex", "payer", "contraindications", "precautions",
            "changed",
        )  # fmt: skip
        for p in store.list_patients():
            at = changed.get(p.id or 0)
            table.add_row(
                str(p.id),
                p.reference,
                _kg_lb(p.body_weight_kg),
                p.sex,
                p.payer_id or "",
                ", ".join(p.contraindications),
                ", ".join(p.precautions),
                f"v{p.version}, {local_time(at, settings.zone)}" if at else f"v{p.version}",
            )
        console.print(table)


@clinicians_app.command("add")
def add_clinician(
    name: Annotated[str, typer.Argument(help="Full name as it appears on the note.")],
    credentials: Annotated[str, typer.Option(help='e.g. "PT, DPT" or "DC".')],
    discipline: Annotated[Discipline, typer.Option(help="PT, OT, SLP or DC (chiropractor).")],
    npi: Annotated[
        str | None, typer.Option(help="National Provider Identifier (billing lines).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Register a clinician. Example: traction clinicians add "Dana Reyes" --credentials "PT, DPT" --discipline PT --npi 1234567893"""
    with friendly_errors():
        store = open_store(settings_from(config))
        clinician = store.add_clinician(name, credentials, discipline, npi=npi)
        console.print(f"clinician {clinician.name} added (id {clinician.id})")


@clinicians_app.command("list")
def list_clinicians(config: ConfigOption = None) -> None:
    """List clinicians."""
    with friendly_errors():
        store = open_store(settings_from(config))
        table = Table("id", "name", "credentials", "discipline", "NPI")
        for c in store.list_clinicians():
            table.add_row(str(c.id), c.name, c.credentials, c.discipline, c.npi or "")
        console.print(table)

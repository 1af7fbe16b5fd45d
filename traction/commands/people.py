"""``traction patients`` and ``traction clinicians``: the people a session is recorded against."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from devices.limits import load_limits
from session.billing import default_payers
from session.models import Discipline, Sex
from traction.context import open_store, settings_from
from traction.errors import friendly_errors
from traction.options import ConfigOption
from traction.people import check_new_patient

patients_app = typer.Typer(
    help="Patients by the clinic's reference (never a name).", no_args_is_help=True
)
clinicians_app = typer.Typer(help="Treating and supervising clinicians.", no_args_is_help=True)
console = Console()


@patients_app.command("add")
def add_patient(
    reference: Annotated[
        str, typer.Argument(help="The clinic's patient reference, e.g. MRN-00412.")
    ],
    weight_kg: Annotated[float, typer.Option(help="Body weight in kg (limits lumbar force).")],
    sex: Annotated[
        Sex, typer.Option(help="Recorded because some limits depend on it.")
    ] = Sex.UNKNOWN,
    contraindication: Annotated[
        list[str] | None,
        typer.Option(help="A flag from configs/safety.toml, e.g. osteoporosis. Repeatable."),
    ] = None,
    payer: Annotated[str | None, typer.Option(help="Payer key from configs/payers.toml.")] = None,
    config: ConfigOption = None,
) -> None:
    """Register a patient. Example: traction patients add MRN-00412 --weight-kg 82 --sex male --payer medicare"""
    with friendly_errors():
        store = open_store(settings_from(config))
        check_new_patient(contraindication or [], payer, load_limits(), default_payers())
        patient = store.add_patient(
            reference, weight_kg, sex=sex, contraindications=contraindication or [], payer_id=payer
        )
        console.print(f"patient {patient.reference} added (id {patient.id})")


@patients_app.command("list")
def list_patients(config: ConfigOption = None) -> None:
    """List patients."""
    with friendly_errors():
        store = open_store(settings_from(config))
        table = Table("id", "reference", "weight (kg)", "sex", "payer", "contraindications")
        for p in store.list_patients():
            table.add_row(
                str(p.id),
                p.reference,
                f"{p.body_weight_kg:g}",
                p.sex,
                p.payer_id or "",
                ", ".join(p.contraindications),
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

"""``traction demo``: a newcomer's first run, from nothing to a documented 97012 session."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from session.exports import ExportFormat, export_to_directory
from session.models import AbnStatus, Clinician, Discipline, Patient, Sex
from session.store import SessionContext, Store, StoreError
from traction.context import open_store, settings_from
from traction.errors import friendly_errors
from traction.exitcodes import Exit
from traction.faults import parse_fault
from traction.options import ConfigOption
from traction.treat import Refused, resolve_profile, treat

DEMO_PATIENT = "DEMO-0001"
DEMO_NPI = "1234567893"  # a check-digit-valid example NPI, not a real provider
console = Console()


def _demo_people(store: Store) -> tuple[Patient, Clinician]:
    try:
        patient = store.patient_by_reference(DEMO_PATIENT)
    except StoreError:
        patient = store.add_patient(DEMO_PATIENT, 82.0, sex=Sex.MALE, payer_id="medicare")
    for clinician in store.list_clinicians():
        if clinician.npi == DEMO_NPI:
            return patient, clinician
    return patient, store.add_clinician("Alex Morgan", "PT, DPT", Discipline.PT, npi=DEMO_NPI)


def demo(
    time_scale: Annotated[
        float,
        typer.Option(min=1, max=20, help="How many times faster than real time (at most 20)."),
    ] = 20.0,
    profile: Annotated[
        str, typer.Option(help="Profile to run (default: the 2-minute demo).")
    ] = "demo",
    fault: Annotated[
        list[str] | None,
        typer.Option(help="Rehearse a fault, e.g. stop-switch@40 or runaway@30. Repeatable."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run a simulated lumbar session end to end and document it for CPT 97012.

    A simulated table is started in-process behind the real Modbus TCP protocol; a demo patient
    and clinician are registered; a time-scaled intermittent lumbar profile runs with a live
    readout; the session is recorded in the embedded SQLite store, signed, sealed, and exported as
    a PDF note, JSON, FHIR and CSV billing lines. Everything stays in the data directory.

    Try: traction demo --fault stop-switch@40
    """
    with friendly_errors():
        settings = settings_from(config)
        store = open_store(settings)
        patient, clinician = _demo_people(store)
        prescription = resolve_profile(profile)
        scheduled = [parse_fault(text) for text in fault or []]
        context = SessionContext(
            patient_id=patient.id or 0,
            treating_clinician_id=clinician.id or 0,
            workstation=settings.workstation,
            regions=(prescription.region.value,),
            diagnosis_codes=("M51.16",),
            medical_necessity=(
                "Lumbar disc disorder with radiculopathy (M51.16): mechanical traction to reduce "
                "nerve-root compression and radicular pain, supporting the plan-of-care goal of "
                "sitting tolerance over 30 minutes, alongside therapeutic exercise."
            ),
            plan_of_care_ref="POC-DEMO-1",
            patient_position=prescription.position,
            pull_angle_deg=prescription.angle_deg,
            abn_status=AbnStatus.NOT_REQUIRED,
        )
        console.print(
            Panel(
                f"{prescription.name}\nsimulated table sim://lumbar, x{time_scale:g} time, "
                f"store {settings.effective_database_url}",
                title="traction demo",
            )
        )
        try:
            result = asyncio.run(
                treat(
                    store,
                    "sim://lumbar",
                    prescription,
                    patient,
                    context,
                    time_scale=time_scale,
                    unit=settings.display_unit,
                    console=console,
                    faults=scheduled,
                )
            )
        except Refused:
            console.print("[red]The demo prescription was refused by the safety check.[/]")
            raise typer.Exit(Exit.REFUSED) from None
        session_id = result.session_id
        store.amend(
            session_id,
            "patient_response",
            f"Simulated patient (demo): session {result.finished.outcome.value} "
            f"({result.finished.reason}); no adverse response; tolerance not assessed.",
            clinician.name,
            "demo documentation",
        )
        store.amend(session_id, "signed_by_id", clinician.id, clinician.name, "signature")
        formats = [ExportFormat.PDF, ExportFormat.JSON, ExportFormat.FHIR, ExportFormat.CSV]
        summary = export_to_directory(
            store,
            [session_id],
            formats,
            settings.export_dir,
            settings.export_options(),
        )
        lines = Table(
            "date",
            "patient",
            "CPT",
            "modifiers",
            "units",
            "charge",
            "diagnoses",
            title="97012 billing line",
        )
        for line in summary.lines:
            lines.add_row(
                str(line.date_of_service),
                line.patient_ref,
                line.cpt_code,
                " ".join(line.modifiers),
                str(line.units),
                f"${line.charge}",
                " ".join(line.diagnoses),
            )
        console.print(lines)
        finished = result.finished
        console.print(
            f"outcome: {finished.outcome.value} ({finished.reason}); {finished.sample_count} samples"
        )
        for finding in summary.findings:
            colour = "red" if finding.severity.value == "blocking" else "yellow"
            console.print(
                f"[{colour}]{finding.severity.value}[/] {finding.code}: {finding.message}"
            )
        if session_id in summary.ready:
            console.print(
                "[green]no blocking findings: the documentation is complete for billing[/]"
            )
        console.print("files:")
        for path in summary.files:
            console.print(f"  {path}", soft_wrap=True)

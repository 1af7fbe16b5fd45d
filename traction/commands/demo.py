"""``traction demo``: a newcomer's first run, from nothing to a documented 97012 session."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from devices.records import Outcome
from session.exports import ExportFormat, export_to_directory
from session.lockouts import TableLocked
from session.models import AbnStatus, Clinician, Discipline, Patient, Sex
from session.store import SessionContext, Store, StoreError
from traction.context import open_store, settings_from
from traction.errors import friendly_errors
from traction.exitcodes import Exit
from traction.faults import parse_fault
from traction.options import ConfigOption
from traction.settings import Settings
from traction.treat import Refused, resolve_profile, treat

DEMO_PATIENT = "DEMO-0001"
DEMO_CLINICIAN = "Demo Clinician (simulation)"
DEMO_NPI = "1234567893"  # a check-digit-valid example NPI, not a real provider
console = Console()


def _demo_people(store: Store) -> tuple[Patient, Clinician]:
    """The demo's own patient and clinician, found by name; never a clinic clinician who
    happens to hold the example NPI (then the demo clinician has none)."""
    try:
        patient = store.patient_by_reference(DEMO_PATIENT)
    except StoreError:
        patient = store.add_patient(DEMO_PATIENT, 82.0, sex=Sex.MALE, payer_id="medicare")
    clinicians = store.list_clinicians()
    for clinician in clinicians:
        if clinician.name == DEMO_CLINICIAN:
            return patient, clinician
    npi_taken = any(c.npi == DEMO_NPI for c in clinicians)
    return patient, store.add_clinician(
        DEMO_CLINICIAN, "PT, DPT", Discipline.PT, npi=None if npi_taken else DEMO_NPI
    )


def demo_settings(settings: Settings, data_dir: Path | None, clinic_store: bool) -> Settings:
    """The demo's own data directory and SQLite store (``<data dir>/demo``), unless told to use
    the clinic's: a rehearsal never writes into the clinic's records or a shared server."""
    if clinic_store:
        return settings
    return settings.model_copy(
        update={"data_dir": data_dir or settings.data_dir / "demo", "database_url": None}
    )


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
    data_dir: Annotated[
        Path | None,
        typer.Option(help="The demo's data directory (default: <data dir>/demo)."),
    ] = None,
    clinic_store: Annotated[
        bool,
        typer.Option(
            "--clinic-store",
            help="Record into the clinic's own store instead (marked simulated, never billed).",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Run a simulated lumbar session end to end and document it for CPT 97012.

    A simulated table is started in-process behind the real Modbus TCP protocol; a demo patient
    and clinician are registered; a time-scaled intermittent lumbar profile runs with a live
    readout; the session is recorded in the demo's own SQLite store (<data dir>/demo), signed by
    the demo clinician, sealed, and exported as a PDF note, JSON and FHIR. It is marked simulated
    everywhere and never billed; the clinic's store is not touched.

    Try: traction demo --fault stop-switch@40
    """
    with friendly_errors():
        settings = demo_settings(settings_from(config), data_dir, clinic_store)
        store = open_store(settings)
        patient, clinician = _demo_people(store)
        prescription = resolve_profile(profile)
        scheduled = [parse_fault(text) for text in fault or []]
        context = SessionContext(
            patient_id=patient.id or 0,
            treating_clinician_id=clinician.id or 0,
            workstation=settings.workstation,
            simulated=True,
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
                    data_dir=settings.data_dir,
                    time_scale=time_scale,
                    unit=settings.display_unit,
                    console=console,
                    faults=scheduled,
                    memory_limit_mb=settings.treatment_memory_mb,
                    ack_command=None if clinic_store else "traction tables ack sim://lumbar --demo",
                )
            )
        except Refused:
            console.print("[red]The demo prescription was refused by the safety check.[/]")
            raise typer.Exit(Exit.REFUSED) from None
        except TableLocked as locked:  # the lock is in the demo's own store unless told otherwise
            ack = f"traction tables ack {locked.name}" + ("" if clinic_store else " --demo")
            console.print(f"[red]locked:[/] {locked.explain(ack)}", soft_wrap=True)
            raise typer.Exit(Exit.REFUSED) from None
        session_id = result.session_id
        author = f"clinician {clinician.id} ({clinician.name})"
        store.amend(
            session_id,
            "patient_response",
            f"Simulated patient (demo): session {result.finished.outcome.value} "
            f"({result.finished.reason}); no adverse response; tolerance not assessed.",
            author,
            "demo documentation",
        )
        if result.finished.outcome is Outcome.COMPLETED:
            store.amend(session_id, "signed_by_id", clinician.id, author, "signature")
        else:
            console.print("[yellow]the session did not complete: the note is left unsigned[/]")
        formats = [ExportFormat.PDF, ExportFormat.JSON, ExportFormat.FHIR]
        summary = export_to_directory(
            store,
            [session_id],
            formats,
            settings.export_dir,
            settings.export_options(),
            by=f"demo@{settings.workstation}",
        )
        doc = summary.docs[0]
        note = Table("date", "patient", "CPT", "regions", "diagnoses", title="97012 documentation")
        note.add_row(
            str(doc.date_of_service),
            doc.patient_ref,
            doc.cpt_code,
            ", ".join(r.value for r in doc.regions),
            " ".join(doc.diagnoses),
        )
        console.print(note)
        console.print(
            f"[magenta]SIMULATED (x{doc.time_scale:g} time): documented, never billed[/] - "
            f"store {settings.effective_database_url}"
        )
        finished = result.finished
        console.print(
            f"outcome: {finished.outcome.value} ({finished.reason}); {finished.sample_count} samples"
        )
        for finding in summary.findings:
            colour = "red" if finding.severity.value == "blocking" else "yellow"
            console.print(
                f"[{colour}]{finding.severity.value}[/] {finding.code}: {finding.message}"
            )
        if all(f.code == "SIMULATED" for f in summary.blocked.get(session_id, [])):
            console.print(
                "[green]no blocking findings besides SIMULATED: a real session documented "
                "like this would be ready to bill[/]"
            )
        console.print("files:")
        for path in summary.files:
            console.print(f"  {path}", soft_wrap=True)

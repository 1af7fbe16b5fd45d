"""Clinicians: list and register the professionals a session names as treating or supervising."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from sqlalchemy.exc import IntegrityError

from session.models import Clinician
from traction.api.auth import Service
from traction.api.schemas import ClinicianIn, ClinicianOut, ErrorOut

router = APIRouter(prefix="/clinicians", tags=["clinicians"])


def clinician_out(clinician: Clinician) -> ClinicianOut:
    return ClinicianOut.model_validate(clinician, from_attributes=True)


@router.get("", response_model=list[ClinicianOut], summary="List clinicians")
def list_clinicians(service: Service) -> list[ClinicianOut]:
    """Every clinician, in the order registered; ``id`` is what a session start names."""
    return [clinician_out(c) for c in service.store.list_clinicians()]


@router.post(
    "",
    response_model=ClinicianOut,
    status_code=201,
    summary="Register a clinician",
    responses={409: {"model": ErrorOut, "description": "The NPI is already registered"}},
)
def add_clinician(body: ClinicianIn, service: Service) -> ClinicianOut:
    """Register a clinician as a note must name them: name, credentials, discipline (it picks
    the therapy modifier) and NPI (billing lines need one). An NPI belongs to one clinician."""
    store = service.store
    try:
        clinician = store.add_clinician(body.name, body.credentials, body.discipline, body.npi)
    except IntegrityError:  # the only unique column is the NPI
        holder = next(c for c in store.list_clinicians() if c.npi == body.npi)
        raise HTTPException(
            409, f"NPI {body.npi} is already registered to {holder.name} (id {holder.id})"
        ) from None
    return clinician_out(clinician)

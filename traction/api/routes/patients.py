"""Patients: list and register them, so a front end needs no CLI before a first session.

A patient's contraindications and payer are checked when registered (traction.people): an unknown
key would only surface as a blocked start at the table, an unknown payer at billing time.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from session.billing import default_payers
from session.models import Patient
from session.store import StoreError
from traction.api.auth import Service
from traction.api.routes.sessions import field_error
from traction.api.schemas import ErrorOut, PatientIn, PatientOut
from traction.people import PatientFieldError, check_new_patient
from traction.service import WorkstationService

router = APIRouter(prefix="/patients", tags=["patients"])


def patient_out(patient: Patient) -> PatientOut:
    return PatientOut.model_validate(patient, from_attributes=True)


def _check(service: WorkstationService, body: PatientIn) -> None:
    try:
        check_new_patient(body.contraindications, body.payer_id, service.limits, default_payers())
    except PatientFieldError as exc:
        raise field_error(("body", *exc.loc), exc.message, exc.value) from None


def _registered(service: WorkstationService, reference: str) -> bool:
    try:
        service.store.patient_by_reference(reference)
    except StoreError:
        return False
    return True


@router.get("", response_model=list[PatientOut], summary="List patients")
def list_patients(service: Service) -> list[PatientOut]:
    """Every patient, by reference."""
    return [patient_out(p) for p in service.store.list_patients()]


@router.post(
    "",
    response_model=PatientOut,
    status_code=201,
    summary="Register a patient",
    responses={409: {"model": ErrorOut, "description": "The reference is already registered"}},
)
def add_patient(body: PatientIn, service: Service) -> PatientOut:
    """Register a patient by the clinic's reference, with the facts the safety limits are checked
    against: body weight, sex and contraindications (keys of the safety limits)."""
    _check(service, body)
    duplicate = HTTPException(409, f"patient reference {body.reference!r} already exists")
    if _registered(service, body.reference):
        raise duplicate
    try:
        patient = service.store.add_patient(
            body.reference,
            body.body_weight_kg,
            sex=body.sex,
            contraindications=body.contraindications,
            payer_id=body.payer_id,
        )
    except StoreError as exc:  # registered meanwhile, or a blank reference
        if _registered(service, body.reference):
            raise duplicate from None
        raise field_error(("body", "reference"), str(exc), body.reference) from None
    return patient_out(patient)

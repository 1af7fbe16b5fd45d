"""Patients: list and register them, so a front end needs no CLI before a first session.

A patient's contraindications and payer are checked when registered (traction.people): an unknown
key would only surface as a blocked start at the table, an unknown payer at billing time.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from devices.errors import ConfigError
from devices.units import parse_force
from session.billing import default_payers
from session.models import Patient
from session.plans import CarePlans, PlanVersion, Progression, next_step, progression_of, unsafe
from session.store import StoreError
from traction.api.audit import record_patient_read, record_patients_listed
from traction.api.auth import CurrentUser, Service
from traction.api.bounds import Name
from traction.api.routes.sessions import field_error, resolve_profile
from traction.api.schemas import ErrorOut, PatientIn, PatientOut, PlanIn, PlanOut
from traction.people import PatientFieldError, check_new_patient
from traction.service import SafetyRefused, WorkstationService

router = APIRouter(prefix="/patients", tags=["patients"])


def patient_out(patient: Patient) -> PatientOut:
    return PatientOut.model_validate(patient, from_attributes=True)


def _check(service: WorkstationService, body: PatientIn) -> None:
    try:
        check_new_patient(
            body.contraindications,
            body.payer_id,
            service.limits,
            default_payers(),
            body.precautions,
        )
    except PatientFieldError as exc:
        raise field_error(("body", *exc.loc), exc.message, exc.value) from None


def _registered(service: WorkstationService, reference: str) -> bool:
    try:
        service.store.patient_by_reference(reference)
    except StoreError:
        return False
    return True


@router.get("", response_model=list[PatientOut], summary="List patients")
def list_patients(service: Service, user: CurrentUser) -> list[PatientOut]:
    """Every patient, by reference; each is an entry in the access log."""
    patients = list(service.store.list_patients())
    record_patients_listed(service, user, "GET /patients", patients)
    return [patient_out(p) for p in patients]


@router.post(
    "",
    response_model=PatientOut,
    status_code=201,
    summary="Register a patient",
    responses={409: {"model": ErrorOut, "description": "The reference is already registered"}},
)
def add_patient(body: PatientIn, service: Service, user: CurrentUser) -> PatientOut:
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
            precautions=body.precautions,
            payer_id=body.payer_id,
            by=f"user {user.name}",
        )
    except StoreError as exc:  # registered meanwhile, or a blank reference
        if _registered(service, body.reference):
            raise duplicate from None
        raise field_error(("body", "reference"), str(exc), body.reference) from None
    return patient_out(patient)


Reference = Annotated[Name, Path(description="The clinic's patient reference")]


def _patient(service: WorkstationService, reference: str) -> Patient:
    try:
        return service.store.patient_by_reference(reference)
    except StoreError as exc:
        raise HTTPException(404, str(exc)) from None


def plan_out(service: WorkstationService, reference: str, version: PlanVersion) -> PlanOut:
    dose = version.profile(reference)
    suggestion = next_step(dose, progression_of(version), None, service.settings.display_unit)
    return PlanOut(
        patient_reference=reference,
        version=version.version,
        at=version.at,
        by=version.by,
        why=version.why,
        profile=dose.to_dict(),
        step_n=version.step_n,
        goal_n=version.goal_n,
        next_step=suggestion.text,
    )


@router.get(
    "/{reference}/plan",
    response_model=PlanOut,
    summary="A patient's plan of care",
    responses={404: {"model": ErrorOut, "description": "No such patient, or no plan yet"}},
)
def get_plan(reference: Reference, service: Service, user: CurrentUser) -> PlanOut:
    """The plan in force: the dose `traction run --patient` gives without a profile, its
    per-session progression and the step it suggests next."""
    patient = _patient(service, reference)
    record_patient_read(service, user, "GET /patients/{reference}/plan", patient)
    versions = CarePlans(service.store.engine).history(reference)
    if not versions:
        raise HTTPException(404, f"patient {reference} has no plan of care")
    return plan_out(service, reference, versions[-1])


@router.put(
    "/{reference}/plan",
    response_model=PlanOut,
    summary="Set a patient's plan of care",
    responses={404: {"model": ErrorOut, "description": "No such patient"}},
)
def put_plan(body: PlanIn, reference: Reference, service: Service, user: CurrentUser) -> PlanOut:
    """A new version of the plan, kept with who (the caller), when and why. The dose is checked
    against the safety limits that no table or session count changes (422 naming each
    violation); every session checks it again in full before the table moves."""
    patient = _patient(service, reference)
    dose = resolve_profile(body)
    progression = None
    if body.progression is not None:
        try:
            progression = Progression(
                parse_force(body.progression.step, "step"),
                parse_force(body.progression.goal, "goal"),
            )
            progression.check(dose)
        except ConfigError as exc:
            field = "goal" if exc.where in ("goal", "--up-to") else "step"
            value = getattr(body.progression, field)
            raise field_error(("body", "progression", field), exc.message, value) from None
    found = unsafe(dose, patient, service.limits)
    if found:
        raise SafetyRefused("plan of care not saved; ", found)
    saved = CarePlans(service.store.engine).set(
        reference, dose, progression, by=user.name, why=body.why
    )
    return plan_out(service, reference, saved)

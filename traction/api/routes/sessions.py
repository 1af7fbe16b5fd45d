"""Sessions: validate a prescription, start, control, list, read back, amend documentation.

Recorded data (samples, events, outcome, seal) is read-only here; the only writes to a stored
session are amendments of documentation fields, each logged with who and why.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool

from devices.configfiles import config_file
from devices.errors import ConfigError
from devices.limits import blocking
from devices.profiles import ForceProfile, ProfileError, load_profile
from devices.records import Outcome
from session.accounts import User
from session.models import TreatmentSession
from session.runner import prior_sessions
from session.store import SessionContext, SessionCursor, SessionQuery, StoreError
from traction.api.audit import record_read, record_sessions_listed
from traction.api.auth import CurrentUser, Service
from traction.api.bounds import (
    MAX_ID,
    MAX_NAME,
    MAX_SEQ,
    Moment,
    OutOfBounds,
    SessionId,
    check_profile_settings,
)
from traction.api.schemas import (
    TABLE_SILENT,
    AmendmentIn,
    AmendmentOut,
    ControlOut,
    ErrorOut,
    EventOut,
    PlanIn,
    PrescriptionIn,
    RefusedOut,
    SampleOut,
    SamplePage,
    SessionDetailOut,
    SessionOut,
    SettingsChangeOut,
    SettingsIn,
    ValidationOut,
    ViolationOut,
)
from traction.diagnoses import DiagnosisError, check_diagnoses
from traction.service import Prescription, WorkstationService

router = APIRouter(prefix="/sessions", tags=["sessions"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such session"}
}
PROFILE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def field_error(
    loc: tuple[str | int, ...], message: str, value: Any = None
) -> RequestValidationError:
    """A 422 in FastAPI's own shape, naming the field."""
    return RequestValidationError(
        [{"loc": loc, "msg": message, "type": "value_error", "input": value}]
    )


def resolve_profile(body: PrescriptionIn | SettingsIn | PlanIn) -> ForceProfile:
    if (body.profile is None) == (body.profile_name is None):
        raise field_error(("body", "profile"), "give profile or profile_name, exactly one")
    try:
        if body.profile is not None:
            check_profile_settings(body.profile)
            return ForceProfile.from_dict(body.profile, where="profile")
        name = body.profile_name or ""
        path = config_file("profiles", f"{name}.toml")
        if not PROFILE_NAME.match(name) or not path.is_file():
            raise field_error(
                ("body", "profile_name"), f"{name!r} is not a profile in configs/profiles", name
            )
        return load_profile(str(path))
    except OutOfBounds as exc:
        value = (body.profile or {}).get(exc.key)
        raise field_error(("body", "profile", exc.key), str(exc), value) from None
    except ProfileError as exc:  # every problem, each naming its field, value and rule
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "profile", p.field),
                    "msg": p.rule,
                    "type": "value_error",
                    "input": p.value,
                }
                for p in exc.problems
            ]
        ) from None
    except ConfigError as exc:
        where = [part for part in exc.where.split(": ") if part]
        value = (body.profile or {}).get(where[-1]) if len(where) > 1 else body.profile
        raise field_error(("body", *where), exc.message, value) from None


def _check_codes(codes: Sequence[str], on: date, loc: tuple[str, ...]) -> None:
    """Malformed, deleted and header ICD-10-CM codes are refused where they are entered."""
    try:
        check_diagnoses(codes, on)
    except DiagnosisError as exc:
        raise field_error((*loc, exc.index), exc.message, exc.code) from None


def _prescription(service: WorkstationService, body: PrescriptionIn, user: User) -> Prescription:
    """Resolve the request into a prescription; every unknown reference is a 422 naming it."""
    profile = resolve_profile(body)
    today = datetime.now(service.settings.zone).date()
    _check_codes(body.diagnosis_codes, today, ("body", "diagnosis_codes"))
    store = service.store
    try:
        patient = store.patient_by_reference(body.patient_reference)
    except StoreError as exc:
        raise field_error(("body", "patient_reference"), str(exc), body.patient_reference) from None
    treating = body.treating_clinician_id or user.clinician_id
    if treating is None:
        raise field_error(
            ("body", "treating_clinician_id"),
            "required: the calling user is not linked to a clinician",
        )
    for name, clinician in (
        ("treating_clinician_id", treating),
        ("supervising_clinician_id", body.supervising_clinician_id),
    ):
        if clinician is not None:
            try:
                store.get_clinician(clinician)
            except StoreError as exc:
                raise field_error(("body", name), str(exc), clinician) from None
    context = SessionContext(
        patient_id=patient.id or 0,
        treating_clinician_id=treating,
        workstation=service.settings.workstation,
        regions=tuple(body.regions or [profile.region.value]),
        supervising_clinician_id=body.supervising_clinician_id,
        diagnosis_codes=tuple(body.diagnosis_codes),
        medical_necessity=body.medical_necessity,
        plan_of_care_ref=body.plan_of_care_ref,
        patient_position=body.patient_position or profile.position,
        pull_angle_deg=body.pull_angle_deg,
        abn_status=body.abn_status,
    )
    service.slot(body.table)
    return Prescription(
        body.table,
        profile,
        patient,
        context,
        body.operator_confirmed,
        prior_sessions(store, patient),  # read here, in the threadpool, never on the loop
    )


def session_out(service: WorkstationService, row: TreatmentSession) -> SessionOut:
    return SessionOut(**_summary(service, row))


def _summary(service: WorkstationService, row: TreatmentSession) -> dict[str, Any]:
    return {
        **row.model_dump(include=set(SessionOut.model_fields) - {"sealed", "running"}),
        "sealed": row.sealed_at is not None,
        "running": service.running(row.id) is not None,
    }


def get_row(service: WorkstationService, session_id: str) -> TreatmentSession:
    try:
        return service.store.get_session(session_id)
    except StoreError:
        raise HTTPException(404, f"no session with id {session_id!r}") from None


@router.post(
    "/validate",
    response_model=ValidationOut,
    summary="Check a prescription",
    responses={404: {"model": ErrorOut, "description": "No such table"}, **TABLE_SILENT},
)
async def validate_prescription(
    body: PrescriptionIn, user: CurrentUser, service: Service
) -> ValidationOut:
    """Every violation the prescription would meet on this table for this patient; nothing moves."""
    prescription = await run_in_threadpool(_prescription, service, body, user)
    device, violations = await service.check(prescription)
    return ValidationOut(
        table=prescription.table,
        device=device,
        ok=not blocking(violations),
        violations=[ViolationOut(**v.to_dict()) for v in violations],
    )


@router.post(
    "",
    response_model=SessionOut,
    status_code=201,
    summary="Start a session",
    responses={
        404: {"model": ErrorOut, "description": "No such table"},
        409: {"model": ErrorOut, "description": "Table busy or not ready; nothing moved"},
        422: {"model": RefusedOut, "description": "Safety violations (all of them); nothing moved"},
        423: {
            "model": ErrorOut,
            "description": "Table locked by a lock-severity trip; acknowledge it first "
            "(POST /tables/{name}/ack)",
        },
        **TABLE_SILENT,
    },
)
async def start_session(body: PrescriptionIn, user: CurrentUser, service: Service) -> SessionOut:
    """Check the prescription and start it on the table; returns once the table has started.
    Any blocking violation refuses the start with every violation listed."""
    prescription = await run_in_threadpool(_prescription, service, body, user)
    running = await service.start_session(prescription, user.name)
    row = await run_in_threadpool(_wait_row, service, running.session_id)
    return session_out(service, row)


def _wait_row(service: WorkstationService, session_id: str) -> TreatmentSession:
    """The session row; the recorder writes it within moments of the Started record."""
    deadline = time.monotonic() + 10.0
    while True:
        try:
            return service.store.get_session(session_id)
        except StoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@router.get(
    "",
    response_model=list[SessionOut],
    summary="List sessions",
    responses={
        200: {
            "headers": {
                "X-Next-After": {
                    "description": "Present when more sessions match: pass it as `after`",
                    "schema": {"type": "string"},
                }
            }
        }
    },
)
def list_sessions(
    service: Service,
    user: CurrentUser,
    response: Response,
    patient_reference: Annotated[
        str | None, Query(max_length=MAX_NAME, description="Clinic patient reference")
    ] = None,
    clinician_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Treating or supervising")
    ] = None,
    since: Annotated[
        Moment | None, Query(description="Started at or after (ISO 8601, with a timezone)")
    ] = None,
    until: Annotated[
        Moment | None, Query(description="Started before (ISO 8601, with a timezone)")
    ] = None,
    outcome: Outcome | None = None,
    workstation: Annotated[str | None, Query(max_length=128)] = None,
    unfinished: Annotated[
        bool | None, Query(description="Only running/unfinished, or only finished")
    ] = None,
    after: Annotated[
        str | None,
        Query(max_length=200, description="The X-Next-After of the previous page"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Sessions per page")] = 100,
    newest_first: Annotated[bool, Query(description="Newest first instead of oldest")] = False,
) -> list[SessionOut]:
    """Sessions matching every filter given, oldest first (or newest), ``limit`` at a time
    (keyset paging: while more match, the ``X-Next-After`` header carries the cursor for the next
    page; pass it back with the same filters and order). Each session listed is an entry in the
    access log for its patient."""
    patient_id = None
    if patient_reference is not None:
        try:
            patient_id = service.store.patient_by_reference(patient_reference).id
        except StoreError:
            return []
    try:
        cursor = SessionCursor.parse(after) if after is not None else None
    except StoreError as exc:
        raise field_error(("query", "after"), str(exc), after) from None
    query = SessionQuery(patient_id, clinician_id, since, until, outcome, workstation, unfinished)
    rows = service.store.list_sessions(query, limit=limit, after=cursor, newest_first=newest_first)
    if len(rows) == limit:
        response.headers["X-Next-After"] = rows[-1].cursor.text()
    record_sessions_listed(service, user, "GET /sessions", rows)
    return [
        SessionOut(
            **{name: getattr(row, name) for name in SessionOut.model_fields if name != "running"},
            running=service.running(row.id) is not None,
        )
        for row in rows
    ]


def _page(service: WorkstationService, session_id: str, after_seq: int, limit: int) -> SamplePage:
    rows = service.samples_page(session_id, after_seq, limit)
    items = [SampleOut(**r.model_dump(exclude={"session_id"})) for r in rows]
    return SamplePage(items=items, next_after_seq=items[-1].seq if len(items) == limit else None)


AfterSeq = Annotated[
    int, Query(ge=-1, le=MAX_SEQ, description="Samples after this seq (-1: from the start)")
]
Limit = Annotated[int, Query(ge=1, le=10000, description="Samples per page")]


@router.get(
    "/{session_id}", response_model=SessionDetailOut, summary="One session", responses=NOT_FOUND
)
def get_session(
    session_id: SessionId,
    service: Service,
    user: CurrentUser,
    after_seq: AfterSeq = -1,
    limit: Limit = 500,
) -> SessionDetailOut:
    """Everything recorded: documentation fields, settings, events, and one page of samples."""
    row = get_row(service, session_id)
    record_read(service, user, "GET /sessions/{session_id}", session_id)
    events = [EventOut(**e._asdict()) for e in service.store.iter_events(session_id)]
    return SessionDetailOut(
        **row.model_dump(include=set(SessionDetailOut.model_fields)),
        sealed=row.sealed_at is not None,
        running=service.running(row.id) is not None,
        events=events,
        samples=_page(service, session_id, after_seq, limit),
    )


@router.get(
    "/{session_id}/samples",
    response_model=SamplePage,
    summary="Samples, paged",
    responses=NOT_FOUND,
)
def get_samples(
    session_id: SessionId,
    service: Service,
    user: CurrentUser,
    after_seq: AfterSeq = -1,
    limit: Limit = 2000,
) -> SamplePage:
    """A session's samples in order, ``limit`` at a time: pass ``next_after_seq`` back as
    ``after_seq`` for the next page."""
    get_row(service, session_id)
    record_read(service, user, "GET /sessions/{session_id}/samples", session_id)
    return _page(service, session_id, after_seq, limit)


def _control(service: WorkstationService, session_id: str, action: str, user: User) -> ControlOut:
    running = service.control(session_id, action, user.name)
    return ControlOut(
        session_id=running.session_id, action=action, detail="takes effect at the next tick"
    )


CONTROL_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "The session is not running here"}
}


@router.post("/{session_id}/pause", response_model=ControlOut, responses=CONTROL_RESPONSES)
async def pause(session_id: SessionId, user: CurrentUser, service: Service) -> ControlOut:
    """Hold the current force; the profile's clock waits until resume."""
    return _control(service, session_id, "pause", user)


@router.post("/{session_id}/resume", response_model=ControlOut, responses=CONTROL_RESPONSES)
async def resume(session_id: SessionId, user: CurrentUser, service: Service) -> ControlOut:
    """Continue the profile where it paused (the force ramps back, never jumps)."""
    return _control(service, session_id, "resume", user)


@router.post("/{session_id}/stop", response_model=ControlOut, responses=CONTROL_RESPONSES)
async def stop(session_id: SessionId, user: CurrentUser, service: Service) -> ControlOut:
    """Controlled stop: ramp to zero at the profile's rate, then release."""
    return _control(service, session_id, "stop", user)


@router.post("/{session_id}/release", response_model=ControlOut, responses=CONTROL_RESPONSES)
async def release(session_id: SessionId, user: CurrentUser, service: Service) -> ControlOut:
    """Emergency release: let go of the patient at the next tick."""
    return _control(service, session_id, "release", user)


@router.post(
    "/{session_id}/settings",
    response_model=SettingsChangeOut,
    summary="Change settings live",
    responses={
        409: {"model": ErrorOut, "description": "The session is not running here"},
        422: {
            "model": RefusedOut,
            "description": "Safety violations (all of them); the session runs on unchanged",
        },
    },
)
async def change_settings(
    session_id: SessionId, body: SettingsIn, user: CurrentUser, service: Service
) -> SettingsChangeOut:
    """Change a running session's profile: re-validated for the patient on the table, then
    applied at the control loop's next tick and recorded as a settings_changed event. Any
    blocking violation refuses it with every violation listed; the refusal is recorded too."""
    profile = await run_in_threadpool(resolve_profile, body)
    running, violations = await service.change_settings(
        session_id, profile, user.name, body.operator_confirmed, body.reason
    )
    return SettingsChangeOut(
        session_id=running.session_id,
        applied=True,
        detail="takes effect at the next tick",
        violations=[ViolationOut(**v.to_dict()) for v in violations],
    )


@router.get(
    "/{session_id}/amendments",
    response_model=list[AmendmentOut],
    summary="Amendment log",
    responses=NOT_FOUND,
)
def list_amendments(
    session_id: SessionId, service: Service, user: CurrentUser
) -> list[AmendmentOut]:
    """Every change to the session's documentation, oldest first: who, when, what and why."""
    get_row(service, session_id)
    record_read(service, user, "GET /sessions/{session_id}/amendments", session_id)
    return [AmendmentOut(**a.model_dump()) for a in service.store.amendments(session_id)]


@router.post(
    "/{session_id}/amendments",
    response_model=AmendmentOut,
    status_code=201,
    summary="Amend documentation",
    responses=NOT_FOUND,
)
def amend(
    session_id: SessionId, body: AmendmentIn, user: CurrentUser, service: Service
) -> AmendmentOut:
    """Complete or correct one documentation field (diagnosis codes, medical necessity, signature,
    ...); logged with the calling user as author. Recorded data cannot be amended."""
    row = get_row(service, session_id)
    signing = body.field in ("signed_by_id", "cosigned_by_id") and body.value is not None
    if signing and body.value != user.clinician_id:
        raise HTTPException(
            403,
            f"{user.name} may sign or co-sign only as their own clinician "
            f"({user.clinician_id}), not as clinician {body.value}",
        )
    if body.field == "diagnosis_codes" and isinstance(body.value, list):
        service_day = row.started_at.astimezone(service.settings.zone).date()
        _check_codes([str(code) for code in body.value], service_day, ("body", "value"))
    try:
        amendment = service.store.amend(session_id, body.field, body.value, user.name, body.why)
    except StoreError as exc:
        raise field_error(("body", "value"), str(exc), body.value) from None
    return AmendmentOut(**amendment.model_dump())

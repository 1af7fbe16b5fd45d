"""Request and response bodies of the HTTP API (the OpenAPI document is generated from these).

Forces are newtons (``_n``), times session seconds (``t``) or UTC moments (``_at``), as stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, field_validator
from pydantic.json_schema import JsonDict

from devices.contract import DeviceInfo, TableState
from session.accounts import Role
from session.models import AbnStatus, Discipline, Sex
from session.patient_facts import WEIGHT_MAX_KG, WEIGHT_MIN_KG
from session.store import AMENDABLE_FIELDS
from traction.api.bounds import (
    MAX_CONTRAINDICATIONS,
    MAX_DIAGNOSES,
    MAX_DIAGNOSIS_CODE,
    MAX_NAME,
    MAX_REASON,
    MAX_REGIONS,
    MAX_TEXT,
    AnyValue,
    Id,
    Name,
    Number,
    ProfileSettings,
    unique,
)

INPUT = ConfigDict(extra="forbid", allow_inf_nan=False, str_max_length=MAX_TEXT)
"""Every request body: unknown fields, NaN and Infinity are refused; no string beyond MAX_TEXT."""


class ErrorOut(BaseModel):
    detail: str = Field(description="What was refused and why")


TABLE_SILENT: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorOut,
        "description": "The table did not answer (off, unplugged, its link failing): nothing "
        "moved; the detail names the wire and the wait",
    }
}
"""For the routes that talk to an idle table (a route behind a running treatment does not)."""


class ViolationOut(BaseModel):
    field: str = Field(description="The prescription or patient field that breaks a limit")
    value: str
    limit: str
    message: str
    severity: str = Field(description="block (nothing starts) or warn")


class RefusedOut(BaseModel):
    """The one shape of every 422: each refused field (request bounds, unknown references,
    safety limits) is a violation naming the field, the value, the rule and what is wrong."""

    detail: str
    violations: list[ViolationOut] = Field(description="Every violation, not only the first")


class LiveOut(BaseModel):
    """The latest sample of the session running on a table."""

    session_id: str
    t: float | None = None
    target_n: float | None = None
    measured_n: float | None = None
    phase: str | None = None
    cycle: int | None = None
    paused: bool
    started_by: str


class AlarmOut(BaseModel):
    """A lock-severity trip that keeps the table locked until someone acknowledges it."""

    id: int
    fault: str = Field(description="The fault that tripped, e.g. hard_limit")
    fault_title: str = Field(description="The fault in words, e.g. force above the hard limit")
    reason: str
    session_id: str | None
    locked_at: datetime
    acknowledged_at: datetime | None = None


class TableOut(BaseModel):
    name: str
    url: str
    simulated: bool
    device: DeviceInfo = Field(description="What the table reported when opened")
    state: TableState | None = Field(
        default=None,
        description="A fresh reading when idle; empty while a session runs or the table is silent",
    )
    unreachable: str | None = Field(
        default=None,
        description="Why there is no fresh reading of an idle table: it did not answer (off, "
        "unplugged, its link failing); the reason names the wire and the wait",
    )
    live: LiveOut | None = Field(default=None, description="The running session, if any")
    locked: bool = Field(
        default=False, description="No session starts until every alarm is acknowledged"
    )
    alarms: list[AlarmOut] = Field(
        default_factory=list, description="Unacknowledged lock-severity trips, oldest first"
    )


class AcknowledgeIn(BaseModel):
    """Acknowledging a locked table's alarms after checking the patient and the table."""

    model_config = INPUT

    reason: str = Field(
        min_length=1,
        max_length=MAX_REASON,
        description="What was checked, and why the table may run again",
        examples=["patient checked, no distress; load cell re-zeroed and verified"],
    )


class AcknowledgedOut(BaseModel):
    table: str
    acknowledged_by: str
    reason: str
    alarms: list[AlarmOut] = Field(description="The alarms this acknowledgement cleared")
    table_state: str = Field(
        description="The table afterwards: ready, or why not (a fault it still reports)"
    )


PROFILE_DESCRIPTION = (
    "Force profile settings: mode, region, hold_force ('35 lbf'), rest_force, hold_s, rest_s, "
    "total_s or total_min, ramp_rate ('5 lbf/s'), progression_steps, ..."
)
PROFILE_EXAMPLE: dict[str, Any] = {
    "mode": "intermittent",
    "region": "lumbar",
    "hold_force": "35 lbf",
    "rest_force": "15 lbf",
    "hold_s": 15,
    "rest_s": 10,
    "total_min": 2,
    "ramp_rate": "5 lbf/s",
}


def _given(value: Any) -> Any:
    if value is None:
        raise ValueError("leave it out rather than null: give profile or profile_name")
    return value


def _not_nullable(schema: JsonDict) -> None:
    """Document a field that may be left out but never sent as null (``_given`` refuses null)."""
    choices = schema.pop("anyOf")
    assert isinstance(choices, list)
    schema.update(next(c for c in choices if isinstance(c, dict) and c.get("type") != "null"))
    schema.pop("default", None)


EXACTLY_ONE_PROFILE: dict[str, Any] = {
    "oneOf": [{"required": ["profile"]}, {"required": ["profile_name"]}]
}
"""Give ``profile`` or ``profile_name``, not both and not neither, as the schema says too."""


class ProfileChoice(BaseModel):
    """``profile`` or ``profile_name``: exactly one, never null."""

    model_config = INPUT

    @field_validator("profile", "profile_name", mode="before", check_fields=False)
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        return _given(value)


class PrescriptionIn(ProfileChoice):
    """A session to validate or start. Give ``profile`` (settings as in configs/profiles/*.toml)
    or ``profile_name`` (a shipped profile such as ``demo``), not both."""

    model_config = INPUT | ConfigDict(
        json_schema_extra={
            **EXACTLY_ONE_PROFILE,
            "examples": [
                {
                    "table": "table-1",
                    "profile_name": "demo",
                    "patient_reference": "MRN-0001",
                    "treating_clinician_id": 1,
                    "regions": ["lumbar"],
                    "diagnosis_codes": ["M51.16"],
                }
            ],
        },
    )

    table: Name = Field(description="A configured table name (GET /tables)")
    profile: ProfileSettings | None = Field(
        default=None,
        description=PROFILE_DESCRIPTION,
        examples=[PROFILE_EXAMPLE],
        json_schema_extra=_not_nullable,
    )
    profile_name: Name | None = Field(
        default=None, description="A profile in configs/profiles/", json_schema_extra=_not_nullable
    )
    patient_reference: Name = Field(description="The clinic's patient reference")
    treating_clinician_id: Id | None = Field(
        default=None, description="Default: the clinician linked to the calling user"
    )
    supervising_clinician_id: Id | None = None
    regions: Annotated[list[Name], Field(max_length=MAX_REGIONS), AfterValidator(unique)] = Field(
        default_factory=list, description="Default: the profile's region"
    )
    diagnosis_codes: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=MAX_DIAGNOSIS_CODE)]],
        Field(max_length=MAX_DIAGNOSES),
        AfterValidator(unique),
    ] = Field(default_factory=list, description="ICD-10-CM, primary first, each once")
    medical_necessity: str | None = Field(default=None, max_length=MAX_TEXT)
    plan_of_care_ref: str | None = Field(default=None, max_length=MAX_NAME)
    patient_position: str | None = Field(default=None, max_length=MAX_NAME)
    pull_angle_deg: Number | None = Field(default=None, ge=-90, le=90)
    abn_status: AbnStatus | None = None
    operator_confirmed: StrictBool = Field(
        default=False, description="The operator confirms a force above the confirmation level"
    )


class ValidationOut(BaseModel):
    table: str
    device: DeviceInfo
    ok: bool = Field(description="True when nothing blocks a start")
    violations: list[ViolationOut]


class SessionOut(BaseModel):
    id: str
    patient_id: int
    treating_clinician_id: int
    supervising_clinician_id: int | None
    workstation: str
    table_label: str
    regions: list[str]
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None = Field(
        description="completed, stopped, tripped, interrupted; empty while running"
    )
    outcome_reason: str | None
    sample_count: int
    event_count: int
    sealed: bool
    running: bool = Field(description="Running now on this workstation")


class SampleOut(BaseModel):
    seq: int
    t: float
    target_n: float
    measured_n: float
    phase: str
    cycle: int


class SamplePage(BaseModel):
    items: list[SampleOut]
    next_after_seq: int | None = Field(
        description="Pass as after_seq for the next page; empty at the end"
    )


class EventOut(BaseModel):
    seq: int
    t: float
    kind: str
    reason: str
    data: dict[str, Any]


class SessionDetailOut(SessionOut):
    device_manufacturer: str
    device_model: str
    device_serial: str
    device_firmware: str
    device_rated_max_force_n: float
    settings: dict[str, Any] = Field(description="The Started record: table, profile, limits")
    diagnosis_codes: list[str]
    medical_necessity: str | None
    plan_of_care_ref: str | None
    patient_position: str | None
    pull_angle_deg: float | None
    patient_response: str | None
    signed_by_id: int | None
    signed_at: datetime | None
    abn_status: str | None
    seal_digest: str | None
    sealed_at: datetime | None
    events: list[EventOut]
    samples: SamplePage


class ControlOut(BaseModel):
    session_id: str
    action: str
    detail: str = Field(description="Takes effect at the control loop's next tick")


class SettingsIn(ProfileChoice):
    """A live change of a running session's profile. Give ``profile`` or ``profile_name``, not
    both. It is re-validated for the patient on the table; the profile's clock carries on, and
    the force ramps to the new curve at its ramp rate, never jumps."""

    model_config = INPUT | ConfigDict(
        json_schema_extra={
            **EXACTLY_ONE_PROFILE,
            "examples": [
                {
                    "profile": {**PROFILE_EXAMPLE, "hold_force": "30 lbf"},
                    "operator_confirmed": False,
                    "reason": "patient reports discomfort at 35 lbf",
                }
            ],
        },
    )

    profile: ProfileSettings | None = Field(
        default=None,
        description=PROFILE_DESCRIPTION + " The region must stay the running session's.",
        examples=[PROFILE_EXAMPLE],
        json_schema_extra=_not_nullable,
    )
    profile_name: Name | None = Field(
        default=None, description="A profile in configs/profiles/", json_schema_extra=_not_nullable
    )
    operator_confirmed: StrictBool = Field(
        default=False, description="The operator confirms a force above the confirmation level"
    )
    reason: str | None = Field(
        default=None, max_length=MAX_REASON, description="Why the settings change; recorded with it"
    )


class SettingsChangeOut(BaseModel):
    session_id: str
    applied: bool = Field(
        description="True: the change takes effect at the control loop's next tick and is "
        "recorded as a settings_changed event"
    )
    detail: str
    violations: list[ViolationOut] = Field(description="Every violation (warnings only here)")


class AmendmentIn(BaseModel):
    model_config = INPUT

    field: str = Field(max_length=MAX_NAME, description="One of: " + ", ".join(AMENDABLE_FIELDS))
    value: AnyValue = Field(
        description="The new value (JSON), typed as the field is; finite numbers, text up to "
        f"{MAX_TEXT} characters"
    )
    why: str = Field(
        min_length=1, max_length=MAX_REASON, description="Why the documentation changes"
    )

    @field_validator("field")
    @classmethod
    def _amendable(cls, value: str) -> str:
        if value not in AMENDABLE_FIELDS:
            raise ValueError(
                f"{value!r} is not a documentation field; amendable: {', '.join(AMENDABLE_FIELDS)}"
                " (recorded data is never writable)"
            )
        return value


class AmendmentOut(BaseModel):
    id: int
    session_id: str
    author: str
    at: datetime
    field_name: str
    old_value: Any
    new_value: Any
    why: str


class PatientIn(BaseModel):
    """A patient by the clinic's reference (never a name: identity lives in the clinic's EHR)."""

    model_config = INPUT | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "reference": "MRN-00412",
                    "body_weight_kg": 82,
                    "sex": "male",
                    "contraindications": ["osteoporosis"],
                    "payer_id": "medicare",
                }
            ]
        },
    )

    reference: str = Field(
        min_length=1, max_length=64, description="The clinic's patient reference"
    )
    body_weight_kg: Number = Field(
        ge=WEIGHT_MIN_KG,
        le=WEIGHT_MAX_KG,
        description="Limits the lumbar force; a plausible adult weight in kg",
    )
    sex: Sex = Field(default=Sex.UNKNOWN, description="Recorded because some limits depend on it")
    contraindications: Annotated[
        list[Name], Field(max_length=MAX_CONTRAINDICATIONS), AfterValidator(unique)
    ] = Field(
        default_factory=list,
        description="Keys of configs/safety.toml's [contraindications]: they block treatment, "
        "e.g. osteoporosis",
    )
    precautions: Annotated[
        list[Name], Field(max_length=MAX_CONTRAINDICATIONS), AfterValidator(unique)
    ] = Field(
        default_factory=list,
        description="Keys of configs/safety.toml's [precautions]: they warn, e.g. claustrophobia",
    )
    payer_id: str | None = Field(
        default=None, max_length=64, description="A payer key from configs/payers.toml"
    )


class PatientOut(BaseModel):
    id: int
    reference: str
    body_weight_kg: float
    sex: Sex
    contraindications: list[str]
    precautions: list[str]
    payer_id: str | None
    version: int = Field(description="The patient's facts version; each edit adds one")


class ClinicianIn(BaseModel):
    """A treating or supervising professional, named as a note must name them."""

    model_config = INPUT | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Dana Reyes",
                    "credentials": "PT, DPT",
                    "discipline": "PT",
                    "npi": "1234567893",
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200, description="Full name as on the note")
    credentials: str = Field(min_length=1, max_length=64, description='e.g. "PT, DPT" or "DC"')
    discipline: Discipline = Field(description="Picks the therapy modifier (GP, GO, GN)")
    npi: str | None = Field(
        default=None,
        pattern=r"^[0-9]{10}$",
        description="National Provider Identifier, 10 digits (billing lines need it)",
    )


class ClinicianOut(BaseModel):
    id: int
    name: str
    credentials: str
    discipline: Discipline
    npi: str | None


class UserIn(BaseModel):
    model_config = INPUT

    name: Name
    role: Role
    clinician_id: Id | None = Field(
        default=None, description="Link a clinician user to a clinician"
    )


class UserOut(BaseModel):
    id: int
    name: str
    role: Role
    clinician_id: int | None
    active: bool
    created_at: datetime


class MeOut(BaseModel):
    name: str
    role: Role
    clinician_id: int | None
    permissions: list[str]


class TokenIn(BaseModel):
    """A token for the calling user: an admin cannot mint one for anyone else (that would let it
    act as a clinician); another user's token comes from `traction tokens create USER` on the
    workstation itself."""

    model_config = INPUT

    user: Name | None = Field(
        default=None, description="Default, and the only name accepted: the calling user's"
    )
    ttl_hours: Number | None = Field(
        default=None, gt=0, le=24 * 90, description="Default: the token_ttl_hours setting"
    )
    label: str = Field(default="", max_length=200)


class TokenOut(BaseModel):
    id: int
    user: str
    label: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class TokenIssuedOut(TokenOut):
    token: str = Field(description="The bearer token; shown this once and never stored")


class HealthOut(BaseModel):
    status: str
    workstation: str
    schema_revision: str | None
    tables: dict[str, str | None] = Field(description="Table name -> running session id, if any")


class SettingsOut(BaseModel):
    workstation: str
    database_url: str = Field(description="Password hidden")
    data_dir: str
    display_unit: str
    bind_host: str
    bind_port: int
    tables: list[dict[str, str]]
    token_ttl_hours: float
    sim_time_scale: float
    place_of_service: str
    time_zone: str


class ProgressionIn(BaseModel):
    """The clinic's per-session progression: raise the hold force by ``step`` up to ``goal``."""

    model_config = INPUT

    step: Name = Field(description="Force with its unit, e.g. '5 lbf'")
    goal: Name = Field(description="The hold force to reach, e.g. '80 lbf'")


class PlanIn(ProfileChoice):
    """A patient's plan of care: the dose (``profile`` settings or a shipped ``profile_name``)
    and an optional per-session progression. Every version is kept with who, when and why."""

    model_config = INPUT | ConfigDict(
        json_schema_extra={
            **EXACTLY_ONE_PROFILE,
            "examples": [
                {
                    "profile": PROFILE_EXAMPLE,
                    "progression": {"step": "5 lbf", "goal": "45 lbf"},
                    "why": "initial evaluation",
                }
            ],
        },
    )

    profile: ProfileSettings | None = Field(
        default=None,
        description=PROFILE_DESCRIPTION,
        examples=[PROFILE_EXAMPLE],
        json_schema_extra=_not_nullable,
    )
    profile_name: Name | None = Field(
        default=None, description="A profile in configs/profiles/", json_schema_extra=_not_nullable
    )
    progression: ProgressionIn | None = None
    why: str = Field(min_length=1, max_length=MAX_REASON, description="Kept with the version")


class PlanOut(BaseModel):
    patient_reference: str
    version: int = Field(description="Each change of the plan adds one")
    at: datetime
    by: str
    why: str
    profile: dict[str, Any] = Field(description="The dose, newtons and seconds")
    step_n: float | None = Field(description="Per completed session; null: the dose is kept")
    goal_n: float | None
    next_step: str = Field(description="What the plan suggests for the next session")

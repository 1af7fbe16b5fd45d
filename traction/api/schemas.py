"""Request and response bodies of the HTTP API (the OpenAPI document is generated from these).

Forces are newtons (``_n``), times session seconds (``t``) or UTC moments (``_at``), as stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from devices.contract import DeviceInfo, TableState
from session.accounts import Role
from session.models import AbnStatus, Discipline, Sex
from session.store import AMENDABLE_FIELDS


class ErrorOut(BaseModel):
    detail: str = Field(description="What was refused and why")


class ViolationOut(BaseModel):
    field: str = Field(description="The prescription or patient field that breaks a limit")
    value: str
    limit: str
    message: str
    severity: str = Field(description="block (nothing starts) or warn")


class RefusedOut(BaseModel):
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


class TableOut(BaseModel):
    name: str
    url: str
    simulated: bool
    device: DeviceInfo = Field(description="What the table reported when opened")
    state: TableState | None = Field(
        default=None, description="A fresh reading when idle; empty while a session runs"
    )
    live: LiveOut | None = Field(default=None, description="The running session, if any")


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


class PrescriptionIn(BaseModel):
    """A session to validate or start. Give ``profile`` (settings as in configs/profiles/*.toml)
    or ``profile_name`` (a shipped profile such as ``demo``), not both."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "table": "table-1",
                    "profile_name": "demo",
                    "patient_reference": "MRN-0001",
                    "treating_clinician_id": 1,
                    "regions": ["lumbar"],
                    "diagnosis_codes": ["M51.16"],
                }
            ]
        },
    )

    table: str = Field(description="A configured table name (GET /tables)")
    profile: dict[str, Any] | None = Field(
        default=None, description=PROFILE_DESCRIPTION, examples=[PROFILE_EXAMPLE]
    )
    profile_name: str | None = Field(default=None, description="A profile in configs/profiles/")
    patient_reference: str = Field(min_length=1, description="The clinic's patient reference")
    treating_clinician_id: int | None = Field(
        default=None, description="Default: the clinician linked to the calling user"
    )
    supervising_clinician_id: int | None = None
    regions: list[str] = Field(default_factory=list)
    diagnosis_codes: list[str] = Field(default_factory=list, description="ICD-10-CM, primary first")
    medical_necessity: str | None = None
    plan_of_care_ref: str | None = None
    patient_position: str | None = None
    pull_angle_deg: float | None = Field(default=None, ge=-90, le=90)
    abn_status: AbnStatus | None = None
    operator_confirmed: bool = Field(
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


class SettingsIn(BaseModel):
    """A live change of a running session's profile. Give ``profile`` or ``profile_name``, not
    both. It is re-validated for the patient on the table; the profile's clock carries on, and
    the force ramps to the new curve at its ramp rate, never jumps."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "profile": {**PROFILE_EXAMPLE, "hold_force": "30 lbf"},
                    "operator_confirmed": False,
                    "reason": "patient reports discomfort at 35 lbf",
                }
            ]
        },
    )

    profile: dict[str, Any] | None = Field(
        default=None,
        description=PROFILE_DESCRIPTION + " The region must stay the running session's.",
        examples=[PROFILE_EXAMPLE],
    )
    profile_name: str | None = Field(default=None, description="A profile in configs/profiles/")
    operator_confirmed: bool = Field(
        default=False, description="The operator confirms a force above the confirmation level"
    )
    reason: str | None = Field(
        default=None, max_length=500, description="Why the settings change; recorded with it"
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
    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="One of: " + ", ".join(AMENDABLE_FIELDS))
    value: Any = Field(description="The new value (JSON), typed as the field is")
    why: str = Field(min_length=1, description="Why the documentation changes")

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

    model_config = ConfigDict(
        extra="forbid",
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
    body_weight_kg: float = Field(gt=0, lt=700, description="Limits the lumbar force")
    sex: Sex = Field(default=Sex.UNKNOWN, description="Recorded because some limits depend on it")
    contraindications: list[str] = Field(
        default_factory=list,
        description="Keys of configs/safety.toml's [contraindications] (block treatment) and "
        "[precautions] (warn), e.g. osteoporosis",
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
    payer_id: str | None


class ClinicianIn(BaseModel):
    """A treating or supervising professional, named as a note must name them."""

    model_config = ConfigDict(
        extra="forbid",
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
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    role: Role
    clinician_id: int | None = Field(
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
    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, description="The user's name")
    ttl_hours: float | None = Field(
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

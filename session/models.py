"""The session record as database tables.

A session row holds what was prescribed and who did it (the documentation elements of a 97012 note),
the table's identity and the full ``Started`` settings snapshot; samples and events hold what the
table did. Samples, events and amendments are append-only: the application inserts them and never
updates or deletes them. Documentation fields that may be completed after the session change only
through :meth:`session.store.Store.amend`, which writes an :class:`Amendment` row for each change.

Forces are newtons (``_n``), angles degrees, weights kilograms, ``t`` columns session seconds on the
monotonic clock, ``_at`` columns UTC wall-clock moments.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite returns naive values otherwise)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamps must be timezone-aware, got naive {value.isoformat()}")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Discipline(enum.StrEnum):
    """The treating clinician's discipline; it picks the therapy modifier (GP, GO, GN)."""

    PT = "PT"
    OT = "OT"
    SLP = "SLP"
    DC = "DC"  # chiropractor


class Sex(enum.StrEnum):
    """Recorded only because some limits depend on it."""

    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class AbnStatus(enum.StrEnum):
    """Advance Beneficiary Notice: whether the clinic expects a denial, and whether one was signed."""

    NOT_REQUIRED = "not_required"  # no denial expected
    SIGNED = "signed"  # denial expected, the patient signed an ABN -> GA
    REFUSED = "refused"  # ABN given, the patient refused to sign and was treated -> GA
    NOT_OBTAINED = "not_obtained"  # denial expected, no ABN given -> GZ

    @property
    def abn_given(self) -> bool:
        """An ABN was delivered (signed or refused), which is what GA attests."""
        return self in (AbnStatus.SIGNED, AbnStatus.REFUSED)


class Patient(SQLModel, table=True):
    """A patient by the clinic's reference (never a name: identity lives in the clinic's EHR)."""

    __tablename__ = "patients"

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(sa_type=sa.String(64), unique=True, index=True)
    body_weight_kg: float = Field(sa_type=sa.Float)
    sex: str = Field(default=Sex.UNKNOWN.value, sa_type=sa.String(16))
    contraindications: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    payer_id: str | None = Field(default=None, sa_type=sa.String(64))


class Clinician(SQLModel, table=True):
    """A treating or supervising professional, named as a note must name them."""

    __tablename__ = "clinicians"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=sa.String(200))
    credentials: str = Field(sa_type=sa.String(64))  # e.g. "PT, DPT"
    discipline: str = Field(sa_type=sa.String(8))  # a Discipline value
    npi: str | None = Field(default=None, sa_type=sa.String(16), unique=True)


class TreatmentSession(SQLModel, table=True):
    """One run of a table on a patient, and everything its documentation needs.

    ``id`` is the run id of the ``Started`` record. ``outcome`` is empty while the session runs;
    a session left empty by a crash is marked ``interrupted`` on the next start.
    """

    __tablename__ = "sessions"

    id: str = Field(sa_type=sa.String(64), primary_key=True)
    patient_id: int = Field(foreign_key="patients.id", index=True)
    treating_clinician_id: int = Field(foreign_key="clinicians.id", index=True)
    supervising_clinician_id: int | None = Field(
        default=None, foreign_key="clinicians.id", index=True
    )
    workstation: str = Field(sa_type=sa.String(128), index=True)

    # the table, as identify() reported it
    table_label: str = Field(sa_type=sa.String(256))
    device_manufacturer: str = Field(default="", sa_type=sa.String(128))
    device_model: str = Field(sa_type=sa.String(128))
    device_serial: str = Field(sa_type=sa.String(128))
    device_firmware: str = Field(sa_type=sa.String(64))
    device_rated_max_force_n: float = Field(sa_type=sa.Float)

    # what was prescribed
    regions: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    settings: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)  # Started.to_dict()
    start_t: float = Field(sa_type=sa.Float)  # session-clock time of the Started record

    # documentation fields that may be completed afterwards (changed only through amendments)
    diagnosis_codes: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    medical_necessity: str | None = Field(default=None, sa_type=sa.Text)
    plan_of_care_ref: str | None = Field(default=None, sa_type=sa.String(128))
    patient_position: str | None = Field(default=None, sa_type=sa.String(64))
    pull_angle_deg: float | None = Field(default=None, sa_type=sa.Float)
    patient_response: str | None = Field(default=None, sa_type=sa.Text)
    signed_by_id: int | None = Field(default=None, foreign_key="clinicians.id")
    signed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    abn_status: str | None = Field(default=None, sa_type=sa.String(32))  # an AbnStatus value

    # what happened
    started_at: datetime = Field(sa_type=UTCDateTime, index=True)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    outcome: str | None = Field(default=None, sa_type=sa.String(16), index=True)  # an Outcome
    outcome_reason: str | None = Field(default=None, sa_type=sa.Text)
    last_sample_t: float | None = Field(default=None, sa_type=sa.Float)
    sample_count: int = Field(default=0)
    event_count: int = Field(default=0)

    # integrity
    seal_digest: str | None = Field(default=None, sa_type=sa.String(80))
    seal_parts: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    sealed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class StoredSample(SQLModel, table=True):
    """One control tick as recorded: append-only."""

    __tablename__ = "samples"

    session_id: str = Field(sa_type=sa.String(64), foreign_key="sessions.id", primary_key=True)
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    t: float = Field(sa_type=sa.Float)
    target_n: float = Field(sa_type=sa.Float)
    measured_n: float = Field(sa_type=sa.Float)
    phase: str = Field(sa_type=sa.String(16))
    cycle: int = Field(default=0)


class StoredEvent(SQLModel, table=True):
    """One event as recorded, numbered in arrival order within its session: append-only."""

    __tablename__ = "events"

    session_id: str = Field(sa_type=sa.String(64), foreign_key="sessions.id", primary_key=True)
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    t: float = Field(sa_type=sa.Float)
    kind: str = Field(sa_type=sa.String(32))
    reason: str = Field(sa_type=sa.Text)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class Amendment(SQLModel, table=True):
    """One change to a documentation field after the session started: append-only.

    ``old_value`` and ``new_value`` are the JSON values of the field before and after.
    """

    __tablename__ = "amendments"

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(sa_type=sa.String(64), foreign_key="sessions.id", index=True)
    author: str = Field(sa_type=sa.String(200))
    at: datetime = Field(sa_type=UTCDateTime)
    field_name: str = Field(sa_type=sa.String(64))
    old_value: Any = Field(default=None, sa_type=sa.JSON)
    new_value: Any = Field(default=None, sa_type=sa.JSON)
    why: str = Field(sa_type=sa.Text)

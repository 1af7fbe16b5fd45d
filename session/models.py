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
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from session.columns import UTCDateTime


class Discipline(enum.StrEnum):
    """The treating clinician's discipline; it picks the therapy modifier (GP, GO, GN)."""

    PT = "PT"
    OT = "OT"
    SLP = "SLP"
    DC = "DC"  # chiropractor
    PTA = "PTA"  # physical therapist assistant: treats under a PT's supervision
    OTA = "OTA"  # occupational therapy assistant: treats under an OT's supervision

    @property
    def supervised_by(self) -> Discipline | None:
        """The therapist discipline an assistant works under; None for a therapist."""
        return _SUPERVISED_BY.get(self)

    @property
    def practice(self) -> Discipline:
        """The discipline whose plan of care and therapy modifier apply (PT for a PTA)."""
        return self.supervised_by or self


_SUPERVISED_BY = {Discipline.PTA: Discipline.PT, Discipline.OTA: Discipline.OT}


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
    precautions: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    payer_id: str | None = Field(default=None, sa_type=sa.String(64))
    version: int = Field(default=1)  # the latest PatientVersion of this patient


class PatientVersion(SQLModel, table=True):
    """Every version of a patient's facts, with who changed them, when and why: append-only.

    A session's settings snapshot names the version its safety check used, so a contraindication
    found later never rewrites what the check knew at the time.
    """

    __tablename__ = "patient_versions"

    patient_id: int = Field(foreign_key="patients.id", primary_key=True)
    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_type=UTCDateTime)
    by: str = Field(sa_type=sa.String(200))
    why: str = Field(sa_type=sa.Text)
    facts: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


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
    __table_args__ = (
        # listings page newest first by (started_at, id) without sorting a year of rows
        sa.Index("ix_sessions_started_at_id", "started_at", "id"),
    )

    id: str = Field(sa_type=sa.String(64), primary_key=True)
    patient_id: int = Field(foreign_key="patients.id", index=True)
    treating_clinician_id: int = Field(foreign_key="clinicians.id", index=True)
    supervising_clinician_id: int | None = Field(
        default=None, foreign_key="clinicians.id", index=True
    )
    workstation: str = Field(sa_type=sa.String(128), index=True)  # the configured label
    # the workstation's unique identity (session.identity): only it holds the session's journal,
    # so only it may find the session's owner gone and recover it. Empty on rows written before
    # the "leases" revision.
    workstation_id: str | None = Field(default=None, sa_type=sa.String(36), index=True)

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
    # the supervising therapist's co-signature of an assistant's note: a second, distinct signature
    cosigned_by_id: int | None = Field(default=None, foreign_key="clinicians.id")
    cosigned_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    abn_status: str | None = Field(default=None, sa_type=sa.String(32))  # an AbnStatus value
    decompression: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    visit_timed_minutes: float | None = Field(default=None, sa_type=sa.Float)
    visit_treatment_minutes: float | None = Field(default=None, sa_type=sa.Float)
    same_day_codes: list[str] = Field(default_factory=list, sa_type=sa.JSON)

    # how the session ran: a simulated table (sim://) is never billed; on a scaled clock the
    # session's own time (``*_t`` columns) runs ``time_scale`` times faster than the wall clock
    simulated: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    time_scale: float = Field(
        default=1.0, sa_type=sa.Float, sa_column_kwargs={"server_default": "1"}
    )

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


class Workstation(SQLModel, table=True):
    """A workstation known to the store, by the identity it made on its first start.

    ``machine`` is the fingerprint of the computer that made the identity: a data directory copied
    to another computer carries the identity with it, and is refused there.
    """

    __tablename__ = "workstations"

    id: str = Field(sa_type=sa.String(36), primary_key=True)
    label: str = Field(sa_type=sa.String(128))
    machine: str = Field(sa_type=sa.String(128))
    first_seen_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(sa_type=UTCDateTime)


class SignedVersion(SQLModel, table=True):
    """Each signing of a note, with the documentation fields as they were signed: append-only.

    Amending a signed note reopens it (``signed_by_id`` cleared) until it is signed again; every
    version that was ever signed stays here."""

    __tablename__ = "signed_versions"

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(sa_type=sa.String(64), foreign_key="sessions.id", index=True)
    version: int
    signed_by_id: int = Field(foreign_key="clinicians.id")
    signed_at: datetime = Field(sa_type=UTCDateTime)
    author: str = Field(sa_type=sa.String(200))
    fields: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class ExportRun(SQLModel, table=True):
    """One export, claim run, correction or void: who, when, which sessions, lines and files."""

    __tablename__ = "export_runs"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    by: str = Field(sa_type=sa.String(200))
    kind: str = Field(sa_type=sa.String(16))  # export, correct, void
    session_ids: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    files: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    held: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    note: str = Field(default="", sa_type=sa.Text)


class ClaimEncounter(SQLModel, table=True):
    """A billed encounter: one row per (patient, date of service, code), so it is billed once
    even when two workstations export at the same moment (the database enforces it)."""

    __tablename__ = "claim_encounters"
    __table_args__ = (
        sa.UniqueConstraint("patient_id", "date_of_service", "code", name="uq_claim_encounter"),
    )

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patients.id", index=True)
    date_of_service: date = Field(sa_type=sa.Date)
    code: str = Field(sa_type=sa.String(8))


class ClaimLine(SQLModel, table=True):
    """A claim service line as sent: append-only. ``id`` is the pull cursor.

    ``frequency`` is the X12 claim frequency code: 1 original, 7 replacement of a sent line,
    8 void of a sent line (``replaces_line_id`` names the line corrected or voided)."""

    __tablename__ = "claim_lines"

    id: int | None = Field(default=None, primary_key=True)
    encounter_id: int = Field(foreign_key="claim_encounters.id", index=True)
    run_id: int = Field(foreign_key="export_runs.id", index=True)
    frequency: str = Field(sa_type=sa.String(1))
    replaces_line_id: int | None = Field(default=None, foreign_key="claim_lines.id")
    created_at: datetime = Field(sa_type=UTCDateTime)
    payer_key: str = Field(sa_type=sa.String(64))
    patient_ref: str = Field(sa_type=sa.String(64))
    date_of_service: date = Field(sa_type=sa.Date)
    cpt_code: str = Field(sa_type=sa.String(8))
    modifiers: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    units: int
    charge: str = Field(sa_type=sa.String(16))  # dollars as text: exact, on every backend
    diagnoses: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    dx_pointers: list[int] = Field(default_factory=list, sa_type=sa.JSON)
    rendering_npi: str = Field(sa_type=sa.String(16))
    supervising_npi: str = Field(sa_type=sa.String(16))
    place_of_service: str = Field(sa_type=sa.String(2))
    session_ids: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    reason: str = Field(default="", sa_type=sa.Text)


class ClaimedSession(SQLModel, table=True):
    """Which encounter (and line) covers a session, so a session is claimed once and a second
    session of the same day is told which line already bills it."""

    __tablename__ = "claimed_sessions"

    session_id: str = Field(sa_type=sa.String(64), foreign_key="sessions.id", primary_key=True)
    encounter_id: int = Field(foreign_key="claim_encounters.id", index=True)
    line_id: int = Field(foreign_key="claim_lines.id")
    run_id: int = Field(foreign_key="export_runs.id")

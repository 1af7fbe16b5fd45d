"""The 97012 documentation model: everything a reviewer needs, built from what the table did.

One model feeds every renderer (JSON, CSV billing lines, PDF, FHIR, X12) and the billing-readiness
checks, so they cannot disagree. The builder is pure: it takes the session facts, the settings
snapshot, the events and a sample *iterator* (statistics are streamed, samples are never all held in
memory), so it is tested without a database. A stored session is documented from the facts computed
when it was sealed (:mod:`session.facts`), without reading its samples again. Forces are stated in the clinic's unit, and every
number that has a unit says which.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, tzinfo
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from devices.errors import ConfigError
from devices.records import EventKind, Outcome
from devices.units import ForceUnit, from_newtons
from session.cycles import CycleCount
from session.errors import DocumentationError
from session.facts import (
    HOLD_FORCE_KEYS,
    INTERRUPTING,
    DeliveredStats,
    SampleLike,
    facts_for,
    hold_force_n,
    target_tolerance_n,
)
from session.models import AbnStatus, Discipline
from session.seal import verify as verify_seal
from session.store import Store

SCHEMA_VERSION: Final = "2"
CPT_TRACTION: Final = "97012"


class Region(enum.StrEnum):
    CERVICAL = "cervical"
    THORACIC = "thoracic"
    LUMBAR = "lumbar"


class TractionType(enum.StrEnum):
    STATIC = "static"
    INTERMITTENT = "intermittent"


class Supervision(enum.StrEnum):
    """97012 is a supervised modality: a qualified professional in the facility suffices."""

    IN_ROOM = "in_room"
    IN_FACILITY = "in_facility"
    NOT_PRESENT = "not_present"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)


class Clinician(_Frozen):
    name: str = Field(min_length=1, description="Full name as signed")
    credentials: str = Field(description="e.g. PT, DPT, PTA, OTR/L, DC")
    discipline: Discipline
    npi: str | None = Field(default=None, description="National Provider Identifier (10 digits)")


class DeviceInfo(_Frozen):
    manufacturer: str
    model: str
    serial: str
    firmware: str
    table: str = Field(description="The workstation's name for the table")


class PlanOfCare(_Frozen):
    reference: str = Field(
        min_length=1, description="The plan of care's reference in the clinic's EHR"
    )
    discipline: Discipline | None = Field(
        default=None,
        description="The plan's discipline when known; the therapy modifier follows it",
    )
    goals: str | None = Field(default=None, description="Goals traction serves")


class Signature(_Frozen):
    name: str
    credentials: str
    signed_at: datetime


class Amendment(_Frozen):
    """An append-only correction or addendum; the original record is never changed."""

    at: datetime
    by: str
    field: str
    reason: str
    value: str = ""


class Seal(_Frozen):
    algorithm: str = Field(description="Digest algorithm, e.g. sha256")
    digest: str = Field(description="Digest over the settings snapshot and samples")
    verified: bool = Field(description="The digest recomputed from the stored record matches")


class Prescribed(_Frozen):
    """The prescription as set on the table, in ``force_unit``."""

    force_unit: ForceUnit
    hold_force: float = Field(ge=0, description="Hold (maximum) force, in force_unit")
    rest_force: float | None = Field(
        default=None, ge=0, description="Rest (base) force, in force_unit"
    )
    hold_s: float | None = Field(default=None, ge=0)
    rest_s: float | None = Field(default=None, ge=0)
    progression_steps: int = Field(default=0, ge=0)
    regression_steps: int = Field(default=0, ge=0)
    ramp_per_s: float | None = Field(
        default=None, ge=0, description="Ramp rate, force_unit per second"
    )
    total_minutes: float | None = Field(default=None, ge=0)
    angle_deg: float | None = None
    position: str | None = Field(
        default=None, description="Patient position, e.g. supine, hips and knees flexed"
    )


class Occurrence(_Frozen):
    """An event during treatment, at seconds from the start of the session."""

    at_s: float
    kind: str = Field(
        description="Event kind: trip, stop_switch, fault, link_lost, pause, settings_changed, ..."
    )
    reason: str


class Delivered(_Frozen):
    """What the table really did, computed from every recorded sample."""

    force_unit: ForceUnit
    elapsed_minutes: float = Field(ge=0, description="First to last sample")
    treatment_minutes: float = Field(ge=0, description="Elapsed minus paused time")
    paused_s: float = Field(ge=0)
    time_at_target_s: float = Field(
        ge=0, description="Hold time with measured force within tolerance of target"
    )
    target_tolerance: float = Field(
        ge=0, description="The tolerance used for time at target, in force_unit"
    )
    peak_hold_force: float | None = Field(
        default=None, description="Highest measured force in hold"
    )
    mean_hold_force: float | None = Field(default=None, description="Mean measured force in hold")
    cycles: int = Field(ge=0, description="Holds entered, full and stepped")
    cycles_summary: str = Field(
        default="",
        description='Holds by force, e.g. "3 cycles: 1 at 35 lbf, 2 stepped at 17.5 lbf"',
    )
    sample_count: int = Field(ge=0)
    interruptions: tuple[Occurrence, ...] = ()
    settings_changes: tuple[Occurrence, ...] = ()


class FindingOut(_Frozen):
    """A billing-readiness finding as documents show it."""

    code: str
    severity: Literal["blocking", "warning", "info"]
    message: str


class BillingStatus(_Frozen):
    """Where the session stands for billing, as of the export that wrote the document."""

    status: Literal["sent", "already_sent", "ready", "held", "documented_only", "simulated"] = (
        Field(
            description="sent: billed by this export; already_sent: billed before on "
            "claim_line_id; ready: would bill; held: blocking findings; documented_only: "
            "another session of the day carries the line; simulated: never billed"
        )
    )
    claim_line_id: int | None = None
    note: str = ""
    findings: tuple[FindingOut, ...] = ()


class Documentation(_Frozen):
    """One treated session, documented for CPT 97012 (schema ``documentation-v2``)."""

    schema_version: Literal["2"] = SCHEMA_VERSION
    cpt_code: Literal["97012"] = CPT_TRACTION
    session_id: str
    patient_ref: str = Field(min_length=1, description="Clinic patient reference, not a name")
    date_of_service: date
    started_at: datetime = Field(description="Wall-clock start, in the clinic's time zone")
    ended_at: datetime | None = Field(description="Wall-clock end, in the clinic's time zone")
    simulated: bool = Field(
        default=False,
        description="Run on a simulated table: a rehearsal, never a treatment, never billed",
    )
    time_scale: float = Field(
        default=1.0,
        gt=0,
        description="Session time ran this many times faster than the wall clock (simulators "
        "only); delivered minutes are session time",
    )
    treating: Clinician
    supervising: Clinician | None = None
    supervision: Supervision
    device: DeviceInfo
    traction_type: TractionType
    regions: tuple[Region, ...] = Field(
        description="Treated regions; empty is reported, not refused"
    )
    decompression: bool = Field(
        default=False, description="Vertebral axial decompression rather than traction"
    )
    prescribed: Prescribed
    delivered: Delivered
    diagnoses: tuple[str, ...] = Field(default=(), description="ICD-10-CM, primary first")
    medical_necessity: str | None = Field(
        default=None, description="How traction serves the plan-of-care goals"
    )
    plan_of_care: PlanOfCare | None = None
    patient_response: str | None = Field(default=None, description="Response and tolerance")
    signature: Signature | None = None
    cosignature: Signature | None = Field(
        default=None,
        description="The supervising therapist's co-signature of an assistant's note",
    )
    abn: AbnStatus = AbnStatus.NOT_REQUIRED
    payer: str | None = Field(default=None, description="Key of the payer in configs/payers.toml")
    prior_active_care_weeks: int | None = Field(
        default=None, ge=0, description="Weeks of failed active care before traction"
    )
    same_day_codes: tuple[str, ...] = Field(
        default=(), description="Other CPT codes billed on the visit (for NCCI pairs)"
    )
    distinct_modifier: Literal["XE", "XS", "XP", "XU"] | None = Field(
        default=None,
        description="The documented reason 97012 is distinct from a same-day code, if any",
    )
    visit_timed_minutes: float | None = Field(
        default=None, ge=0, description="Total timed-code minutes of the visit"
    )
    visit_treatment_minutes: float | None = Field(
        default=None, ge=0, description="Total treatment minutes of the visit"
    )
    place_of_service: str = Field(default="11", pattern=r"^\d{2}$")
    amendments: tuple[Amendment, ...] = ()
    seal: Seal | None = None
    outcome: Outcome
    outcome_reason: str = ""
    billing: BillingStatus | None = Field(
        default=None, description="Billing status and every finding, when exported for billing"
    )


class ClinicalRecord(_Frozen):
    """What the clinicians enter about a session (the table cannot know it)."""

    treating: Clinician
    supervising: Clinician | None = None
    supervision: Supervision = Supervision.IN_FACILITY
    diagnoses: tuple[str, ...] = ()
    medical_necessity: str | None = None
    plan_of_care: PlanOfCare | None = None
    patient_response: str | None = None
    signature: Signature | None = None
    cosignature: Signature | None = None
    abn: AbnStatus = AbnStatus.NOT_REQUIRED
    payer: str | None = None
    prior_active_care_weeks: int | None = None
    same_day_codes: tuple[str, ...] = ()
    distinct_modifier: Literal["XE", "XS", "XP", "XU"] | None = None
    visit_timed_minutes: float | None = None
    visit_treatment_minutes: float | None = None
    position: str | None = None
    angle_deg: float | None = None
    decompression: bool = False


class SessionFacts(_Frozen):
    """The stored session row, in plain values."""

    session_id: str
    patient_ref: str
    regions: tuple[Region, ...]
    started_at: datetime
    ended_at: datetime | None
    outcome: Outcome
    outcome_reason: str = ""
    place_of_service: str = "11"
    amendments: tuple[Amendment, ...] = ()
    seal: Seal | None = None
    device: DeviceInfo | None = None  # None: read it from the settings snapshot
    simulated: bool = False
    time_scale: float = 1.0


class EventLike(Protocol):
    @property
    def t(self) -> float: ...
    @property
    def kind(self) -> EventKind | str: ...
    @property
    def reason(self) -> str: ...


_ALIASES: dict[str, tuple[str, ...]] = {
    "mode": ("mode", "kind", "type"),
    "hold_n": HOLD_FORCE_KEYS,
    "rest_n": ("rest_force_n", "rest_n", "base_force_n"),
    "hold_s": ("hold_s",),
    "rest_s": ("rest_s",),
    "total_s": ("duration_s", "total_s"),
    "progression": ("progression_steps", "steps_up"),
    "regression": ("regression_steps", "steps_down"),
    "ramp": ("ramp_n_per_s", "ramp_rate_n_per_s"),
    "angle": ("angle_deg",),
    "position": ("position",),
}


def _pick(profile: Mapping[str, Any], name: str) -> Any:
    for key in _ALIASES[name]:
        if profile.get(key) is not None:
            return profile[key]
    return None


def _traction_type(profile: Mapping[str, Any]) -> TractionType:
    mode = str(_pick(profile, "mode") or "").lower()
    if mode in ("intermittent",):
        return TractionType.INTERMITTENT
    if mode in ("static", "continuous", "sustained"):
        return TractionType.STATIC
    raise ConfigError(
        "settings snapshot: profile.mode",
        f"{mode!r} is not a traction mode; expected continuous/static or intermittent",
    )


def _prescribed(
    profile: Mapping[str, Any], clinical: ClinicalRecord, unit: ForceUnit
) -> Prescribed:
    hold_n = _pick(profile, "hold_n")
    if not isinstance(hold_n, int | float):
        raise ConfigError(
            "settings snapshot: profile",
            f"has no hold force in newtons (one of {_ALIASES['hold_n']})",
        )

    def force(v: Any) -> float | None:
        return None if v is None else round(from_newtons(float(v), unit), 2)

    total_s = _pick(profile, "total_s")
    angle = clinical.angle_deg if clinical.angle_deg is not None else _pick(profile, "angle")
    return Prescribed(
        force_unit=unit,
        hold_force=round(from_newtons(float(hold_n), unit), 2),
        rest_force=force(_pick(profile, "rest_n")),
        hold_s=_pick(profile, "hold_s"),
        rest_s=_pick(profile, "rest_s"),
        progression_steps=int(_pick(profile, "progression") or 0),
        regression_steps=int(_pick(profile, "regression") or 0),
        ramp_per_s=force(_pick(profile, "ramp")),
        total_minutes=None if total_s is None else round(float(total_s) / 60.0, 2),
        angle_deg=angle,
        position=clinical.position or _pick(profile, "position"),
    )


def _device(snapshot: Mapping[str, Any]) -> DeviceInfo:
    device = snapshot.get("device") or {}
    return DeviceInfo(
        manufacturer=str(device.get("manufacturer") or device.get("vendor") or ""),
        model=str(device.get("model") or ""),
        serial=str(device.get("serial") or device.get("serial_number") or ""),
        firmware=str(device.get("firmware") or ""),
        table=str(snapshot.get("table") or ""),
    )


def document_session(
    facts: SessionFacts,
    snapshot: Mapping[str, Any],
    events: Iterable[EventLike],
    samples: Iterable[SampleLike],
    clinical: ClinicalRecord,
    unit: ForceUnit = ForceUnit.LBF,
) -> Documentation:
    """Build the documentation from plain inputs. ``snapshot`` is ``Started.to_dict()``."""
    profile = snapshot.get("profile") or {}
    hold_n = hold_force_n(profile)
    stats = DeliveredStats(target_tolerance_n(hold_n or 0.0))
    for s in samples:
        stats.add(s.t, s.target_n, s.measured_n, str(s.phase))
    t0 = snapshot.get("t")
    origin = float(t0) if isinstance(t0, int | float) else (stats.first_t or 0.0)
    occurrences = [
        Occurrence(at_s=round(e.t - origin, 3), kind=str(e.kind), reason=e.reason) for e in events
    ]
    delivered = _delivered(
        unit,
        elapsed_s=stats.elapsed_s,
        paused_s=stats.paused_s,
        at_target_s=stats.at_target_s,
        tolerance_n=stats.tolerance_n,
        peak_hold_n=stats.peak_hold_n,
        mean_hold_n=stats.mean_hold_n,
        cycles=stats.cycle_count,
        sample_count=stats.count,
        occurrences=occurrences,
    )
    return _document(facts, snapshot, delivered, clinical, unit)


def _delivered(
    unit: ForceUnit,
    *,
    elapsed_s: float,
    paused_s: float,
    at_target_s: float,
    tolerance_n: float,
    peak_hold_n: float | None,
    mean_hold_n: float | None,
    cycles: CycleCount,
    sample_count: int,
    occurrences: Iterable[Occurrence],
) -> Delivered:
    """What was delivered, in ``unit``, from the figures of one pass over the samples."""

    def force(v: float | None) -> float | None:
        return None if v is None else round(from_newtons(v, unit), 2)

    interruptions: list[Occurrence] = []
    changes: list[Occurrence] = []
    for occurrence in occurrences:
        if occurrence.kind in INTERRUPTING:
            interruptions.append(occurrence)
        elif occurrence.kind == EventKind.SETTINGS_CHANGED:
            changes.append(occurrence)
    return Delivered(
        force_unit=unit,
        elapsed_minutes=round(elapsed_s / 60.0, 2),
        treatment_minutes=round(max(0.0, elapsed_s - paused_s) / 60.0, 2),
        paused_s=round(paused_s, 1),
        time_at_target_s=round(at_target_s, 1),
        target_tolerance=round(from_newtons(tolerance_n, unit), 2),
        peak_hold_force=force(peak_hold_n),
        mean_hold_force=force(mean_hold_n),
        cycles=cycles.total,
        cycles_summary=cycles.describe(unit),
        sample_count=sample_count,
        interruptions=tuple(interruptions),
        settings_changes=tuple(changes),
    )


def _document(
    facts: SessionFacts,
    snapshot: Mapping[str, Any],
    delivered: Delivered,
    clinical: ClinicalRecord,
    unit: ForceUnit,
) -> Documentation:
    profile = snapshot.get("profile") or {}
    prescribed = _prescribed(profile, clinical, unit)
    return Documentation(
        session_id=facts.session_id,
        patient_ref=facts.patient_ref,
        date_of_service=facts.started_at.date(),
        started_at=facts.started_at,
        ended_at=facts.ended_at,
        simulated=facts.simulated,
        time_scale=facts.time_scale,
        treating=clinical.treating,
        supervising=clinical.supervising,
        supervision=clinical.supervision,
        device=facts.device or _device(snapshot),
        traction_type=_traction_type(profile),
        regions=facts.regions,
        decompression=clinical.decompression,
        prescribed=prescribed,
        delivered=delivered,
        diagnoses=clinical.diagnoses,
        medical_necessity=clinical.medical_necessity,
        plan_of_care=clinical.plan_of_care,
        patient_response=clinical.patient_response,
        signature=clinical.signature,
        cosignature=clinical.cosignature,
        abn=clinical.abn,
        payer=clinical.payer,
        prior_active_care_weeks=clinical.prior_active_care_weeks,
        same_day_codes=clinical.same_day_codes,
        distinct_modifier=clinical.distinct_modifier,
        visit_timed_minutes=clinical.visit_timed_minutes,
        visit_treatment_minutes=clinical.visit_treatment_minutes,
        place_of_service=facts.place_of_service,
        amendments=facts.amendments,
        seal=facts.seal,
        outcome=facts.outcome,
        outcome_reason=facts.outcome_reason,
    )


_ASSISTANT_CREDENTIALS = ("PTA", "COTA", "SLPA", "AIDE", "TECH")


def _signature(store: Store, clinician_id: int | None, at: datetime | None) -> Signature | None:
    if clinician_id is None or at is None:
        return None
    signer = store.get_clinician(clinician_id)
    return Signature(name=signer.name, credentials=signer.credentials, signed_at=at)


def _clinician(row: Any) -> Clinician:
    return Clinician(
        name=row.name,
        credentials=row.credentials,
        discipline=Discipline(row.discipline),
        npi=row.npi,
    )


def build_documentation(
    store: Store,
    session_id: str,
    unit: ForceUnit = ForceUnit.LBF,
    place_of_service: str = "11",
    time_zone: tzinfo = UTC,
    *,
    verify: bool = False,
) -> Documentation:
    """Document a stored, finished session from its row and its facts (:mod:`session.facts`);
    no sample is read. ``seal.verified`` is what the last verification found, or, with
    ``verify``, the seal recomputed now (one pass over the samples). Start and end are given in
    the clinic's ``time_zone``, which also decides the date of service (an evening session in
    New York is not billed on the next UTC day)."""
    row = store.get_session(session_id)
    if row.outcome is None:
        raise DocumentationError(
            f"session {session_id} is still running (no outcome): document it after it finishes"
        )
    stored = facts_for(store, session_id)
    patient = store.get_patient(row.patient_id)
    treating = _clinician(store.get_clinician(row.treating_clinician_id))
    supervising = (
        _clinician(store.get_clinician(row.supervising_clinician_id))
        if row.supervising_clinician_id is not None
        else None
    )
    assistant = treating.discipline.supervised_by is not None or any(
        c in treating.credentials.upper() for c in _ASSISTANT_CREDENTIALS
    )
    signature = _signature(store, row.signed_by_id, row.signed_at)
    cosignature = _signature(store, row.cosigned_by_id, row.cosigned_at)
    try:
        regions = tuple(Region(r) for r in row.regions)
    except ValueError:
        raise DocumentationError(
            f"session {session_id}: regions {row.regions!r} must be among {[r.value for r in Region]}"
        ) from None
    amendments = tuple(
        Amendment(
            at=a.at,
            by=a.author,
            field=a.field_name,
            reason=a.why,
            value=json.dumps(a.new_value, ensure_ascii=False),
        )
        for a in store.amendments(session_id)
    )
    seal = None
    if row.seal_digest:
        algorithm, _, digest = row.seal_digest.partition(":")
        seal = Seal(
            algorithm=algorithm if digest else "sha256",
            digest=digest or algorithm,
            verified=verify_seal(store, session_id, keep=True).ok
            if verify
            else stored.seal_verified,
        )
    facts = SessionFacts(
        session_id=row.id,
        patient_ref=patient.reference,
        regions=regions,
        started_at=row.started_at.astimezone(time_zone),
        ended_at=row.ended_at.astimezone(time_zone) if row.ended_at is not None else None,
        outcome=Outcome(row.outcome),
        outcome_reason=row.outcome_reason or "",
        place_of_service=place_of_service,
        amendments=amendments,
        seal=seal,
        simulated=row.simulated,
        time_scale=row.time_scale,
        device=DeviceInfo(
            manufacturer=row.device_manufacturer,
            model=row.device_model,
            serial=row.device_serial,
            firmware=row.device_firmware,
            table=row.table_label,
        ),
    )
    clinical = ClinicalRecord(
        treating=treating,
        supervising=supervising,
        supervision=Supervision.NOT_PRESENT
        if assistant and supervising is None
        else Supervision.IN_FACILITY,
        diagnoses=tuple(row.diagnosis_codes),
        medical_necessity=row.medical_necessity,
        plan_of_care=PlanOfCare(reference=row.plan_of_care_ref) if row.plan_of_care_ref else None,
        patient_response=row.patient_response,
        signature=signature,
        cosignature=cosignature,
        abn=AbnStatus(row.abn_status) if row.abn_status else AbnStatus.NOT_REQUIRED,
        payer=patient.payer_id,
        position=row.patient_position,
        angle_deg=row.pull_angle_deg,
        decompression=row.decompression,
        same_day_codes=tuple(row.same_day_codes or ()),
        visit_timed_minutes=row.visit_timed_minutes,
        visit_treatment_minutes=row.visit_treatment_minutes,
    )
    snapshot = dict(row.settings or {})
    delivered = _delivered(
        unit,
        elapsed_s=stored.elapsed_s,
        paused_s=stored.paused_s,
        at_target_s=stored.at_target_s,
        tolerance_n=stored.tolerance_n or 0.0,
        peak_hold_n=stored.peak_hold_n,
        mean_hold_n=stored.mean_hold_n,
        cycles=stored.cycle_count(),
        sample_count=stored.sample_count,
        occurrences=[Occurrence(**o) for o in stored.occurrences],
    )
    return _document(facts, snapshot, delivered, clinical, unit)

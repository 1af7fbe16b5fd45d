"""Billing readiness and billing lines for CPT 97012, from the documentation and payer rules.

``check_readiness`` says what stops a claim (blocking) or deserves a look (warning), each with a
stable code and what to fix. ``billing_lines`` says what would be billed: one 97012 unit per patient
per date of service however many regions or sessions, with the modifiers the payer's rules give.
Both read payer rules from ``configs/payers.toml`` and NCCI pairs from ``configs/ncci/``.
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from itertools import groupby
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from devices.configfiles import config_file
from devices.errors import ConfigError
from devices.records import Outcome
from session.documentation import CPT_TRACTION, Clinician, Documentation, Supervision
from session.icd10 import CodeStatus, Icd10Catalog, default_catalog
from session.models import AbnStatus, Discipline

X_MODIFIERS = ("XE", "XS", "XP", "XU")
MAX_MODIFIERS = 4
MAX_POINTERS = 4


class Severity(enum.StrEnum):
    BLOCKING = "blocking"  # the line is held until it is fixed
    WARNING = "warning"  # billed, but the biller should look
    INFO = "info"  # billed; a fact the biller should know (e.g. a reduced payment)


@dataclass(frozen=True)
class Finding:
    """One readiness problem: a stable code for machines, a message for people."""

    code: str
    severity: Severity
    message: str
    session_id: str


class Payer(BaseModel):
    """One payer's rules (see the field notes at the top of ``configs/payers.toml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    name: str
    units_per_encounter: int = Field(default=1, ge=1, le=1)
    min_traction_minutes: float = Field(default=0, ge=0)
    traction_covered: bool = True
    decompression_covered: bool = False
    decompression_code: str = Field(default=CPT_TRACTION, pattern=r"^(97012|S9090)$")
    therapy_modifiers: dict[Discipline, str]
    assistant_modifiers: dict[Discipline, str] = Field(default_factory=dict)
    assistant_cosign_required: bool = False
    assistant_payment_percent: int | None = Field(default=None, ge=0, le=100)
    chiropractor_excluded: bool = False
    chiropractor_modifier: str = ""
    uses_abn: bool = False
    x_modifiers: bool = True
    kx_thresholds: dict[int, Decimal] = Field(default_factory=dict)
    targeted_review_threshold: Decimal | None = None
    prior_active_care_weeks: int = Field(default=0, ge=0)
    fee: Decimal = Field(ge=0)

    @field_validator("targeted_review_threshold", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    def kx_threshold(self, year: int) -> Decimal | None:
        return self.kx_thresholds.get(year)


@dataclass(frozen=True)
class NcciPair:
    """A PTP edit: column 2 is not separately billable with column 1 unless the indicator allows."""

    column1: str
    column2: str
    modifier_indicator: int

    def involves(self, a: str, b: str) -> bool:
        return {self.column1, self.column2} == {a, b}


@dataclass(frozen=True)
class BillingLine:
    """One claim service line. ``session_ids`` are every session the line covers, billed first."""

    date_of_service: date
    patient_ref: str
    cpt_code: str
    modifiers: tuple[str, ...]
    units: int
    charge: Decimal
    diagnoses: tuple[str, ...]
    dx_pointers: tuple[int, ...]
    rendering_npi: str
    supervising_npi: str
    place_of_service: str
    session_ids: tuple[str, ...]


def load_payers(text: str, source: str) -> dict[str, Payer]:
    """Parse payer rules; errors name the file, the payer and the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, f"not valid TOML: {exc}") from None
    table = data.get("payers")
    if not isinstance(table, dict) or not table:
        raise ConfigError(source, "needs at least one [payers.<key>] table")
    payers: dict[str, Payer] = {}
    for key, raw in table.items():
        try:
            payers[key] = Payer.model_validate({"key": key, **raw})
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise ConfigError(
                f"{source}: payers.{key}.{field}", f"{err['msg']} (got {err.get('input')!r})"
            ) from None
    return payers


def default_payers() -> dict[str, Payer]:
    """The shipped ``configs/payers.toml``."""
    return load_payers(
        config_file("payers.toml").read_text(encoding="utf-8"), "configs/payers.toml"
    )


def load_ncci_pairs(text: str, source: str) -> tuple[NcciPair, ...]:
    """Parse PTP pairs (see ``configs/ncci/ptp-97012.toml``)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, f"not valid TOML: {exc}") from None
    pairs = []
    for i, row in enumerate(data.get("pairs", [])):
        where = f"{source}: pairs[{i}]"
        try:
            pair = NcciPair(
                str(row["column1"]), str(row["column2"]), int(row["modifier_indicator"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                where, f"needs column1, column2 and modifier_indicator ({exc})"
            ) from None
        if pair.modifier_indicator not in (0, 1, 9):
            raise ConfigError(f"{where}.modifier_indicator", "must be 0, 1 or 9")
        pairs.append(pair)
    return tuple(pairs)


def default_ncci_pairs() -> tuple[NcciPair, ...]:
    return load_ncci_pairs(
        config_file("ncci", "ptp-97012.toml").read_text(encoding="utf-8"),
        "configs/ncci/ptp-97012.toml",
    )


# ---------------------------------------------------------------------------------------------
# Modifier decisions, shared by the checks and the lines so they cannot disagree.


def _discipline(doc: Documentation) -> Discipline:
    if doc.plan_of_care and doc.plan_of_care.discipline:
        return doc.plan_of_care.discipline.practice
    return doc.treating.discipline.practice


def _assistant(doc: Documentation) -> bool:
    """Furnished by a PT or OT assistant: for an untimed code the treating clinician delivered
    the whole service, well past the 10% de minimis standard, so CQ/CO apply."""
    return doc.treating.discipline.supervised_by is not None


def _rendering(doc: Documentation) -> Clinician:
    """Who bills the line: an assistant cannot be the rendering provider, their supervising
    therapist is."""
    if _assistant(doc) and doc.supervising is not None:
        return doc.supervising
    return doc.treating


def _statutorily_excluded(doc: Documentation, payer: Payer) -> bool:
    return doc.treating.discipline == Discipline.DC and payer.chiropractor_excluded


def _expected_denial(doc: Documentation, payer: Payer) -> bool:
    not_covered = (doc.decompression and not payer.decompression_covered) or (
        not payer.traction_covered
    )
    return not_covered or doc.abn != AbnStatus.NOT_REQUIRED


def _therapy_modifier(doc: Documentation, payer: Payer) -> str | None:
    if doc.treating.discipline == Discipline.DC:
        return payer.chiropractor_modifier or None
    return payer.therapy_modifiers.get(_discipline(doc))


def _ncci_hits(doc: Documentation, pairs: Sequence[NcciPair]) -> list[tuple[str, NcciPair]]:
    return [
        (code, pair)
        for code in doc.same_day_codes
        for pair in pairs
        if pair.involves(CPT_TRACTION, code) and pair.modifier_indicator in (0, 1)
    ]


def _distinct_modifier(doc: Documentation, payer: Payer, pairs: Sequence[NcciPair]) -> str | None:
    hits = _ncci_hits(doc, pairs)
    if not hits or doc.distinct_modifier is None:
        return None
    if any(pair.modifier_indicator == 0 for _, pair in hits):
        return None
    return doc.distinct_modifier if payer.x_modifiers else "59"


def _modifiers(
    doc: Documentation, payer: Payer, pairs: Sequence[NcciPair], needs_kx: bool
) -> tuple[str, ...]:
    mods: list[str] = []
    therapy = _therapy_modifier(doc, payer)
    if therapy:
        mods.append(therapy)
    assistant = payer.assistant_modifiers.get(doc.treating.discipline) if _assistant(doc) else None
    if assistant:
        mods.append(assistant)  # CQ with GP, CO with GO
    distinct = _distinct_modifier(doc, payer, pairs)
    if distinct:
        mods.append(distinct)
    if _statutorily_excluded(doc, payer):
        mods.append("GY")  # never with GZ (nor GA/KX: the service is not a benefit at all)
    else:
        if needs_kx:
            mods.append("KX")
        if payer.uses_abn and _expected_denial(doc, payer):
            mods.append("GA" if doc.abn.abn_given else "GZ")
    return tuple(mods[:MAX_MODIFIERS])


def _cpt(doc: Documentation, payer: Payer) -> str:
    return payer.decompression_code if doc.decompression else CPT_TRACTION


def _claim_diagnoses(docs: Iterable[Documentation], catalog: Icd10Catalog) -> tuple[str, ...]:
    """Billable diagnoses of the encounter, spine codes first, without duplicates."""
    supporting: list[str] = []
    others: list[str] = []
    for doc in docs:
        for code in doc.diagnoses:
            check = catalog.check(code, doc.date_of_service)
            if check.supports_traction:
                target = supporting
            elif check.status == CodeStatus.NOT_SPINE:
                target = others
            else:
                continue
            if check.code not in supporting and check.code not in others:
                target.append(check.code)
    return tuple(supporting + others)


def _encounters(
    docs: Iterable[Documentation], blocked: Collection[str] = ()
) -> list[list[Documentation]]:
    """Billable sessions grouped by patient and date of service, in date order. Within a group
    ready sessions come first (the first ready one carries the line), then by start. Simulated
    sessions are never billed and never part of an encounter."""
    billable = [d for d in docs if not d.simulated]
    ordered = sorted(
        billable,
        key=lambda d: (d.date_of_service, d.patient_ref, d.session_id in blocked, d.started_at),
    )
    return [
        list(group)
        for _, group in groupby(ordered, key=lambda d: (d.date_of_service, d.patient_ref))
    ]


Spend = Decimal | Callable[[str, int], Decimal]
"""Therapy spending before these lines: one amount for each patient and year alike, or a function
of (patient reference, calendar year)."""


def _prior_spend(spend: Spend, patient_ref: str, year: int) -> Decimal:
    return spend if isinstance(spend, Decimal) else spend(patient_ref, year)


def _kx_flags(
    encounters: Sequence[Sequence[Documentation]], payer: Payer, year_to_date_spend: Spend
) -> list[tuple[bool, Decimal]]:
    """Per encounter: whether KX goes on its line, and the patient's spend after it. Each
    patient's spending is their own running total, per calendar year: one patient's lines never
    push another over the threshold."""
    running: dict[tuple[str, int], Decimal] = {}
    flags = []
    for group in encounters:
        first = group[0]
        year = first.date_of_service.year
        key = (first.patient_ref, year)
        spend = running.get(key, _prior_spend(year_to_date_spend, *key)) + payer.fee
        running[key] = spend
        threshold = payer.kx_threshold(year)
        therapy = first.treating.discipline.practice != Discipline.DC
        flags.append((therapy and threshold is not None and spend > threshold, spend))
    return flags


def billing_lines(
    docs: Iterable[Documentation],
    payer: Payer,
    year_to_date_spend: Spend = Decimal(0),
    ncci_pairs: Sequence[NcciPair] = (),
    catalog: Icd10Catalog | None = None,
    blocked: Collection[str] = (),
) -> list[BillingLine]:
    """One line per patient per date of service; other sessions that day are documented, not billed.

    Lines are produced for every encounter; a line may go out only when its first session is
    ready (pass the sessions with blocking findings as ``blocked``: :func:`blocked_sessions`).
    The line's diagnoses come from its ready sessions only, so a blocked session's codes never
    reach a claim. Simulated sessions have no line.
    ``year_to_date_spend`` is each patient's therapy spending this year before these lines (KX).
    """
    catalog = catalog or default_catalog()
    encounters = _encounters(docs, blocked)
    lines = []
    for group, (needs_kx, _) in zip(
        encounters, _kx_flags(encounters, payer, year_to_date_spend), strict=True
    ):
        first = group[0]
        ready = [d for d in group if d.session_id not in blocked]
        diagnoses = _claim_diagnoses(ready or group, catalog)
        lines.append(
            BillingLine(
                date_of_service=first.date_of_service,
                patient_ref=first.patient_ref,
                cpt_code=_cpt(first, payer),
                modifiers=_modifiers(first, payer, ncci_pairs, needs_kx),
                units=payer.units_per_encounter,
                charge=payer.fee,
                diagnoses=diagnoses,
                dx_pointers=tuple(range(1, min(len(diagnoses), MAX_POINTERS) + 1)),
                rendering_npi=_rendering(first).npi or "",
                supervising_npi=(first.supervising.npi or "") if first.supervising else "",
                place_of_service=first.place_of_service,
                session_ids=tuple(d.session_id for d in group),
            )
        )
    return lines


# ---------------------------------------------------------------------------------------------
# Readiness checks.


def _blank(text: str | None) -> bool:
    return text is None or not text.strip()


def _check_codes(doc: Documentation, catalog: Icd10Catalog) -> list[Finding]:
    def finding(code: str, severity: Severity, message: str) -> Finding:
        return Finding(code, severity, message, doc.session_id)

    if not doc.diagnoses:
        return [
            finding(
                "NO_DIAGNOSIS",
                Severity.BLOCKING,
                "no ICD-10-CM diagnosis: add the spine diagnosis traction treats",
            )
        ]
    out = []
    supporting_regions: set[str] = set()
    per_status = {
        CodeStatus.INVALID: ("ICD_INVALID", Severity.BLOCKING),
        CodeStatus.DELETED: ("ICD_DELETED", Severity.BLOCKING),
        CodeStatus.HEADER: ("ICD_HEADER", Severity.BLOCKING),
        CodeStatus.NOT_SPINE: ("ICD_NOT_SPINE", Severity.WARNING),
        CodeStatus.UNVERIFIED: ("ICD_UNVERIFIED", Severity.WARNING),
    }
    any_support = False
    for code in doc.diagnoses:
        check = catalog.check(code, doc.date_of_service)
        if check.supports_traction:
            any_support = True
            if check.region:
                supporting_regions.add(check.region)
        if check.status in per_status:
            name, severity = per_status[check.status]
            out.append(finding(name, severity, check.message))
    if not any_support:
        out.append(
            finding(
                "NO_SPINE_DIAGNOSIS",
                Severity.BLOCKING,
                "no valid spine diagnosis supports traction: add a billable cervical or lumbar code",
            )
        )
    elif supporting_regions and not supporting_regions & {r.value for r in doc.regions}:
        out.append(
            finding(
                "ICD_REGION_MISMATCH",
                Severity.WARNING,
                f"the diagnoses are {'/'.join(sorted(supporting_regions))} but traction was "
                f"{'/'.join(r.value for r in doc.regions)}: add a diagnosis for the treated region",
            )
        )
    return out


def _check_record(doc: Documentation) -> list[Finding]:
    out: list[Finding] = []

    def add(code: str, severity: Severity, message: str) -> None:
        out.append(Finding(code, severity, message, doc.session_id))

    if doc.simulated:
        add(
            "SIMULATED",
            Severity.BLOCKING,
            f"the session ran on a simulated table (x{doc.time_scale:g} time): a rehearsal is "
            "never billed",
        )

    if _blank(doc.medical_necessity):
        add(
            "NO_MEDICAL_NECESSITY",
            Severity.BLOCKING,
            "no statement of medical necessity: say how traction serves the plan-of-care goals",
        )
    if doc.signature is None:
        add(
            "NO_SIGNATURE",
            Severity.BLOCKING,
            f"the note is not signed: {doc.treating.name} must sign with credentials",
        )
    if doc.plan_of_care is None:
        add(
            "NO_PLAN_OF_CARE",
            Severity.BLOCKING,
            "no plan of care: attach the certified plan of care with its goals",
        )
    if _blank(doc.device.model) or _blank(doc.device.serial):
        add(
            "NO_DEVICE_ID",
            Severity.BLOCKING,
            f"the device model or serial is missing (table {doc.device.table!r}): identify the table",
        )
    if not doc.regions:
        add("NO_REGION", Severity.BLOCKING, "no treated region recorded: add cervical or lumbar")
    rendering = _rendering(doc)
    if not (rendering.npi or "").isdigit() or len(rendering.npi or "") != 10:
        add(
            "NO_NPI",
            Severity.BLOCKING,
            f"{rendering.name} has no valid 10-digit NPI ({rendering.npi!r}): add it",
        )
    if doc.supervision == Supervision.NOT_PRESENT:
        add(
            "NO_SUPERVISION",
            Severity.BLOCKING,
            "97012 is a supervised modality: a qualified professional must have been in the facility",
        )
    if doc.seal is None:
        add(
            "NOT_SEALED",
            Severity.BLOCKING,
            "the session record is not sealed: finish or recover it",
        )
    elif not doc.seal.verified:
        add(
            "SEAL_MISMATCH",
            Severity.BLOCKING,
            "the session's digest does not match its stored record: the record changed after sealing",
        )
    disrupted = doc.outcome in (Outcome.TRIPPED, Outcome.INTERRUPTED)
    if doc.outcome == Outcome.INTERRUPTED:
        explained = bool(doc.amendments)
        add(
            "SESSION_INTERRUPTED",
            Severity.WARNING if explained else Severity.BLOCKING,
            f"the session never finished ({doc.delivered.treatment_minutes} min delivered)"
            + ("" if explained else ": add an amendment stating why, and the patient's response"),
        )
    if doc.outcome == Outcome.TRIPPED:
        trips = [
            o for o in doc.delivered.interruptions if o.kind in ("trip", "stop_switch", "fault")
        ]
        why = (
            f"{trips[0].kind} at {trips[0].at_s:.0f} s: {trips[0].reason}"
            if trips
            else doc.outcome_reason
        )
        add(
            "SESSION_TRIPPED",
            Severity.WARNING,
            f"the session tripped ({why}): document the interruption and the patient's response",
        )
    if _blank(doc.patient_response):
        add(
            "NO_PATIENT_RESPONSE",
            Severity.BLOCKING if disrupted else Severity.WARNING,
            "no patient response or tolerance recorded: add it to the note",
        )
    return out


def _check_assistant(doc: Documentation, payer: Payer) -> list[Finding]:
    """An assistant's session: supervised by a therapist of their discipline, co-signed where
    the payer requires it, billed under the therapist with CQ/CO."""
    if not _assistant(doc):
        return []
    out: list[Finding] = []

    def add(code: str, severity: Severity, message: str) -> None:
        out.append(Finding(code, severity, message, doc.session_id))

    needed = doc.treating.discipline.supervised_by
    assert needed is not None
    supervisor = doc.supervising
    if supervisor is None or supervisor.discipline != needed:
        add(
            "ASSISTANT_NO_SUPERVISOR",
            Severity.BLOCKING,
            f"{doc.treating.name} is a {doc.treating.discipline.value}: record the supervising "
            f"{needed.value} (supervising_clinician_id), who is the rendering provider",
        )
    elif payer.assistant_cosign_required and doc.cosignature is None:
        add(
            "ASSISTANT_NOT_COSIGNED",
            Severity.BLOCKING,
            f"{payer.name} requires the supervising {needed.value} to co-sign an assistant's "
            f"note: {supervisor.name} co-signs with `traction sessions cosign`",
        )
    modifier = payer.assistant_modifiers.get(doc.treating.discipline)
    if modifier and payer.assistant_payment_percent is not None:
        add(
            "ASSISTANT_PAYMENT",
            Severity.INFO,
            f"furnished by a {doc.treating.discipline.value}: billed with {modifier}, "
            f"{payer.name} pays {payer.assistant_payment_percent}% of the fee schedule",
        )
    return out


def _check_payer(doc: Documentation, payer: Payer, pairs: Sequence[NcciPair]) -> list[Finding]:
    out: list[Finding] = []

    def add(code: str, severity: Severity, message: str) -> None:
        out.append(Finding(code, severity, message, doc.session_id))

    if doc.payer is not None and doc.payer != payer.key:
        add(
            "PAYER_MISMATCH",
            Severity.WARNING,
            f"the note names payer {doc.payer!r} but the claim goes to {payer.key!r}",
        )
    if not payer.traction_covered:
        add(
            "TRACTION_NOT_COVERED",
            Severity.BLOCKING,
            f"{payer.name} does not cover mechanical traction: do not bill, or bill the patient",
        )
    out.extend(_check_assistant(doc, payer))
    plan = (
        doc.plan_of_care.discipline.practice
        if doc.plan_of_care and doc.plan_of_care.discipline
        else None
    )
    if plan and doc.treating.discipline.practice not in (plan, Discipline.DC):
        add(
            "MODIFIER_DISCIPLINE",
            Severity.BLOCKING,
            f"the plan of care is {plan.value} but {doc.treating.name} is "
            f"{doc.treating.discipline.value}: the therapy modifier must match; have a "
            f"{plan.value} treat or correct the plan",
        )
    elif _therapy_modifier(doc, payer) is None:
        add(
            "MODIFIER_DISCIPLINE",
            Severity.BLOCKING,
            f"{payer.name} has no therapy modifier for discipline {_discipline(doc).value}",
        )
    excluded = _statutorily_excluded(doc, payer)
    if excluded:
        add(
            "CHIRO_MEDICARE",
            Severity.WARNING,
            f"therapy by a chiropractor is not a {payer.name} benefit: billed with GY for the "
            "denial; the patient is liable",
        )
    if excluded and doc.abn == AbnStatus.NOT_OBTAINED:
        add(
            "GY_WITH_GZ",
            Severity.WARNING,
            "a statutorily excluded service takes GY, never GZ: billed with GY only; set the ABN "
            "status to not_required (an ABN is voluntary here)",
        )
    if doc.decompression and not payer.decompression_covered:
        # billed for the expected denial: GA with a signed ABN (the patient is liable), GZ
        # without (the clinic is); DOMAIN.md section 3
        add(
            "DECOMPRESSION_NOT_COVERED",
            Severity.WARNING,
            f"{payer.name} does not cover vertebral axial decompression (billed as "
            f"{payer.decompression_code})"
            + (
                ": billed with GZ, the clinic bears the denial; an ABN signed before treatment "
                "makes it GA"
                if payer.uses_abn and not doc.abn.abn_given
                else ": expect a denial; the patient is liable"
            ),
        )
    if payer.uses_abn and not excluded and _expected_denial(doc, payer) and not doc.abn.abn_given:
        add(
            "ABN_GA_GZ",
            Severity.WARNING,
            "a denial is expected and no ABN is signed: the line carries GZ and the patient "
            "cannot be billed; have the patient sign an ABN (GA) before the next visit",
        )
    if doc.abn != AbnStatus.NOT_REQUIRED and not payer.uses_abn:
        add(
            "ABN_NOT_USED",
            Severity.WARNING,
            f"{payer.name} does not use ABNs: the ABN status {doc.abn.value!r} is ignored",
        )
    minimum = payer.min_traction_minutes
    if minimum and doc.delivered.treatment_minutes < minimum:
        add(
            "MINUTES_BELOW_PAYER_MIN",
            Severity.WARNING,
            f"{doc.delivered.treatment_minutes} min of traction delivered; {payer.name} expects "
            f"at least {minimum:g} min",
        )
    weeks = payer.prior_active_care_weeks
    if weeks and (doc.prior_active_care_weeks is None or doc.prior_active_care_weeks < weeks):
        add(
            "PRIOR_CARE_NOT_DOCUMENTED",
            Severity.WARNING,
            f"{payer.name} covers traction after {weeks} weeks of failed active care: document them",
        )
    for code, pair in _ncci_hits(doc, pairs):
        if pair.modifier_indicator == 0:
            add(
                "NCCI_BUNDLED",
                Severity.BLOCKING,
                f"97012 is never billed separately with {code} (NCCI indicator 0): bill one of them",
            )
        elif doc.distinct_modifier is None:
            add(
                "NCCI_BUNDLED",
                Severity.BLOCKING,
                f"97012 and {code} are an NCCI pair: document the distinct region or encounter "
                "(XS/XE/XP/XU) or do not bill 97012",
            )
    return out


def _check_encounters(
    encounters: Sequence[Sequence[Documentation]], payer: Payer, year_to_date_spend: Spend
) -> list[Finding]:
    out = []
    for group, (needs_kx, spend) in zip(
        encounters, _kx_flags(encounters, payer, year_to_date_spend), strict=True
    ):
        first = group[0]
        for extra in group[1:]:
            out.append(
                Finding(
                    "UNITS_PER_DOS",
                    Severity.WARNING,
                    f"97012 is one unit per patient per date of service: session {extra.session_id} "
                    f"is documented, not billed (the unit is on session {first.session_id})",
                    extra.session_id,
                )
            )
        year = first.date_of_service.year
        therapy = first.treating.discipline != Discipline.DC
        if payer.kx_thresholds and therapy and payer.kx_threshold(year) is None:
            out.append(
                Finding(
                    "KX_THRESHOLD_UNKNOWN",
                    Severity.BLOCKING,
                    f"{payer.name} has no KX threshold for {year}: add it to configs/payers.toml",
                    first.session_id,
                )
            )
        if needs_kx and not _statutorily_excluded(first, payer):
            out.append(
                Finding(
                    "KX_REQUIRED",
                    Severity.WARNING,
                    f"therapy spending reaches ${spend} in {year}, above ${payer.kx_threshold(year)}: "
                    "KX is appended; the record must support continued medical necessity",
                    first.session_id,
                )
            )
        review = payer.targeted_review_threshold
        if therapy and review is not None and spend > review:
            out.append(
                Finding(
                    "TARGETED_REVIEW",
                    Severity.WARNING,
                    f"therapy spending reaches ${spend}, above ${review}: the claim may be "
                    "selected for targeted medical review",
                    first.session_id,
                )
            )
    return out


def check_readiness(
    docs: Iterable[Documentation],
    payer: Payer,
    year_to_date_spend: Spend = Decimal(0),
    ncci_pairs: Sequence[NcciPair] = (),
    catalog: Icd10Catalog | None = None,
) -> list[Finding]:
    """Every finding for the sessions of a claim run, in a stable order (per session, then the
    encounter checks). Encounter checks (units per day, KX) see which sessions are blocked, so
    they name the session that really carries the day's line."""
    catalog = catalog or default_catalog()
    docs = list(docs)
    out: list[Finding] = []
    for doc in sorted(docs, key=lambda d: (d.date_of_service, d.patient_ref, d.started_at)):
        out += _check_codes(doc, catalog)
        out += _check_record(doc)
        out += _check_payer(doc, payer, ncci_pairs)
    encounters = _encounters(docs, blocked_sessions(out))
    out += _check_encounters(encounters, payer, year_to_date_spend)
    return out


def blocked_sessions(findings: Iterable[Finding]) -> set[str]:
    """Session ids with at least one blocking finding."""
    return {f.session_id for f in findings if f.severity == Severity.BLOCKING}


def summarize(findings: Iterable[Finding]) -> Mapping[str, int]:
    """Counts per finding code, for the export summary."""
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.code] = counts.get(f.code, 0) + 1
    return counts


def parse_money(text: str, where: str) -> Decimal:
    """A dollar amount from user input (the CLI's --ytd-spend), with a clear error."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ConfigError(where, f"{text!r} is not an amount in dollars like 1250.00") from None
    if value < 0:
        raise ConfigError(where, f"{text!r} is negative; spending is >= 0")
    return value

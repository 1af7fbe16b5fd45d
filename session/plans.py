"""A plan of care per patient: the dose ``traction run`` gives, and how it progresses.

The dose (region, profile kind, forces, hold/rest/total times) is a :class:`ForceProfile` kept as
data in newtons and seconds; the progression is the clinic's per-session rule: after a completed
session the hold force may rise by ``step_n``, up to ``goal_n``. The rule only *suggests* the next
dose; a clinician confirms it (``traction plans advance``), which writes a new version. Like a
patient's facts, every version is kept with who changed it, when and why, and nothing here moves a
table: every dose is checked against the safety limits again before a session starts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, select

from devices.contract import DeviceInfo
from devices.errors import ConfigError
from devices.limits import PatientFacts, SafetyLimits, Violation, blocking, validate
from devices.profiles import MAX_FORCE_N, ForceProfile, Mode
from devices.records import Outcome
from devices.units import ForceUnit, format_force
from session.errors import StoreError
from session.models import Patient, UTCDateTime
from session.patients import find_patient


class PlanVersion(SQLModel, table=True):
    """One version of a patient's plan of care: append-only; the newest is the plan in force."""

    __tablename__ = "plan_versions"

    patient_id: int = Field(foreign_key="patients.id", primary_key=True)
    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_type=UTCDateTime)
    by: str = Field(sa_type=sa.String(200))
    why: str = Field(sa_type=sa.Text)
    dose: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)  # ForceProfile.to_dict()
    step_n: float | None = Field(default=None, sa_type=sa.Float)  # per completed session
    goal_n: float | None = Field(default=None, sa_type=sa.Float)  # the hold force to reach

    def profile(self, reference: str) -> ForceProfile:
        """The dose as a prescription, named for the patient and this version."""
        return ForceProfile.from_dict(
            {**self.dose, "name": f"{reference} plan v{self.version}"},
            where=f"plan of care of {reference}",
        )


@dataclass(frozen=True)
class Progression:
    """The clinic's per-session rule: raise the hold force by ``step_n`` up to ``goal_n``."""

    step_n: float
    goal_n: float

    def check(self, dose: ForceProfile) -> None:
        if not self.step_n > 0:
            raise ConfigError("--step", "the per-session step must be above 0")
        if self.goal_n < dose.hold_force_n:
            raise ConfigError(
                "--up-to",
                f"the goal {format_force(self.goal_n, dose.unit)} is below the hold force "
                f"{format_force(dose.hold_force_n, dose.unit)}; a progression only rises",
            )


@dataclass(frozen=True)
class Suggestion:
    """What the plan suggests for the next session, and why; ``dose`` is None to keep it."""

    text: str
    dose: ForceProfile | None = None


def next_step(
    dose: ForceProfile, progression: Progression | None, outcome: Outcome | None, unit: ForceUnit
) -> Suggestion:
    """The next session's dose by the plan's rule, after a session that ended with ``outcome``
    (None: not yet treated under this version). Only a completed session suggests a rise."""
    if progression is None:
        return Suggestion("the plan keeps this dose (no per-session progression)")
    hold, goal = dose.hold_force_n, progression.goal_n
    if hold >= goal:
        return Suggestion(f"the plan is at its goal hold force {format_force(goal, unit)}")
    if outcome is not None and outcome is not Outcome.COMPLETED:
        return Suggestion(f"the session was {outcome.value}: keep the dose until reviewed")
    new_hold = min(hold + progression.step_n, goal)
    rest = dose.rest_force_n * new_hold / hold if dose.mode is Mode.INTERMITTENT else 0.0
    # replace() re-runs the profile's structural checks; the safety limits run before it moves
    nxt = replace(dose, hold_force_n=new_hold, rest_force_n=rest)
    rest_text = f", rest {format_force(rest, unit)}" if dose.mode is Mode.INTERMITTENT else ""
    return Suggestion(
        f"if tolerated, next session hold {format_force(new_hold, unit)}{rest_text} "
        f"(+{format_force(new_hold - hold, unit)}, goal {format_force(goal, unit)})",
        nxt,
    )


# A table as strong as any: a plan is checked against the limits no table or session count changes
# (region maximum, body weight, times, ramp, contraindications); the table's rating, the
# first-session caps and the operator's confirmation are checked again before each session.
_ANY_TABLE = DeviceInfo("any table", "-", "-", MAX_FORCE_N)


def unsafe(dose: ForceProfile, patient: Patient, limits: SafetyLimits) -> list[Violation]:
    """The blocking violations that make ``dose`` a plan no session could give ``patient``."""
    facts = PatientFacts(
        body_weight_kg=patient.body_weight_kg,
        sex=patient.sex,
        contraindications=frozenset([*patient.contraindications, *patient.precautions]),
    )
    return blocking(validate(dose, facts, limits, _ANY_TABLE, operator_confirmed=True))


class CarePlans:
    """Setting a patient's plan of care and reading it with its history."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def set(
        self,
        reference: str,
        dose: ForceProfile,
        progression: Progression | None,
        *,
        by: str,
        why: str,
    ) -> PlanVersion:
        """Write a new version of the plan. ``by`` is the signed-in person; ``why`` is required."""
        if not why.strip():
            raise StoreError("why: say why the plan changes (it is kept with it)")
        if progression is not None:
            progression.check(dose)
        with Session(self.engine, expire_on_commit=False) as db:
            patient = find_patient(db, reference, lock=True)
            assert patient.id is not None
            latest = db.exec(
                select(sa.func.max(PlanVersion.version)).where(PlanVersion.patient_id == patient.id)
            ).one()
            data = dose.to_dict()
            data.pop("cycles")  # derived; recomputed when read
            data.pop("name")  # a plan's dose is named by patient and version
            version = PlanVersion(
                patient_id=patient.id,
                version=(latest or 0) + 1,
                at=datetime.now(UTC),
                by=by,
                why=why,
                dose=data,
                step_n=None if progression is None else progression.step_n,
                goal_n=None if progression is None else progression.goal_n,
            )
            db.add(version)
            db.commit()
            return version

    def history(self, reference: str) -> list[PlanVersion]:
        """Every version of the patient's plan, oldest first (empty: no plan yet)."""
        with Session(self.engine) as db:
            patient = find_patient(db, reference)
            return list(
                db.exec(
                    select(PlanVersion)
                    .where(PlanVersion.patient_id == patient.id)
                    .order_by(col(PlanVersion.version))
                ).all()
            )

    def current(self, reference: str) -> PlanVersion:
        """The plan in force, or a StoreError saying how to set one."""
        versions = self.history(reference)
        if not versions:
            raise StoreError(
                f"patient {reference} has no plan of care; set one with `traction plans set "
                f"{reference} ...` or name a profile"
            )
        return versions[-1]


def progression_of(version: PlanVersion) -> Progression | None:
    if version.step_n is None or version.goal_n is None:
        return None
    return Progression(version.step_n, version.goal_n)

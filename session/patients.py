"""Patients as records: facts that change over time, every version kept with who, when and why.

A patient's weight, sex and contraindications decide what the safety check allows, so they are
never overwritten in place without a trace: each change writes a new :class:`PatientVersion`, and a
session's settings snapshot names the version its check used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from session.errors import StoreError
from session.models import Patient, PatientVersion, Sex
from session.patient_facts import check_weight, facts_of


def find_patient(db: Session, reference: str, *, lock: bool = False) -> Patient:
    """The patient the clinic calls ``reference`` (row-locked for an update when ``lock``), or a
    StoreError naming the reference: every lookup by reference refuses in the same words."""
    query = select(Patient).where(Patient.reference == reference)
    patient = db.exec(query.with_for_update() if lock else query).first()
    if patient is None:
        raise StoreError(f"no patient with reference {reference!r}")
    return patient


@dataclass(frozen=True)
class PatientChange:
    """What an edit changes; ``None`` and empty tuples leave a fact as it is."""

    body_weight_kg: float | None = None
    sex: Sex | None = None
    payer_id: str | None = None
    add_contraindications: Sequence[str] = ()
    remove_contraindications: Sequence[str] = ()
    add_precautions: Sequence[str] = ()
    remove_precautions: Sequence[str] = ()

    def is_empty(self) -> bool:
        return self == PatientChange()


def _changed(
    current: Sequence[str], add: Sequence[str], remove: Sequence[str], name: str
) -> list[str]:
    missing = [key for key in remove if key not in current]
    if missing:
        raise StoreError(f"{name}: {', '.join(missing)} not on record, so cannot be removed")
    return sorted((set(current) | set(add)) - set(remove))


class PatientRecords:
    """Editing a patient's facts and reading their history."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def edit(self, reference: str, change: PatientChange, *, by: str, why: str) -> Patient:
        """Apply ``change`` as a new version. ``by`` is the authenticated person (never typed
        free text); ``why`` is required, as for any change to a record a check relies on."""
        if change.is_empty():
            raise StoreError("nothing to change: give at least one new fact")
        if not why.strip():
            raise StoreError("why: say why the patient's facts change (it is kept with them)")
        with Session(self.engine, expire_on_commit=False) as db:
            patient = find_patient(db, reference, lock=True)
            if change.body_weight_kg is not None:
                patient.body_weight_kg = check_weight(change.body_weight_kg)
            if change.sex is not None:
                patient.sex = Sex(change.sex).value
            if change.payer_id is not None:
                patient.payer_id = change.payer_id
            patient.contraindications = _changed(
                patient.contraindications,
                change.add_contraindications,
                change.remove_contraindications,
                "contraindications",
            )
            patient.precautions = _changed(
                patient.precautions,
                change.add_precautions,
                change.remove_precautions,
                "precautions",
            )
            patient.version += 1
            assert patient.id is not None
            db.add(patient)
            db.add(
                PatientVersion(
                    patient_id=patient.id,
                    version=patient.version,
                    at=datetime.now(UTC),
                    by=by,
                    why=why,
                    facts=facts_of(patient),
                )
            )
            db.commit()
            return patient

    def history(self, reference: str) -> list[PatientVersion]:
        """Every version of the patient's facts, oldest first."""
        with Session(self.engine) as db:
            patient = find_patient(db, reference)
            return list(
                db.exec(
                    select(PatientVersion)
                    .where(PatientVersion.patient_id == patient.id)
                    .order_by(col(PatientVersion.version))
                ).all()
            )

    def last_changed(self) -> dict[int, datetime]:
        """When each patient's facts last changed (their newest version), by patient id."""
        with Session(self.engine) as db:
            rows = db.exec(
                select(PatientVersion.patient_id, func.max(PatientVersion.at)).group_by(
                    col(PatientVersion.patient_id)
                )
            ).all()
        return {patient_id: _aware(at) for patient_id, at in rows}


def _aware(at: datetime) -> datetime:
    """An aggregate bypasses the column type: SQLite returns it naive (it is UTC) or as text."""
    moment = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

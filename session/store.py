"""Reading and writing session records.

Every write is its own short transaction, so a crash loses at most the batch in hand. Samples and
events are only ever inserted; documentation fields change only through :meth:`Store.amend`, which
logs who changed what, when and why. Reading a session's samples streams them in pages by sequence
number (keyset pagination), so a long session is never loaded into memory at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from devices.records import Event, Finished, Outcome, Sample, Started
from session.models import (
    AbnStatus,
    Amendment,
    Clinician,
    Discipline,
    Patient,
    Sex,
    StoredEvent,
    StoredSample,
    TreatmentSession,
)

AMENDABLE_FIELDS: tuple[str, ...] = (
    "diagnosis_codes",
    "medical_necessity",
    "plan_of_care_ref",
    "patient_position",
    "pull_angle_deg",
    "patient_response",
    "supervising_clinician_id",
    "signed_by_id",
    "abn_status",
    "regions",
)
"""Documentation fields that may be completed or corrected after the session, by amendment only."""

_Rows = TypeVar("_Rows", StoredSample, StoredEvent)

INTERRUPTED_REASON = "recording ended before the session finished (process ended or power lost)"


class StoreError(Exception):
    """A request the store refuses; the message names the record, the field and the rule."""


@dataclass(frozen=True)
class SessionContext:
    """What the workstation knows about a session besides the table's own ``Started`` record."""

    patient_id: int
    treating_clinician_id: int
    workstation: str
    regions: Sequence[str] = ()
    supervising_clinician_id: int | None = None
    diagnosis_codes: Sequence[str] = ()
    medical_necessity: str | None = None
    plan_of_care_ref: str | None = None
    patient_position: str | None = None
    pull_angle_deg: float | None = None
    abn_status: AbnStatus | None = None


@dataclass(frozen=True)
class NumberedEvent:
    """An event with its position in the session's event sequence (events carry no seq of their own)."""

    seq: int
    event: Event


@dataclass(frozen=True)
class SessionQuery:
    """Filters for :meth:`Store.find_sessions`; every field left empty matches everything."""

    patient_id: int | None = None
    clinician_id: int | None = None  # treating or supervising
    since: datetime | None = None  # started_at >= since
    until: datetime | None = None  # started_at < until
    outcome: Outcome | None = None
    workstation: str | None = None
    unfinished: bool | None = None


class Store:
    """The session database behind one engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # --- people ------------------------------------------------------------------------------

    def add_patient(
        self,
        reference: str,
        body_weight_kg: float,
        *,
        sex: Sex = Sex.UNKNOWN,
        contraindications: Sequence[str] = (),
        payer_id: str | None = None,
    ) -> Patient:
        if not reference.strip():
            raise StoreError("patient reference must not be empty")
        if not 0 < body_weight_kg < 700:
            raise StoreError(
                f"patient {reference!r}: body_weight_kg {body_weight_kg} must be between 0 and 700"
            )
        patient = Patient(
            reference=reference,
            body_weight_kg=body_weight_kg,
            sex=Sex(sex).value,
            contraindications=list(contraindications),
            payer_id=payer_id,
        )
        with self._session() as db:
            if db.exec(select(Patient).where(Patient.reference == reference)).first():
                raise StoreError(f"patient reference {reference!r} already exists")
            db.add(patient)
            db.commit()
            return patient

    def get_patient(self, patient_id: int) -> Patient:
        with self._session() as db:
            patient = db.get(Patient, patient_id)
        if patient is None:
            raise StoreError(f"no patient with id {patient_id}")
        return patient

    def patient_by_reference(self, reference: str) -> Patient:
        with self._session() as db:
            patient = db.exec(select(Patient).where(Patient.reference == reference)).first()
        if patient is None:
            raise StoreError(f"no patient with reference {reference!r}")
        return patient

    def add_clinician(
        self, name: str, credentials: str, discipline: Discipline, npi: str | None = None
    ) -> Clinician:
        try:
            discipline_value = Discipline(discipline).value
        except ValueError:
            allowed = ", ".join(d.value for d in Discipline)
            raise StoreError(
                f"clinician {name!r}: discipline {discipline!r} must be one of {allowed}"
            ) from None
        clinician = Clinician(
            name=name, credentials=credentials, discipline=discipline_value, npi=npi
        )
        with self._session() as db:
            db.add(clinician)
            db.commit()
            return clinician

    def get_clinician(self, clinician_id: int) -> Clinician:
        with self._session() as db:
            clinician = db.get(Clinician, clinician_id)
        if clinician is None:
            raise StoreError(f"no clinician with id {clinician_id}")
        return clinician

    def list_patients(self) -> list[Patient]:
        with self._session() as db:
            return list(db.exec(select(Patient).order_by(col(Patient.reference))).all())

    def list_clinicians(self) -> list[Clinician]:
        with self._session() as db:
            return list(db.exec(select(Clinician).order_by(col(Clinician.id))).all())

    # --- a session's life ----------------------------------------------------------------------

    def create_session(self, started: Started, context: SessionContext) -> TreatmentSession:
        """Open the session row from the ``Started`` record. Calling it again for the same run
        returns the existing row (the recorder retries after a dropped connection)."""
        device = started.device
        row = TreatmentSession(
            id=started.run_id,
            patient_id=context.patient_id,
            treating_clinician_id=context.treating_clinician_id,
            supervising_clinician_id=context.supervising_clinician_id,
            workstation=context.workstation,
            table_label=started.table,
            device_manufacturer=str(device.get("manufacturer", "")),
            device_model=str(device.get("model", "")),
            device_serial=str(device.get("serial_number", "")),
            device_firmware=str(device.get("firmware", "")),
            device_rated_max_force_n=float(device.get("rated_max_force_n", 0.0)),
            regions=list(context.regions),
            settings=_json_safe(started.to_dict()),
            start_t=started.t,
            diagnosis_codes=list(context.diagnosis_codes),
            medical_necessity=context.medical_necessity,
            plan_of_care_ref=context.plan_of_care_ref,
            patient_position=context.patient_position,
            pull_angle_deg=context.pull_angle_deg,
            abn_status=AbnStatus(context.abn_status).value if context.abn_status else None,
            started_at=_aware(started.wall),
        )
        with self._session() as db:
            existing = db.get(TreatmentSession, started.run_id)
            if existing is not None:
                return existing
            if db.get(Patient, context.patient_id) is None:
                raise StoreError(
                    f"session {started.run_id}: no patient with id {context.patient_id}"
                )
            db.add(row)
            db.commit()
            return row

    def add_batch(
        self,
        session_id: str,
        samples: Sequence[Sample] = (),
        events: Sequence[NumberedEvent] = (),
    ) -> None:
        """Insert samples and events in one transaction.

        A row whose (session, seq) is already stored is skipped, so retrying a batch whose commit
        was acknowledged late cannot duplicate or fail; the loop numbers samples uniquely per run.
        """
        if not samples and not events:
            return
        with self.engine.begin() as conn:
            if samples:
                conn.execute(
                    self._insert_ignoring_duplicates(StoredSample),
                    [
                        {
                            "session_id": session_id,
                            "seq": s.seq,
                            "t": s.t,
                            "target_n": s.target_n,
                            "measured_n": s.measured_n,
                            "phase": str(s.phase),
                            "cycle": s.cycle,
                        }
                        for s in samples
                    ],
                )
                last_t = max(s.t for s in samples)
                table = TreatmentSession.__table__  # type: ignore[attr-defined]
                conn.execute(
                    sa.update(table)
                    .where(table.c.id == session_id)
                    .where(sa.or_(table.c.last_sample_t.is_(None), table.c.last_sample_t < last_t))
                    .values(last_sample_t=last_t)
                )
            if events:
                conn.execute(
                    self._insert_ignoring_duplicates(StoredEvent),
                    [
                        {
                            "session_id": session_id,
                            "seq": n.seq,
                            "t": n.event.t,
                            "kind": str(n.event.kind),
                            "reason": n.event.reason,
                            "data": _json_safe(n.event.data),
                        }
                        for n in events
                    ],
                )

    def _insert_ignoring_duplicates(self, model: type[Any]) -> Any:
        table = model.__table__
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        if self.engine.dialect.name == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing()
        return sa.insert(table)

    def finish(self, finished: Finished) -> TreatmentSession:
        """Record how the session ended; counts come from what is stored, not what was claimed."""
        return self._close(
            finished.run_id, Outcome(finished.outcome), finished.reason, _aware(finished.wall)
        )

    def _close(
        self, session_id: str, outcome: Outcome, reason: str, ended_at: datetime | None
    ) -> TreatmentSession:
        with self._session() as db:
            row = db.get(TreatmentSession, session_id)
            if row is None:
                raise StoreError(f"no session with id {session_id!r}")
            if row.sealed_at is not None:
                raise StoreError(f"session {session_id} is sealed; its outcome cannot change")
            count, last_t = db.exec(
                select(sa.func.count(), sa.func.max(StoredSample.t)).where(
                    StoredSample.session_id == session_id
                )
            ).one()
            events = db.exec(
                select(sa.func.count()).where(StoredEvent.session_id == session_id)
            ).one()
            row.sample_count = int(count)
            row.event_count = int(events)
            row.last_sample_t = last_t
            if ended_at is None:
                elapsed = (last_t if last_t is not None else row.start_t) - row.start_t
                ended_at = row.started_at + timedelta(seconds=max(0.0, elapsed))
            row.ended_at = ended_at
            row.outcome = outcome.value
            row.outcome_reason = reason
            db.add(row)
            db.commit()
            return row

    def recover_interrupted(self, workstation: str) -> list[TreatmentSession]:
        """Mark this workstation's sessions that never finished as interrupted, keeping all they
        recorded; their end is the wall-clock moment of their last sample.

        Only this workstation's sessions: on a shared server another workstation's open session
        may be running right now.
        """
        with self._session() as db:
            ids = db.exec(
                select(TreatmentSession.id)
                .where(TreatmentSession.workstation == workstation)
                .where(col(TreatmentSession.outcome).is_(None))
            ).all()
        return [self._close(i, Outcome.INTERRUPTED, INTERRUPTED_REASON, None) for i in ids]

    def record_seal(self, session_id: str, digest: str, parts: dict[str, Any]) -> TreatmentSession:
        """Store a session's seal once; a seal is never replaced."""
        with self._session() as db:
            row = db.get(TreatmentSession, session_id)
            if row is None:
                raise StoreError(f"no session with id {session_id!r}")
            if row.outcome is None:
                raise StoreError(
                    f"session {session_id} has not finished; only a finished session is sealed"
                )
            if row.sealed_at is not None:
                raise StoreError(f"session {session_id} is already sealed")
            row.seal_digest = digest
            row.seal_parts = parts
            row.sealed_at = datetime.now(UTC)
            db.add(row)
            db.commit()
            return row

    # --- amendments ------------------------------------------------------------------------------

    def amend(
        self, session_id: str, field_name: str, new_value: Any, who: str, why: str
    ) -> Amendment:
        """Change one documentation field and log it. Amending ``signed_by_id`` signs the note:
        ``signed_at`` becomes the moment of the amendment."""
        if field_name not in AMENDABLE_FIELDS:
            raise StoreError(
                f"session {session_id}: field {field_name!r} cannot be amended; "
                f"amendable fields: {', '.join(AMENDABLE_FIELDS)}"
            )
        if not who.strip() or not why.strip():
            raise StoreError(f"session {session_id}: an amendment needs who made it and why")
        new_value = _check_amendment(field_name, new_value)
        now = datetime.now(UTC)
        with self._session() as db:
            row = db.get(TreatmentSession, session_id)
            if row is None:
                raise StoreError(f"no session with id {session_id!r}")
            is_clinician = field_name in ("supervising_clinician_id", "signed_by_id")
            if is_clinician and new_value is not None and db.get(Clinician, new_value) is None:
                raise StoreError(
                    f"session {session_id}: {field_name} {new_value} is not a known clinician"
                )
            old_value = getattr(row, field_name)
            setattr(row, field_name, new_value)
            if field_name == "signed_by_id":
                row.signed_at = now if new_value is not None else None
            amendment = Amendment(
                session_id=session_id,
                author=who,
                at=now,
                field_name=field_name,
                old_value=old_value,
                new_value=new_value,
                why=why,
            )
            db.add(row)
            db.add(amendment)
            db.commit()
            return amendment

    def amendments(self, session_id: str) -> list[Amendment]:
        with self._session() as db:
            return list(
                db.exec(
                    select(Amendment)
                    .where(Amendment.session_id == session_id)
                    .order_by(col(Amendment.id))
                ).all()
            )

    # --- reading back ---------------------------------------------------------------------------

    def get_session(self, session_id: str) -> TreatmentSession:
        with self._session() as db:
            row = db.get(TreatmentSession, session_id)
        if row is None:
            raise StoreError(f"no session with id {session_id!r}")
        return row

    def resolve_session_id(self, text: str) -> str:
        """The full id of the one session whose id is ``text`` or starts with it (at least six
        characters, as people copy short ids from listings)."""
        if len(text) < 6:
            raise StoreError(f"session id {text!r} is too short; give at least 6 characters")
        with self._session() as db:
            ids = db.exec(
                select(TreatmentSession.id)
                .where(col(TreatmentSession.id).startswith(text, autoescape=True))
                .limit(2)
            ).all()
        if not ids:
            raise StoreError(f"no session with id {text!r}; see `traction sessions list`")
        if len(ids) > 1:
            raise StoreError(f"session id {text!r} is ambiguous; give more characters")
        return ids[0]

    def find_sessions(self, query: SessionQuery | None = None) -> list[TreatmentSession]:
        """Sessions matching every given filter, oldest first."""
        q = query or SessionQuery()
        stmt = select(TreatmentSession)
        if q.patient_id is not None:
            stmt = stmt.where(TreatmentSession.patient_id == q.patient_id)
        if q.clinician_id is not None:
            stmt = stmt.where(
                sa.or_(
                    col(TreatmentSession.treating_clinician_id) == q.clinician_id,
                    col(TreatmentSession.supervising_clinician_id) == q.clinician_id,
                )
            )
        if q.since is not None:
            stmt = stmt.where(col(TreatmentSession.started_at) >= _aware(q.since))
        if q.until is not None:
            stmt = stmt.where(col(TreatmentSession.started_at) < _aware(q.until))
        if q.outcome is not None:
            stmt = stmt.where(TreatmentSession.outcome == Outcome(q.outcome).value)
        if q.workstation is not None:
            stmt = stmt.where(TreatmentSession.workstation == q.workstation)
        if q.unfinished is not None:
            outcome = col(TreatmentSession.outcome)
            stmt = stmt.where(outcome.is_(None) if q.unfinished else outcome.is_not(None))
        stmt = stmt.order_by(col(TreatmentSession.started_at), col(TreatmentSession.id))
        with self._session() as db:
            return list(db.exec(stmt).all())

    def iter_samples(self, session_id: str, batch: int = 2000) -> Iterator[StoredSample]:
        """A session's samples in sequence order, ``batch`` rows per query (keyset pagination:
        each page is a short read, memory stays bounded whatever the session's length)."""
        return self._pages(StoredSample, session_id, batch)

    def iter_events(self, session_id: str, batch: int = 2000) -> Iterator[StoredEvent]:
        """A session's events in arrival order, paged like :meth:`iter_samples`."""
        return self._pages(StoredEvent, session_id, batch)

    def _pages(self, table: type[_Rows], session_id: str, batch: int) -> Iterator[_Rows]:
        after = -1
        while True:
            with self._session() as db:
                page = db.exec(
                    select(table)
                    .where(table.session_id == session_id)
                    .where(table.seq > after)
                    .order_by(col(table.seq))
                    .limit(batch)
                ).all()
            yield from page
            if len(page) < batch:
                return
            after = page[-1].seq

    def sample_count(self, session_id: str) -> int:
        with self._session() as db:
            return int(
                db.exec(select(sa.func.count()).where(StoredSample.session_id == session_id)).one()
            )


def _check_amendment(field_name: str, value: Any) -> Any:
    """Normalise an amendment's new value to the column's type, or refuse it naming the rule."""
    if field_name in ("diagnosis_codes", "regions"):
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise StoreError(f"{field_name} must be a list of strings, got {value!r}")
        return list(value)
    if field_name == "abn_status":
        if value is None:
            return None
        try:
            return AbnStatus(value).value
        except ValueError:
            allowed = ", ".join(a.value for a in AbnStatus)
            raise StoreError(f"abn_status {value!r} must be one of {allowed}") from None
    if field_name == "pull_angle_deg":
        if value is not None and not (isinstance(value, int | float) and -90 <= value <= 90):
            raise StoreError(f"pull_angle_deg {value!r} must be a number of degrees in -90..90")
        return None if value is None else float(value)
    if field_name in ("supervising_clinician_id", "signed_by_id"):
        if value is not None and not isinstance(value, int):
            raise StoreError(f"{field_name} must be a clinician id (integer), got {value!r}")
        return value
    if value is not None and not isinstance(value, str):
        raise StoreError(f"{field_name} must be text, got {value!r}")
    return value


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise StoreError(f"timestamp {moment.isoformat()} has no timezone; record UTC moments")
    return moment.astimezone(UTC)


def _json_safe(value: dict[str, Any]) -> dict[str, Any]:
    """The value as it will read back from a JSON column (enums to strings, tuples to lists)."""
    result: dict[str, Any] = json.loads(json.dumps(value, default=str))
    return result

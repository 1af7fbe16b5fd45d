"""Reading and writing session records.

Every write is its own short transaction, so a crash loses at most the batch in hand. Samples and
events are only ever inserted; documentation fields change only through :meth:`Store.amend`, which
logs who changed what, when and why. A session's samples and events are read as plain rows
(SQLAlchemy Core, ``yield_per``: a server-side cursor on PostgreSQL), streamed in one query, so a
long session is never loaded into memory at once and no ORM object is built per sample.
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from devices.records import Finished, Outcome, Sample, Started
from session import listing
from session.errors import StoreError
from session.listing import (
    SessionCursor,
    SessionQuery,
    SessionSummary,
    aware,
    filtered,
)
from session.models import (
    AbnStatus,
    Amendment,
    Clinician,
    Discipline,
    Patient,
    PatientVersion,
    Sex,
    SignedVersion,
    StoredEvent,
    StoredSample,
    TreatmentSession,
)
from session.numbered import NumberedEvent
from session.patient_facts import check_weight, facts_of
from session.patients import find_patient
from session.writer import BatchWriter

AMENDABLE_FIELDS: tuple[str, ...] = (
    "diagnosis_codes",
    "medical_necessity",
    "plan_of_care_ref",
    "patient_position",
    "pull_angle_deg",
    "patient_response",
    "supervising_clinician_id",
    "signed_by_id",
    "cosigned_by_id",
    "abn_status",
    "regions",
    "decompression",
    "visit_timed_minutes",
    "visit_treatment_minutes",
    "same_day_codes",
)
"""Documentation fields that may be completed or corrected after the session, by amendment only."""

MAX_VISIT_MINUTES = 720
"""Visit minutes above a twelve-hour day are a typing error, not a visit."""

MAX_LIST_ITEMS = 12
"""An 837P claim carries at most twelve diagnoses; no documentation list needs more."""
CPT_CODE = re.compile(r"[0-9A-Z]{5}")

_SESSIONS: sa.Table = TreatmentSession.__table__  # type: ignore[attr-defined]
_SAMPLES: sa.Table = StoredSample.__table__  # type: ignore[attr-defined]
_EVENTS: sa.Table = StoredEvent.__table__  # type: ignore[attr-defined]

INTERRUPTED_REASON = "recording ended before the session finished (process ended or power lost)"


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
    decompression: bool = False
    simulated: bool = False  # the table is a simulator: the session is never billed
    workstation_id: str | None = None  # the identity (session.identity) whose process runs it


class SampleRow(NamedTuple):
    """One stored sample, as read back (see :class:`session.models.StoredSample`)."""

    seq: int
    t: float
    target_n: float
    measured_n: float
    phase: str
    cycle: int


class EventRow(NamedTuple):
    """One stored event, as read back (see :class:`session.models.StoredEvent`)."""

    seq: int
    t: float
    kind: str
    reason: str
    data: dict[str, Any]


class Store:
    """The session database behind one engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = BatchWriter(engine)
        weakref.finalize(self, self._writer.close)

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
        precautions: Sequence[str] = (),
        payer_id: str | None = None,
        by: str = "system",
    ) -> Patient:
        """Register a patient; their facts become version 1, registered ``by`` that person."""
        if not reference.strip():
            raise StoreError("patient reference must not be empty")
        check_weight(body_weight_kg, f"patient {reference!r}: body_weight")
        patient = Patient(
            reference=reference,
            body_weight_kg=body_weight_kg,
            sex=Sex(sex).value,
            contraindications=sorted(set(contraindications)),
            precautions=sorted(set(precautions)),
            payer_id=payer_id,
        )
        with self._session() as db:
            if db.exec(select(Patient).where(Patient.reference == reference)).first():
                raise StoreError(f"patient reference {reference!r} already exists")
            db.add(patient)
            db.flush()
            assert patient.id is not None
            db.add(
                PatientVersion(
                    patient_id=patient.id,
                    version=1,
                    at=datetime.now(UTC),
                    by=by,
                    why="registered",
                    facts=facts_of(patient),
                )
            )
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
            return find_patient(db, reference)

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
            workstation_id=context.workstation_id,
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
            # decompression: said by the prescription, the profile, or the table itself
            decompression=context.decompression
            or bool(started.profile.get("decompression"))
            or bool(device.get("decompression")),
            # a scaled clock only ever drives a simulator, so it marks the session simulated too
            simulated=context.simulated or started.time_scale != 1.0,
            time_scale=started.time_scale,
            started_at=aware(started.wall),
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
        """Insert samples and events in one transaction (see :mod:`session.writer`).

        A row whose (session, seq) is already stored is skipped, so retrying a batch whose commit
        was acknowledged late cannot duplicate or fail; the loop numbers samples uniquely per run.
        The session row is not touched: its counts are settled by :meth:`finish`.
        """
        if samples or events:
            self._writer.write(session_id, samples, events)

    def close(self) -> None:
        """Give back the connection the writer holds (also done when the store is collected)."""
        self._writer.close()

    def finish(self, finished: Finished) -> TreatmentSession:
        """Record how the session ended; counts come from what is stored, not what was claimed."""
        return self._close(
            finished.run_id, Outcome(finished.outcome), finished.reason, aware(finished.wall)
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
                real_elapsed = max(0.0, elapsed) / (row.time_scale or 1.0)  # wall time is real
                ended_at = row.started_at + timedelta(seconds=real_elapsed)
            row.ended_at = ended_at
            row.outcome = outcome.value
            row.outcome_reason = reason
            db.add(row)
            db.commit()
            return row

    def unfinished(self, workstation_id: str) -> list[str]:
        """Ids of the sessions of this workstation identity that have no outcome yet."""
        with self._session() as db:
            return list(
                db.exec(
                    select(TreatmentSession.id)
                    .where(TreatmentSession.workstation_id == workstation_id)
                    .where(col(TreatmentSession.outcome).is_(None))
                    .order_by(col(TreatmentSession.started_at))
                ).all()
            )

    def unfinished_unowned(self, label: str) -> list[str]:
        """Ids of unfinished sessions written before sessions had owners (no identity), under
        this workstation label."""
        with self._session() as db:
            return list(
                db.exec(
                    select(TreatmentSession.id)
                    .where(TreatmentSession.workstation == label)
                    .where(col(TreatmentSession.workstation_id).is_(None))
                    .where(col(TreatmentSession.outcome).is_(None))
                    .order_by(col(TreatmentSession.started_at))
                ).all()
            )

    def interrupt(
        self, session_id: str, reason: str = INTERRUPTED_REASON
    ) -> TreatmentSession | None:
        """Mark a session whose owner is gone as interrupted, keeping all it recorded; its end is
        the wall-clock moment of its last sample. None if it has an outcome already.

        The caller proves the owner gone (:mod:`session.recovery`); this never decides that.
        """
        if self.get_session(session_id).outcome is not None:
            return None
        return self._close(session_id, Outcome.INTERRUPTED, reason, None)

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
        """Change one documentation field and log it; ``who`` is an authenticated identity (an
        API user or a configured clinician), never typed-in text.

        Amending ``signed_by_id`` signs the note: ``signed_at`` is the moment of the amendment
        and the signed fields are kept as a new :class:`SignedVersion`. Amending any other field
        of a signed note reopens it (the signature is cleared, and logged) until it is signed
        again. A note is signed only after its session has ended."""
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
            is_clinician = field_name in _CLINICIAN_FIELDS
            if is_clinician and new_value is not None and db.get(Clinician, new_value) is None:
                raise StoreError(
                    f"session {session_id}: {field_name} {new_value} is not a known clinician"
                )
            signing = field_name == "signed_by_id" and new_value is not None
            if signing and (row.outcome is None or row.ended_at is None):
                raise StoreError(
                    f"session {session_id} has not ended: sign the note after the session finishes"
                )
            cosigning = field_name == "cosigned_by_id" and new_value is not None
            if cosigning:
                _check_cosigner(db, row, new_value)
            if field_name != "cosigned_by_id" and row.cosigned_by_id is not None:
                db.add(
                    _withdraw(row, "cosigned", who, now,
                              f"co-signature withdrawn: {field_name} amended; co-sign again")
                )  # fmt: skip
            if (
                field_name not in ("signed_by_id", "cosigned_by_id")
                and row.signed_by_id is not None
            ):
                db.add(
                    _withdraw(row, "signed", who, now,
                              f"reopened: {field_name} amended after signing; sign again")
                )  # fmt: skip
            old_value = getattr(row, field_name)
            setattr(row, field_name, new_value)
            if field_name == "signed_by_id":
                # never before the session's end, whatever the clocks say
                row.signed_at = max(now, row.ended_at) if signing and row.ended_at else None
            if field_name == "cosigned_by_id":
                row.cosigned_at = max(now, row.signed_at) if cosigning and row.signed_at else None
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
            if signing and row.signed_at is not None:
                versions = db.exec(
                    select(sa.func.count()).where(SignedVersion.session_id == session_id)
                ).one()
                db.add(
                    SignedVersion(
                        session_id=session_id,
                        version=int(versions) + 1,
                        signed_by_id=new_value,
                        signed_at=row.signed_at,
                        author=who,
                        fields=_json_safe({name: getattr(row, name) for name in AMENDABLE_FIELDS}),
                    )
                )
            db.commit()
            return amendment

    def signed_versions(self, session_id: str) -> list[SignedVersion]:
        """Every signed version of a session's note, oldest first."""
        with self._session() as db:
            return list(
                db.exec(
                    select(SignedVersion)
                    .where(SignedVersion.session_id == session_id)
                    .order_by(col(SignedVersion.version))
                ).all()
            )

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
        """Full session rows matching every given filter, oldest first (for a bounded set; a
        listing uses :meth:`list_sessions`)."""
        stmt = filtered(select(TreatmentSession), query or SessionQuery(), _SESSIONS)
        stmt = stmt.order_by(col(TreatmentSession.started_at), col(TreatmentSession.id))
        with self._session() as db:
            return list(db.exec(stmt).all())

    def list_sessions(
        self,
        query: SessionQuery | None = None,
        *,
        limit: int,
        after: SessionCursor | None = None,
        newest_first: bool = False,
    ) -> list[SessionSummary]:
        """One page of sessions: see :func:`session.listing.list_sessions`."""
        return listing.list_sessions(
            self.engine, query, limit=limit, after=after, newest_first=newest_first
        )

    def session_ids(self, query: SessionQuery | None = None) -> list[str]:
        """Ids of the sessions matching every filter, oldest first."""
        return listing.session_ids(self.engine, query)

    def count_sessions(self, query: SessionQuery | None = None) -> int:
        """How many sessions match every filter (one ``count(*)``)."""
        return listing.count_sessions(self.engine, query)

    def iter_samples(self, session_id: str, batch: int = 5000) -> Iterator[SampleRow]:
        """A session's samples in sequence order as plain rows, streamed: memory stays bounded
        whatever the session's length."""
        for page in self.iter_sample_pages(session_id, batch):
            yield from map(SampleRow._make, page)

    def iter_sample_pages(
        self, session_id: str, batch: int = 5000
    ) -> Iterator[Sequence[tuple[int, float, float, float, str, int]]]:
        """The samples of :meth:`iter_samples` as tuples in :class:`SampleRow` order, in pages of
        up to ``batch`` rows from one query, for readers that work a page at a time (the seal).

        The driver's plain tuples are read directly (a Row per sample would cost more than
        reading it): SQLite's cursor streams by itself, PostgreSQL's is a server-side cursor."""
        postgres = self.engine.dialect.name == "postgresql"
        sql = (
            "SELECT seq, t, target_n, measured_n, phase, cycle FROM samples "
            f"WHERE session_id = {'%s' if postgres else '?'} ORDER BY seq"
        )
        with self.engine.connect() as conn:
            driver: Any = conn.connection.driver_connection
            cursor = driver.cursor(name="session_samples") if postgres else driver.cursor()
            try:
                cursor.execute(sql, (session_id,))
                while page := cursor.fetchmany(batch):
                    yield page
            finally:
                cursor.close()

    def iter_events(self, session_id: str, batch: int = 2000) -> Iterator[EventRow]:
        """A session's events in arrival order as plain rows."""
        table = _EVENTS
        stmt = (
            sa.select(table.c.seq, table.c.t, table.c.kind, table.c.reason, table.c.data)
            .where(table.c.session_id == session_id)
            .order_by(table.c.seq)
        )
        for page in self._stream(stmt, batch):
            yield from map(EventRow._make, page)

    def _stream(self, stmt: sa.Select[Any], batch: int) -> Iterator[Sequence[Any]]:
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(stmt)
            yield from result.partitions()

    def sample_count(self, session_id: str) -> int:
        with self._session() as db:
            return int(
                db.exec(select(sa.func.count()).where(StoredSample.session_id == session_id)).one()
            )


def _withdraw(row: TreatmentSession, kind: str, who: str, now: datetime, why: str) -> Amendment:
    """Clear a signature (``kind`` "signed" or "cosigned") and return the amendment that logs it."""
    field_name = f"{kind}_by_id"
    amendment = Amendment(
        session_id=row.id,
        author=who,
        at=now,
        field_name=field_name,
        old_value=getattr(row, field_name),
        new_value=None,
        why=why,
    )
    setattr(row, field_name, None)
    setattr(row, f"{kind}_at", None)
    return amendment


_CLINICIAN_FIELDS = ("supervising_clinician_id", "signed_by_id", "cosigned_by_id")


def _check_cosigner(db: Session, row: TreatmentSession, cosigner_id: int) -> None:
    """A co-signature is the supervising therapist's, on an assistant's signed note, and is a
    second, distinct signature."""
    where = f"session {row.id}"
    treating = db.get(Clinician, row.treating_clinician_id)
    cosigner = db.get(Clinician, cosigner_id)
    assert treating is not None and cosigner is not None
    needed = Discipline(treating.discipline).supervised_by
    if needed is None:
        raise StoreError(
            f"{where}: {treating.name} ({treating.discipline}) is not an assistant; their note "
            "needs no co-signature"
        )
    if row.signed_by_id is None:
        raise StoreError(f"{where}: the note must be signed before it is co-signed")
    if cosigner_id == row.signed_by_id:
        raise StoreError(
            f"{where}: {cosigner.name} signed the note; the co-signature must be another person's"
        )
    if cosigner_id != row.supervising_clinician_id:
        raise StoreError(
            f"{where}: only the supervising therapist recorded on the session co-signs "
            f"(supervising_clinician_id {row.supervising_clinician_id}); amend it first if "
            "another therapist supervised"
        )
    if Discipline(cosigner.discipline) != needed:
        raise StoreError(
            f"{where}: a {treating.discipline}'s note is co-signed by a {needed.value}, and "
            f"{cosigner.name} is {cosigner.discipline}"
        )


def _check_amendment(field_name: str, value: Any) -> Any:
    """Normalise an amendment's new value to the column's type, or refuse it naming the rule."""
    if field_name in ("diagnosis_codes", "regions", "same_day_codes"):
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise StoreError(f"{field_name} must be a list of strings, got {value!r}")
        if len(value) > MAX_LIST_ITEMS:
            raise StoreError(f"{field_name} has {len(value)} entries; at most {MAX_LIST_ITEMS}")
        if field_name == "same_day_codes":
            bad = [v for v in value if not CPT_CODE.fullmatch(v)]
            if bad:
                raise StoreError(
                    f"same_day_codes {bad!r} are not CPT/HCPCS codes (five letters or digits, "
                    "e.g. 97110)"
                )
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
    if field_name == "decompression":
        if not isinstance(value, bool):
            raise StoreError(f"decompression must be true or false, got {value!r}")
        return value
    if field_name in ("visit_timed_minutes", "visit_treatment_minutes"):
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise StoreError(f"{field_name} must be a number of minutes, got {value!r}")
        if not 0 <= value <= MAX_VISIT_MINUTES:
            raise StoreError(
                f"{field_name} {value!r} must be between 0 and {MAX_VISIT_MINUTES} minutes"
            )
        return float(value)
    if field_name in _CLINICIAN_FIELDS:
        if value is not None and not isinstance(value, int):
            raise StoreError(f"{field_name} must be a clinician id (integer), got {value!r}")
        return value
    if value is not None and not isinstance(value, str):
        raise StoreError(f"{field_name} must be text, got {value!r}")
    return value


def _json_safe(value: dict[str, Any]) -> dict[str, Any]:
    """The value as it will read back from a JSON column (enums to strings, tuples to lists)."""
    result: dict[str, Any] = json.loads(json.dumps(value, default=str))
    return result

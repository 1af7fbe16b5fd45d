"""The claims ledger: what has been billed, so each encounter is billed once.

An encounter is (patient, date of service, code); the database holds one row per encounter under a
unique constraint, so two exports racing on two workstations still bill it once. Every line that
goes out is appended as a :class:`~session.models.ClaimLine` whose id is the pull cursor: a billing
office asks for the lines after the last id it saw and gets each line once. A sent line is never
changed: a correction appends a replacement (X12 claim frequency 7) and a void appends a void
(frequency 8), each naming the line it replaces. Every export run is recorded with who ran it,
when, which sessions, which lines (``ClaimLine.run_id``), which files and what was held.

Simulated sessions never enter the ledger: :meth:`ClaimsLedger.claim` refuses them whatever the
caller decided. The ledger reads and writes its own tables beside the :class:`~session.store.Store`
and knows nothing of payers or readiness; it is told which lines are ready.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from session.billing import BillingLine
from session.models import (
    ClaimedSession,
    ClaimEncounter,
    ClaimLine,
    ExportRun,
    Patient,
    TreatmentSession,
)
from session.store import StoreError

MAX_PULL = 1000
"""Lines per pull page at most."""
LOCK_KEY = 0x7472_6163  # "trac": serialises ledger writes on PostgreSQL (see _write)


class Frequency(enum.StrEnum):
    """X12 CLM05-3 claim frequency type code."""

    ORIGINAL = "1"
    REPLACEMENT = "7"
    VOID = "8"


class LedgerError(StoreError):
    """A ledger request refused; the message names the line or session and the rule."""


class ClaimStatus(enum.StrEnum):
    SENT = "sent"  # appended now, goes into this run's claim file
    ALREADY_SENT = "already_sent"  # the encounter was billed before: no new line, no new unit


@dataclass(frozen=True)
class Claimed:
    """What claiming one ready line did. ``line`` is the ledger line that bills the encounter:
    the new one (``SENT``) or the one sent before (``ALREADY_SENT``)."""

    status: ClaimStatus
    line: ClaimLine
    sessions: tuple[str, ...]  # the sessions asked to be billed on it

    def explain(self) -> str:
        if self.status is ClaimStatus.SENT:
            return f"sent as claim line {self.line.id}"
        return (
            f"already sent as claim line {self.line.id} on {self.line.created_at:%Y-%m-%d} "
            f"(session {self.line.session_ids[0]}); no unit added"
        )


class ClaimsLedger:
    """The ledger behind one engine (the same database as the store)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A write transaction. On PostgreSQL it first takes a transaction-scoped advisory lock,
        so lines commit in id order: a reader's cursor can never pass a line still being
        written. SQLite serialises writers by itself."""
        with Session(self.engine, expire_on_commit=False) as db:
            if self.engine.dialect.name == "postgresql":
                db.connection().execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY}
                )
            yield db

    # --- runs ------------------------------------------------------------------------------------

    def begin_run(self, by: str, kind: str, session_ids: Sequence[str], note: str = "") -> int:
        """Record that ``by`` started an export run (``kind``: export, correct, void)."""
        if not by.strip():
            raise LedgerError("an export run needs who ran it")
        run = ExportRun(
            at=datetime.now(UTC), by=by, kind=kind, session_ids=list(session_ids), note=note
        )
        with self._write() as db:
            db.add(run)
            db.commit()
        assert run.id is not None
        return run.id

    def finish_run(
        self, run_id: int, files: Sequence[str], held: Sequence[dict[str, Any]]
    ) -> ExportRun:
        """Record the files a run wrote and the sessions it held (with their finding codes)."""
        with self._write() as db:
            run = db.get(ExportRun, run_id)
            if run is None:
                raise LedgerError(f"no export run {run_id}")
            run.files = list(files)
            run.held = list(held)
            db.add(run)
            db.commit()
            return run

    def get_run(self, run_id: int) -> ExportRun:
        with Session(self.engine) as db:
            run = db.get(ExportRun, run_id)
        if run is None:
            raise LedgerError(f"no export run {run_id}")
        return run

    def runs(self, limit: int = 50) -> list[ExportRun]:
        with Session(self.engine) as db:
            return list(
                db.exec(select(ExportRun).order_by(col(ExportRun.id).desc()).limit(limit)).all()
            )

    def run_lines(self, run_id: int) -> list[ClaimLine]:
        with Session(self.engine) as db:
            return list(
                db.exec(
                    select(ClaimLine).where(ClaimLine.run_id == run_id).order_by(col(ClaimLine.id))
                ).all()
            )

    # --- claiming --------------------------------------------------------------------------------

    def claim(self, run_id: int, line: BillingLine, payer_key: str) -> Claimed:
        """Bill ``line`` unless its encounter was billed before; either way its sessions are
        recorded as covered, so they are not offered again as new."""
        for attempt in range(2):
            try:
                return self._claim_once(run_id, line, payer_key)
            except IntegrityError:
                # another workstation billed the encounter between our read and our insert:
                # read again, and it is now "already sent"
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _claim_once(self, run_id: int, line: BillingLine, payer_key: str) -> Claimed:
        with self._write() as db:
            rows = db.exec(
                select(TreatmentSession).where(col(TreatmentSession.id).in_(line.session_ids))
            ).all()
            if len(rows) != len(set(line.session_ids)):
                raise LedgerError(f"line for {line.session_ids}: a session is not in the store")
            simulated = sorted(r.id for r in rows if r.simulated)
            if simulated:
                raise LedgerError(
                    f"sessions {simulated} ran on a simulated table: never billed, never in the "
                    "ledger"
                )
            patient_ids = {r.patient_id for r in rows}
            if len(patient_ids) != 1:
                raise LedgerError(f"line for {line.session_ids} spans several patients")
            patient_id = patient_ids.pop()
            patient = db.get(Patient, patient_id)
            if patient is None or patient.reference != line.patient_ref:
                raise LedgerError(f"line for {line.session_ids}: patient does not match")
            encounter = db.exec(
                select(ClaimEncounter)
                .where(ClaimEncounter.patient_id == patient_id)
                .where(ClaimEncounter.date_of_service == line.date_of_service)
                .where(ClaimEncounter.code == line.cpt_code)
            ).first()
            if encounter is not None:
                assert encounter.id is not None
                original = self._first_line(db, encounter.id)
                self._cover(db, line.session_ids, encounter.id, original, run_id)
                db.commit()
                return Claimed(ClaimStatus.ALREADY_SENT, original, line.session_ids)
            encounter = ClaimEncounter(
                patient_id=patient_id, date_of_service=line.date_of_service, code=line.cpt_code
            )
            db.add(encounter)
            db.flush()  # the unique constraint speaks here when another run got there first
            assert encounter.id is not None
            sent = _line_row(line, encounter.id, run_id, payer_key, Frequency.ORIGINAL)
            db.add(sent)
            db.flush()
            self._cover(db, line.session_ids, encounter.id, sent, run_id)
            db.commit()
            return Claimed(ClaimStatus.SENT, sent, line.session_ids)

    @staticmethod
    def _first_line(db: Session, encounter_id: int) -> ClaimLine:
        line = db.exec(
            select(ClaimLine)
            .where(ClaimLine.encounter_id == encounter_id)
            .order_by(col(ClaimLine.id))
        ).first()
        assert line is not None, f"encounter {encounter_id} has no line"
        return line

    @staticmethod
    def _cover(
        db: Session, session_ids: Sequence[str], encounter_id: int, line: ClaimLine, run_id: int
    ) -> None:
        assert line.id is not None
        for session_id in session_ids:
            if db.get(ClaimedSession, session_id) is None:
                db.add(
                    ClaimedSession(
                        session_id=session_id,
                        encounter_id=encounter_id,
                        line_id=line.id,
                        run_id=run_id,
                    )
                )

    def claimed(self, session_id: str) -> ClaimLine | None:
        """The line that covers a session, if it was claimed."""
        with Session(self.engine) as db:
            covered = db.get(ClaimedSession, session_id)
            return None if covered is None else db.get(ClaimLine, covered.line_id)

    def unclaimed_sessions(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """Finished sessions of real tables that no claim line covers yet, oldest first: what an
        export of "what is new" looks at (held ones come back each time until they are ready).
        ``since``/``until`` bound the start moment (a store that billed before it had a ledger
        starts from the first day not billed elsewhere); ``limit`` bounds one run."""
        sessions = TreatmentSession.__table__  # type: ignore[attr-defined]
        covered = ClaimedSession.__table__  # type: ignore[attr-defined]
        stmt = (
            sa.select(sessions.c.id)
            .where(sessions.c.outcome.is_not(None))
            .where(sessions.c.simulated.is_(sa.false()))
            .where(~sa.exists().where(covered.c.session_id == sessions.c.id))
            .order_by(sessions.c.started_at, sessions.c.id)
        )
        if since is not None:
            stmt = stmt.where(sessions.c.started_at >= since)
        if until is not None:
            stmt = stmt.where(sessions.c.started_at < until)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(stmt)]

    # --- pulling ---------------------------------------------------------------------------------

    def lines_after(self, after: int, limit: int = MAX_PULL) -> list[ClaimLine]:
        """Ledger lines with an id above ``after``, oldest first, at most ``limit``: pass the last
        id back as ``after`` and every line comes out exactly once."""
        if after < 0:
            raise LedgerError(f"cursor {after} must be 0 or a claim line id")
        if not 1 <= limit <= MAX_PULL:
            raise LedgerError(f"limit {limit} must be between 1 and {MAX_PULL}")
        with Session(self.engine) as db:
            return list(
                db.exec(
                    select(ClaimLine)
                    .where(col(ClaimLine.id) > after)
                    .order_by(col(ClaimLine.id))
                    .limit(limit)
                ).all()
            )

    def get_line(self, line_id: int) -> ClaimLine:
        with Session(self.engine) as db:
            line = db.get(ClaimLine, line_id)
        if line is None:
            raise LedgerError(f"no claim line {line_id}")
        return line

    def sent_spend(self, patient_ref: str, year: int) -> Decimal:
        """The patient's charges on lines in force this year (originals and replacements not
        later replaced or voided), for KX: what the ledger itself has billed."""
        total = Decimal(0)
        for line in self._current_lines(patient_ref):
            if line.date_of_service.year == year and line.frequency != Frequency.VOID:
                total += Decimal(line.charge)
        return total

    def _current_lines(self, patient_ref: str) -> list[ClaimLine]:
        with Session(self.engine) as db:
            lines = db.exec(
                select(ClaimLine)
                .where(ClaimLine.patient_ref == patient_ref)
                .order_by(col(ClaimLine.id))
            ).all()
        latest: dict[int, ClaimLine] = {}
        for line in lines:
            latest[line.encounter_id] = line
        return list(latest.values())

    # --- corrections and voids ------------------------------------------------------------------

    def current(self, line_id: int) -> ClaimLine:
        """The line now in force for the encounter of ``line_id`` (the last one appended)."""
        line = self.get_line(line_id)
        with Session(self.engine) as db:
            last = db.exec(
                select(ClaimLine)
                .where(ClaimLine.encounter_id == line.encounter_id)
                .order_by(col(ClaimLine.id).desc())
            ).first()
        assert last is not None
        return last

    def _check_amendable(self, db: Session, line_id: int) -> ClaimLine:
        line = db.get(ClaimLine, line_id)
        if line is None:
            raise LedgerError(f"no claim line {line_id}")
        last = db.exec(
            select(ClaimLine)
            .where(ClaimLine.encounter_id == line.encounter_id)
            .order_by(col(ClaimLine.id).desc())
        ).first()
        assert last is not None
        if last.frequency == Frequency.VOID:
            raise LedgerError(
                f"claim line {line_id}'s encounter was voided by line {last.id}; nothing to change"
            )
        if last.id != line_id:
            raise LedgerError(
                f"claim line {line_id} was replaced by line {last.id}: correct or void that one"
            )
        return line

    @staticmethod
    def _run_in(db: Session, by: str, kind: str, session_ids: Sequence[str], note: str) -> int:
        """A run recorded in the same transaction as what it does: a refused correction or void
        leaves no run behind."""
        if not by.strip():
            raise LedgerError("a ledger change needs who made it")
        run = ExportRun(
            at=datetime.now(UTC), by=by, kind=kind, session_ids=list(session_ids), note=note
        )
        db.add(run)
        db.flush()
        assert run.id is not None
        return run.id

    def correct(
        self, by: str, line_id: int, replacement: BillingLine, payer_key: str, reason: str
    ) -> ClaimLine:
        """Append a replacement (frequency 7) for the line in force ``line_id``, recorded as a
        ``correct`` run by ``by``."""
        if not reason.strip():
            raise LedgerError(f"correcting claim line {line_id} needs a reason")
        with self._write() as db:
            old = self._check_amendable(db, line_id)
            run_id = self._run_in(db, by, "correct", replacement.session_ids, reason)
            if (replacement.patient_ref, replacement.date_of_service) != (
                old.patient_ref,
                old.date_of_service,
            ):
                raise LedgerError(
                    f"a replacement of claim line {line_id} must be the same patient and date of "
                    f"service ({old.patient_ref}, {old.date_of_service})"
                )
            row = _line_row(replacement, old.encounter_id, run_id, payer_key, Frequency.REPLACEMENT)
            row.replaces_line_id = line_id
            row.reason = reason
            db.add(row)
            db.commit()
            return row

    def void(self, by: str, line_id: int, reason: str) -> ClaimLine:
        """Append a void (frequency 8) of the line in force ``line_id``, recorded as a ``void``
        run by ``by``."""
        if not reason.strip():
            raise LedgerError(f"voiding claim line {line_id} needs a reason")
        with self._write() as db:
            old = self._check_amendable(db, line_id)
            run_id = self._run_in(db, by, "void", old.session_ids, reason)
            row = ClaimLine(
                **old.model_dump(exclude={"id", "run_id", "frequency", "created_at", "reason"}),
                run_id=run_id,
                frequency=Frequency.VOID.value,
                created_at=datetime.now(UTC),
                reason=reason,
            )
            row.replaces_line_id = line_id
            db.add(row)
            db.commit()
            return row


def _line_row(
    line: BillingLine, encounter_id: int, run_id: int, payer_key: str, frequency: Frequency
) -> ClaimLine:
    return ClaimLine(
        encounter_id=encounter_id,
        run_id=run_id,
        frequency=frequency.value,
        created_at=datetime.now(UTC),
        payer_key=payer_key,
        patient_ref=line.patient_ref,
        date_of_service=line.date_of_service,
        cpt_code=line.cpt_code,
        modifiers=list(line.modifiers),
        units=line.units,
        charge=f"{line.charge:.2f}",
        diagnoses=list(line.diagnoses),
        dx_pointers=list(line.dx_pointers),
        rendering_npi=line.rendering_npi,
        supervising_npi=line.supervising_npi,
        place_of_service=line.place_of_service,
        session_ids=list(line.session_ids),
    )


def as_billing_line(row: ClaimLine) -> BillingLine:
    """A ledger line as the renderers take it."""
    return BillingLine(
        date_of_service=row.date_of_service,
        patient_ref=row.patient_ref,
        cpt_code=row.cpt_code,
        modifiers=tuple(row.modifiers),
        units=row.units,
        charge=Decimal(row.charge),
        diagnoses=tuple(row.diagnoses),
        dx_pointers=tuple(row.dx_pointers),
        rendering_npi=row.rendering_npi,
        supervising_npi=row.supervising_npi,
        place_of_service=row.place_of_service,
        session_ids=tuple(row.session_ids),
    )

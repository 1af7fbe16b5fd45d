"""Who read or exported which patient's records, and when: the access log a privacy officer asks
for (HIPAA's accounting of access), kept in the store beside the records it is about.

Append-only: entries are written as records are served and never changed. A session's entry
names the session; its patient is found through the session when the log is read, so an entry
can be written while the session's row is still on its way to the store (live telemetry).

Many requests write entries at once (twenty clients polling a listing are hundreds a second), and
each write takes the store's write lock, which a treatment's recorder needs too: on SQLite a stream
of small writers kept a recorder waiting past its stall warning. So entries are group-committed: a
caller whose entries are waiting writes every caller's waiting entries in one transaction, and each
caller returns only once its own are committed (or raises the write's error): a response never
leaves before its entry is stored, and the lock is taken a few times a second, not per request.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, func, select

from session.models import Patient, TreatmentSession, UTCDateTime

MAX_ENTRIES = 10_000
"""The most entries one listing returns (narrow by user, patient or dates for more)."""


class Access(enum.StrEnum):
    READ = "read"  # a session's record, samples, amendments, live telemetry
    LIST = "list"  # a listing that showed the record among others
    EXPORT = "export"  # a document or billing file left the store


class AccessEntry(SQLModel, table=True):
    """One access to one patient's records (or to the patient list as a whole)."""

    __tablename__ = "access_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    user_name: str = Field(sa_type=sa.String(64), index=True)
    action: str = Field(sa_type=sa.String(16))  # an Access value
    what: str = Field(sa_type=sa.String(128))  # the route or command, e.g. GET /sessions/{id}
    session_id: str | None = Field(default=None, sa_type=sa.String(64), index=True)
    patient_id: int | None = Field(default=None, foreign_key="patients.id", index=True)
    detail: str = Field(default="", sa_type=sa.String(200))  # e.g. the export format


@dataclass(frozen=True)
class Accessed:
    """What was touched: a session's record, or a patient's (``session_id`` empty)."""

    session_id: str | None = None
    patient_id: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class AccessRow:
    """An entry as listed, with the patient's reference resolved (through the session if need be)."""

    id: int
    at: datetime
    user_name: str
    action: str
    what: str
    session_id: str | None
    patient_reference: str | None
    detail: str


@dataclass(frozen=True)
class AccessQuery:
    user_name: str | None = None
    patient_reference: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 1000


@dataclass(eq=False)
class _Waiting:
    """One caller's entries until a group commit stores them (or fails)."""

    rows: list[dict[str, Any]]
    done: bool = False
    error: BaseException | None = field(default=None)


class AccessLog:
    """The access log in the session database (same engine as :class:`session.store.Store`).

    Share one per engine between the threads that write it (the service keeps one): writers that
    come together are then stored together."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.commits = 0  # transactions written, for the tests and the bench
        self._lock = threading.Condition()
        self._waiting: list[_Waiting] = []
        self._writing = False
        self._callers = 0  # callers in record() whose entries are not yet stored

    @property
    def callers_waiting(self) -> int:
        """Callers whose entries are not yet committed (being written, or waiting to be)."""
        with self._lock:
            return self._callers

    def record(
        self,
        user_name: str,
        action: Access,
        what: str,
        accessed: Sequence[Accessed],
        at: datetime | None = None,
    ) -> int:
        """Store one entry per thing accessed; returns how many, once they are committed (with
        any other caller's waiting at the same time). A failed write raises here, for every
        caller it held."""
        moment = at or datetime.now(UTC)
        rows = [
            {
                "at": moment,
                "user_name": user_name[:64],
                "action": action.value,
                "what": what[:128],
                "session_id": item.session_id,
                "patient_id": item.patient_id,
                "detail": item.detail[:200],
            }
            for item in accessed
        ]
        if not rows:
            return 0
        mine = _Waiting(rows)
        self._store(mine)
        if mine.error is not None:
            raise mine.error
        return len(rows)

    def _store(self, mine: _Waiting) -> None:
        """Wait while another caller writes; then, if ``mine`` is still waiting, write it with
        every other waiting caller's entries (a group commit)."""
        with self._lock:
            self._waiting.append(mine)
            self._callers += 1
            while not mine.done:
                if self._writing:
                    self._lock.wait()
                    continue
                self._writing = True
                group, self._waiting = self._waiting, []
                error: BaseException | None = None
                self._lock.release()
                try:
                    self._insert([row for waiting in group for row in waiting.rows])
                except BaseException as exc:  # each caller gets it, as if it wrote alone
                    error = exc
                finally:
                    self._lock.acquire()
                    for waiting in group:
                        waiting.done, waiting.error = True, error
                    self._callers -= len(group)
                    self._writing = False
                    self._lock.notify_all()

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as db:
            db.execute(sa.insert(AccessEntry), rows)
        self.commits += 1

    def entries(self, query: AccessQuery) -> list[AccessRow]:
        """Entries matching every filter given, oldest first, at most ``query.limit``."""
        patient_id = func.coalesce(col(AccessEntry.patient_id), col(TreatmentSession.patient_id))
        stmt = (
            select(AccessEntry, Patient.reference)
            .outerjoin(TreatmentSession, col(TreatmentSession.id) == col(AccessEntry.session_id))
            .outerjoin(Patient, col(Patient.id) == patient_id)
        )
        if query.user_name is not None:
            stmt = stmt.where(AccessEntry.user_name == query.user_name)
        if query.patient_reference is not None:
            stmt = stmt.where(Patient.reference == query.patient_reference)
        if query.since is not None:
            stmt = stmt.where(col(AccessEntry.at) >= query.since)
        if query.until is not None:
            stmt = stmt.where(col(AccessEntry.at) < query.until)
        limit = max(1, min(query.limit, MAX_ENTRIES))
        stmt = stmt.order_by(col(AccessEntry.at), col(AccessEntry.id)).limit(limit)
        with Session(self.engine) as db:
            return [
                AccessRow(
                    id=entry.id or 0,
                    at=entry.at,
                    user_name=entry.user_name,
                    action=entry.action,
                    what=entry.what,
                    session_id=entry.session_id,
                    patient_reference=reference,
                    detail=entry.detail,
                )
                for entry, reference in db.exec(stmt).all()
            ]

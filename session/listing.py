"""Listing sessions: the filters, keyset pages and counts every listing runs, on SQLAlchemy Core.

``traction sessions list`` answers from this module alone: loading the ORM models (SQLModel and
pydantic building every table class) would cost the command more than everything else it does.
The store's own listing methods and the HTTP API page through the same functions, so there is one
query. The columns read are named below as Core column clauses; a test checks each against the
model's table (:class:`session.models.TreatmentSession`, :class:`session.models.Patient`), which
stays the schema's one definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.expression import TableClause

from devices.records import Outcome
from session.columns import UTCDateTime
from session.errors import StoreError

MAX_PAGE = 10_000
"""The most sessions one page may hold."""

SESSIONS = sa.table(
    "sessions",
    sa.column("id", sa.String),
    sa.column("patient_id", sa.Integer),
    sa.column("treating_clinician_id", sa.Integer),
    sa.column("supervising_clinician_id", sa.Integer),
    sa.column("workstation", sa.String),
    sa.column("table_label", sa.String),
    sa.column("regions", sa.JSON),
    sa.column("started_at", UTCDateTime),
    sa.column("ended_at", UTCDateTime),
    sa.column("outcome", sa.String),
    sa.column("outcome_reason", sa.Text),
    sa.column("sample_count", sa.Integer),
    sa.column("event_count", sa.Integer),
    sa.column("seal_digest", sa.String),
    sa.column("simulated", sa.Boolean),
)
"""The columns of ``sessions`` a listing reads or filters on."""

PATIENTS = sa.table("patients", sa.column("id", sa.Integer), sa.column("reference", sa.String))
"""The columns of ``patients`` a listing reads: the reference shown beside each session."""


class SessionSummary(NamedTuple):
    """A session as a listing shows it: every column but the settings snapshot, the seal's
    parts and the documentation texts."""

    id: str
    patient_id: int
    patient_reference: str
    treating_clinician_id: int
    supervising_clinician_id: int | None
    workstation: str
    table_label: str
    regions: list[str]
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    outcome_reason: str | None
    sample_count: int
    event_count: int
    sealed: bool
    simulated: bool

    @property
    def cursor(self) -> SessionCursor:
        return SessionCursor(self.started_at, self.id)


class SessionCursor(NamedTuple):
    """Where a page of sessions ended: the next page starts after (or before) it."""

    started_at: datetime
    id: str

    def text(self) -> str:
        """The cursor as one URL-safe token (for the API's ``after`` parameter)."""
        return f"{self.started_at.astimezone(UTC).isoformat()}~{self.id}"

    @classmethod
    def parse(cls, text: str) -> SessionCursor:
        moment, sep, session_id = text.partition("~")
        try:
            if not sep or not session_id:
                raise ValueError(text)
            return cls(aware(datetime.fromisoformat(moment)), session_id)
        except (ValueError, StoreError):
            raise StoreError(
                f"cursor {text!r} is not one this service gave out; pass back the value it sent"
            ) from None


@dataclass(frozen=True)
class SessionQuery:
    """Filters for a listing; every field left empty matches everything."""

    patient_id: int | None = None
    clinician_id: int | None = None  # treating or supervising
    since: datetime | None = None  # started_at >= since
    until: datetime | None = None  # started_at < until
    outcome: Outcome | None = None
    workstation: str | None = None
    unfinished: bool | None = None


def list_sessions(
    engine: Engine,
    query: SessionQuery | None = None,
    *,
    limit: int,
    after: SessionCursor | None = None,
    newest_first: bool = False,
) -> list[SessionSummary]:
    """One page of up to ``limit`` sessions matching every filter, in start order (newest first
    if asked), after the ``after`` cursor (keyset paging: every page costs the same however deep
    it is). Only the listed columns are read, and the patient's reference comes from the same
    query."""
    if not 1 <= limit <= MAX_PAGE:
        raise StoreError(f"limit {limit} must be between 1 and {MAX_PAGE}")
    s, p = SESSIONS, PATIENTS
    stmt = sa.select(
        s.c.id,
        s.c.patient_id,
        p.c.reference,
        s.c.treating_clinician_id,
        s.c.supervising_clinician_id,
        s.c.workstation,
        s.c.table_label,
        s.c.regions,
        s.c.started_at,
        s.c.ended_at,
        s.c.outcome,
        s.c.outcome_reason,
        s.c.sample_count,
        s.c.event_count,
        s.c.seal_digest.is_not(None),
        s.c.simulated,
    ).join(p, p.c.id == s.c.patient_id)
    stmt = filtered(stmt, query or SessionQuery())
    if after is not None:
        moment = aware(after.started_at)
        beyond = (
            (s.c.started_at < moment, s.c.id < after.id)
            if newest_first
            else (s.c.started_at > moment, s.c.id > after.id)
        )
        stmt = stmt.where(sa.or_(beyond[0], sa.and_(s.c.started_at == moment, beyond[1])))
    order = (s.c.started_at.desc(), s.c.id.desc()) if newest_first else (s.c.started_at, s.c.id)
    with engine.connect() as conn:
        rows = conn.execute(stmt.order_by(*order).limit(limit)).all()
    return [SessionSummary._make(row) for row in rows]


def session_ids(engine: Engine, query: SessionQuery | None = None) -> list[str]:
    """Ids of the sessions matching every filter, oldest first (ids only: a year of them is a
    small list)."""
    s = SESSIONS
    stmt = filtered(sa.select(s.c.id), query or SessionQuery()).order_by(s.c.started_at, s.c.id)
    with engine.connect() as conn:
        return list(conn.execute(stmt).scalars())


def count_sessions(engine: Engine, query: SessionQuery | None = None) -> int:
    """How many sessions match every filter (one ``count(*)``)."""
    stmt = filtered(sa.select(sa.func.count()).select_from(SESSIONS), query or SessionQuery())
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def patient_id(engine: Engine, reference: str) -> int:
    """The id of the patient with the clinic's ``reference``."""
    stmt = sa.select(PATIENTS.c.id).where(PATIENTS.c.reference == reference)
    with engine.connect() as conn:
        found = conn.execute(stmt).scalar()
    if found is None:
        raise StoreError(f"no patient with reference {reference!r}")
    return int(found)


_S = TypeVar("_S", bound=Any)


def filtered(stmt: _S, q: SessionQuery, sessions: TableClause = SESSIONS) -> _S:
    """``stmt`` narrowed to the sessions matching every filter of ``q`` (in SQL); ``sessions``
    is the table ``stmt`` selects from (the model's own table for a query of full rows)."""
    s = sessions
    if q.patient_id is not None:
        stmt = stmt.where(s.c.patient_id == q.patient_id)
    if q.clinician_id is not None:
        stmt = stmt.where(
            sa.or_(
                s.c.treating_clinician_id == q.clinician_id,
                s.c.supervising_clinician_id == q.clinician_id,
            )
        )
    if q.since is not None:
        stmt = stmt.where(s.c.started_at >= aware(q.since))
    if q.until is not None:
        stmt = stmt.where(s.c.started_at < aware(q.until))
    if q.outcome is not None:
        stmt = stmt.where(s.c.outcome == Outcome(q.outcome).value)
    if q.workstation is not None:
        stmt = stmt.where(s.c.workstation == q.workstation)
    if q.unfinished is not None:
        stmt = stmt.where(s.c.outcome.is_(None) if q.unfinished else s.c.outcome.is_not(None))
    return stmt


def aware(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive one is refused (stored moments are UTC, never local)."""
    if moment.tzinfo is None:
        raise StoreError(f"timestamp {moment.isoformat()} has no timezone; record UTC moments")
    return moment.astimezone(UTC)

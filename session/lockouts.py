"""Lockouts: a table locked on this workstation by a lock-severity trip until someone acknowledges it.

The worst faults (hard limit, stuck or disagreeing sensors, watchdog, device overload: every fault of
severity ``lock`` in :mod:`devices.faults`) leave a table that must not pull again before a
clinician has checked the patient and the table (DOMAIN.md section 1, items 5 and 7). A trip whose
event data carries ``severity == "lock"`` locks that table:
:class:`LockoutWatch` (a stream subscriber, like the recorder) writes the lockout as soon as the trip
is published, and every entry point refuses to start a session on the table while it stays locked.
Acknowledging records who and why as an event; both the lock and its acknowledgement are kept in
the store, so they survive restarts and are shared by every process on the workstation.

A table is known by the name the workstation gives it (the settings' table name, or the URL of an
unnamed one) and, once it has identified itself, by its serial number, so one physical table
reached under two names is still one locked table. Locks are per workstation: on a shared server
another workstation's tables are its own business.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, select

from devices.faults import Severity
from devices.records import Event, Record, Started
from session.errors import TableLocked
from session.models import UTCDateTime
from session.store import StoreError

log = structlog.get_logger(__name__)

LOCK_SEVERITY = Severity.LOCK.value
MAX_WHO_CHARS = 200
MAX_WHY_CHARS = 2000


class TableLockout(SQLModel, table=True):
    """One lock of one table: set by a trip, cleared (never deleted) by an acknowledgement."""

    __tablename__ = "table_lockouts"

    id: int | None = Field(default=None, primary_key=True)
    workstation: str = Field(sa_type=sa.String(128), index=True)
    table_name: str = Field(sa_type=sa.String(512), index=True)
    table_url: str = Field(default="", sa_type=sa.String(512))
    device_serial: str = Field(default="", sa_type=sa.String(128), index=True)
    session_id: str | None = Field(default=None, sa_type=sa.String(64))
    fault: str = Field(sa_type=sa.String(64))
    reason: str = Field(sa_type=sa.Text)
    locked_at: datetime = Field(sa_type=UTCDateTime)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)


class LockoutEvent(SQLModel, table=True):
    """What happened to a lockout, and who did it: ``locked`` then ``acknowledged``. Append-only."""

    __tablename__ = "lockout_events"

    id: int | None = Field(default=None, primary_key=True)
    lockout_id: int = Field(foreign_key="table_lockouts.id", index=True)
    kind: str = Field(sa_type=sa.String(16))
    at: datetime = Field(sa_type=UTCDateTime)
    who: str = Field(sa_type=sa.String(MAX_WHO_CHARS))
    why: str = Field(sa_type=sa.Text)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class LockoutError(StoreError):
    """An acknowledgement the store refuses (nothing locked, no name or reason given)."""


class NotLocked(LockoutError):
    """Nothing to acknowledge: the table is not locked."""


@dataclass(frozen=True)
class TableRef:
    """A table as this workstation knows it."""

    workstation: str
    name: str
    url: str = ""
    serial: str = ""


def is_lock(record: Record) -> bool:
    """Whether a record is a trip that must lock its table."""
    return isinstance(record, Event) and str(record.data.get("severity", "")) == LOCK_SEVERITY


def _checked(text: str, what: str, limit: int) -> str:
    text = text.strip()
    if not text:
        raise LockoutError(f"an acknowledgement needs {what}")
    if len(text) > limit:
        raise LockoutError(f"{what} is {len(text)} characters; at most {limit}")
    return text


class Lockouts:
    """The lockouts behind one engine (SQLite or PostgreSQL). Every write is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def lock(
        self,
        table: TableRef,
        *,
        fault: str,
        reason: str,
        session_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> TableLockout:
        """Lock ``table``. Locking again for the same session while it is still locked returns
        the existing lock (a retried write cannot lock twice)."""
        now = datetime.now(UTC)
        with self._session() as db:
            if session_id is not None:
                existing = db.exec(
                    self._active_query(table.workstation, [table.name], table.serial).where(
                        TableLockout.session_id == session_id
                    )
                ).first()
                if existing is not None:
                    return existing
            row = TableLockout(
                workstation=table.workstation,
                table_name=table.name,
                table_url=table.url,
                device_serial=table.serial,
                session_id=session_id,
                fault=fault[:64],
                reason=reason,
                locked_at=now,
            )
            db.add(row)
            db.flush()
            assert row.id is not None
            db.add(
                LockoutEvent(
                    lockout_id=row.id,
                    kind="locked",
                    at=now,
                    who=f"trip on workstation {table.workstation}"[:MAX_WHO_CHARS],
                    why=reason,
                    data=dict(data or {}),
                )
            )
            db.commit()
        log.warning("table locked", table=table.name, fault=fault, session=session_id)
        return row

    @staticmethod
    def _active_query(workstation: str, names: Iterable[str], serial: str = "") -> Any:
        which: sa.ColumnElement[bool] = col(TableLockout.table_name).in_(list(names))
        if serial:
            which = sa.or_(which, col(TableLockout.device_serial) == serial)
        return (
            select(TableLockout)
            .where(TableLockout.workstation == workstation)
            .where(col(TableLockout.acknowledged_at).is_(None))
            .where(which)
            .order_by(col(TableLockout.id))
        )

    def active(self, workstation: str, name: str, serial: str = "") -> list[TableLockout]:
        """Unacknowledged locks of the table called ``name`` (or with this serial number)."""
        with self._session() as db:
            return list(db.exec(self._active_query(workstation, [name], serial)).all())

    def active_on(self, workstation: str) -> list[TableLockout]:
        """Every unacknowledged lock on this workstation, oldest first."""
        with self._session() as db:
            return list(
                db.exec(
                    select(TableLockout)
                    .where(TableLockout.workstation == workstation)
                    .where(col(TableLockout.acknowledged_at).is_(None))
                    .order_by(col(TableLockout.id))
                ).all()
            )

    def of_session(self, session_id: str) -> list[TableLockout]:
        """Every lock a session's trip made, acknowledged or not."""
        with self._session() as db:
            return list(
                db.exec(select(TableLockout).where(TableLockout.session_id == session_id)).all()
            )

    def refuse_if_locked(self, table: TableRef) -> None:
        """Raise :class:`TableLocked` if the table may not start."""
        locks = self.active(table.workstation, table.name, table.serial)
        if locks:
            raise TableLocked(table.name, locks)

    def acknowledge(
        self, workstation: str, name: str, who: str, why: str, serial: str = ""
    ) -> list[TableLockout]:
        """Clear every lock of the table ``name`` (a table name, URL or serial number), recording
        who and why as an event on each. Raises LockoutError when nothing is locked."""
        who = _checked(who, "who acknowledges", MAX_WHO_CHARS)
        why = _checked(why, "a reason (what was checked)", MAX_WHY_CHARS)
        now = datetime.now(UTC)
        done: list[TableLockout] = []
        with self._session() as db:
            query = self._active_query(workstation, [name], serial or name)
            for row in db.exec(query).all():
                # Conditional update: two people acknowledging at once record one acknowledgement.
                cleared = db.execute(
                    sa.update(TableLockout)
                    .where(col(TableLockout.id) == row.id)
                    .where(col(TableLockout.acknowledged_at).is_(None))
                    .values(acknowledged_at=now)
                )
                if cleared.rowcount != 1:  # type: ignore[attr-defined]
                    continue
                assert row.id is not None
                db.add(
                    LockoutEvent(lockout_id=row.id, kind="acknowledged", at=now, who=who, why=why)
                )
                row.acknowledged_at = now
                done.append(row)
            db.commit()
        if not done:
            raise NotLocked(f"table {name} is not locked on workstation {workstation}")
        log.info("lock acknowledged", table=name, who=who, locks=len(done))
        return done

    def events(self, lockout_id: int) -> list[LockoutEvent]:
        """A lock's history, oldest first."""
        with self._session() as db:
            return list(
                db.exec(
                    select(LockoutEvent)
                    .where(LockoutEvent.lockout_id == lockout_id)
                    .order_by(col(LockoutEvent.id))
                ).all()
            )

    def history(self, workstation: str, name: str, limit: int = 100) -> list[LockoutEvent]:
        """The latest ``limit`` lock and acknowledgement events of a table, oldest first."""
        limit = max(1, min(limit, 1000))
        with self._session() as db:
            rows = db.exec(
                select(LockoutEvent)
                .join(TableLockout, col(TableLockout.id) == col(LockoutEvent.lockout_id))
                .where(TableLockout.workstation == workstation)
                .where(
                    sa.or_(
                        col(TableLockout.table_name) == name,
                        col(TableLockout.device_serial) == name,
                    )
                )
                .order_by(col(LockoutEvent.id).desc())
                .limit(limit)
            ).all()
        return list(reversed(rows))


class LockoutWatch:
    """A stream subscriber that locks the table when a lock-severity trip is published.

    ``deliver`` never blocks: the write runs in a worker thread, retried until the store takes it
    (a lock is never silently lost). ``wait_written`` returns once every lock seen is stored; the
    treatment awaits it before it reports its result.
    """

    def __init__(self, lockouts: Lockouts, table: TableRef, retry_s: float = 0.5) -> None:
        self._lockouts = lockouts
        self.table = table
        self._retry_s = retry_s
        self._run_id: str | None = None
        self._pending: collections.deque[Event] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self.locked = False

    def deliver(self, record: Record) -> None:
        if isinstance(record, Started):
            self._run_id = record.run_id
            serial = str(record.device.get("serial_number", "")) or self.table.serial
            self.table = TableRef(self.table.workstation, self.table.name, self.table.url, serial)
        elif isinstance(record, Event) and is_lock(record):
            self.locked = True
            self._pending.append(record)
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(
                    self._write(), name="lockout-write"
                )

    async def _write(self) -> None:
        while self._pending:
            event = self._pending[0]
            fault = str(event.data.get("fault") or event.data.get("trip") or event.kind)
            try:
                await asyncio.to_thread(
                    self._lockouts.lock,
                    self.table,
                    fault=fault,
                    reason=event.reason,
                    session_id=self._run_id,
                    data={"t": event.t, "kind": str(event.kind), "severity": LOCK_SEVERITY},
                )
            except Exception as exc:  # the database is away: keep the lock in hand and retry
                log.error("cannot write the lockout yet; retrying", error=str(exc))
                await asyncio.sleep(self._retry_s)
                continue
            self._pending.popleft()

    def refuse_if_locked(self) -> None:
        """Raise :class:`TableLocked` if this table is locked (call off the event loop)."""
        self._lockouts.refuse_if_locked(self.table)

    async def wait_written(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

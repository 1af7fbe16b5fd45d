"""Signed-in people at the clinic console: server-side sessions behind an opaque cookie.

The browser holds only a random session id (HttpOnly, Secure, SameSite=Strict); the store keeps its
SHA-256, the user, a CSRF token every state change must echo, and when it was last used. A session
idle for 15 minutes or older than 12 hours is over, as is one whose user is deactivated.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, select

from session.accounts import User
from session.models import UTCDateTime

IDLE_TIMEOUT = timedelta(minutes=15)
MAX_AGE = timedelta(hours=12)
# Write last_seen at most this often: a page polling every second must not write every second.
_TOUCH_EVERY = timedelta(seconds=30)


class ConsoleSession(SQLModel, table=True):
    """One signed-in browser; rows are kept after sign-out, for the record of who was in."""

    __tablename__ = "console_sessions"

    id_sha256: str = Field(sa_type=sa.String(64), primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    csrf_token: str = Field(sa_type=sa.String(64))
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


@dataclass(frozen=True)
class Opened:
    """A new console session: ``cookie`` goes to the browser, once."""

    cookie: str
    csrf_token: str


@dataclass(frozen=True)
class SignedIn:
    user: User
    csrf_token: str


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


class ConsoleSessions:
    """Open, resolve and close console sessions (same engine as the store)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def open(self, user: User, now: datetime | None = None) -> Opened:
        moment = now or datetime.now(UTC)
        cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with Session(self.engine) as db:
            db.add(
                ConsoleSession(
                    id_sha256=_digest(cookie),
                    user_id=user.id or 0,
                    csrf_token=csrf,
                    created_at=moment,
                    last_seen_at=moment,
                )
            )
            db.commit()
        return Opened(cookie, csrf)

    def resolve(self, cookie: str, now: datetime | None = None) -> SignedIn | None:
        """The active user of a live session, or None (unknown, ended, idle, too old)."""
        if not cookie or len(cookie) > 128:
            return None
        moment = now or datetime.now(UTC)
        with Session(self.engine, expire_on_commit=False) as db:
            found = db.exec(
                select(ConsoleSession, User)
                .join(User, col(User.id) == col(ConsoleSession.user_id))
                .where(ConsoleSession.id_sha256 == _digest(cookie))
            ).first()
            if found is None:
                return None
            row, user = found
            live = (
                row.ended_at is None
                and user.active
                and moment - row.last_seen_at < IDLE_TIMEOUT
                and moment - row.created_at < MAX_AGE
            )
            if not live:
                if row.ended_at is None:
                    row.ended_at = moment
                    db.add(row)
                    db.commit()
                return None
            if moment - row.last_seen_at >= _TOUCH_EVERY:
                row.last_seen_at = moment
                db.add(row)
                db.commit()
            return SignedIn(user, row.csrf_token)

    def close(self, cookie: str, now: datetime | None = None) -> None:
        with Session(self.engine) as db:
            row = db.get(ConsoleSession, _digest(cookie))
            if row is not None and row.ended_at is None:
                row.ended_at = now or datetime.now(UTC)
                db.add(row)
                db.commit()

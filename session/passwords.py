"""Passwords for people who sign in (the clinic console and ``traction login``), as argon2id hashes.

Only the hash is stored (argon2-cffi's defaults, the OWASP recommendation); five wrong passwords in
a row lock the account for fifteen minutes, so a guessed password costs an attacker hours, not
seconds. Tokens remain the way programs authenticate; a person signs in with a password and gets a
short-lived token or a console session.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, select

from session.accounts import AccountError, User
from session.models import UTCDateTime

MIN_LENGTH = 12
MAX_LENGTH = 256  # argon2 hashes any length; a bound keeps a request's cost bounded
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)

_hasher = PasswordHasher()


class UserPassword(SQLModel, table=True):
    """A user's password hash and the count of wrong guesses since the last right one."""

    __tablename__ = "user_passwords"

    user_id: int = Field(foreign_key="users.id", primary_key=True)
    hash: str = Field(sa_type=sa.String(256))
    changed_at: datetime = Field(sa_type=UTCDateTime)
    failures: int = Field(default=0)
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SignInRefused(AccountError):
    """Wrong name or password, or a locked or deactivated account. The message never says which
    of name or password was wrong."""


def check_password_rules(name: str, password: str) -> None:
    """Refuse a password a clinic should not use, naming the rule."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise AccountError(
            f"password: must be {MIN_LENGTH} to {MAX_LENGTH} characters, got {len(password)}"
        )
    if name.lower() in password.lower():
        raise AccountError("password: must not contain the user name")


class Passwords:
    """Setting and checking passwords (same engine as :class:`session.store.Store`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def set(self, name: str, password: str, now: datetime | None = None) -> None:
        """Set (or replace) ``name``'s password; clears any lockout."""
        check_password_rules(name, password)
        moment = now or datetime.now(UTC)
        with Session(self.engine) as db:
            user = db.exec(select(User).where(User.name == name)).first()
            if user is None or user.id is None:
                raise AccountError(f"no user named {name!r}")
            row = db.get(UserPassword, user.id) or UserPassword(
                user_id=user.id, hash="", changed_at=moment
            )
            row.hash = _hasher.hash(password)
            row.changed_at = moment
            row.failures = 0
            row.locked_until = None
            db.add(row)
            db.commit()

    def check(self, name: str, password: str, now: datetime | None = None) -> User:
        """The active user ``name`` if ``password`` is theirs; otherwise :class:`SignInRefused`."""
        moment = now or datetime.now(UTC)
        refused = SignInRefused("wrong user name or password")
        if len(password) > MAX_LENGTH:
            raise refused
        with Session(self.engine, expire_on_commit=False) as db:
            user = db.exec(select(User).where(User.name == name)).first()
            row = db.get(UserPassword, user.id) if user is not None and user.id else None
            if user is None or row is None:
                _hasher.hash(password)  # the same work as a real check: no timing tells names
                raise refused
            if row.locked_until is not None and moment < row.locked_until:
                raise SignInRefused(
                    f"account {name!r} is locked after {MAX_FAILURES} wrong passwords until "
                    f"{row.locked_until:%H:%M} UTC; an admin can reset it with "
                    "`traction users passwd`"
                )
            try:
                _hasher.verify(row.hash, password)
            except (VerificationError, InvalidHashError):
                row.failures += 1
                if row.failures >= MAX_FAILURES:
                    row.locked_until = moment + LOCKOUT
                    row.failures = 0
                db.add(row)
                db.commit()
                raise refused from None
            if not user.active:
                raise SignInRefused(f"user {name!r} is deactivated")
            row.failures = 0
            row.locked_until = None
            if _hasher.check_needs_rehash(row.hash):
                row.hash = _hasher.hash(password)
            db.add(row)
            db.commit()
            return user

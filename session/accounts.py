"""People who use the service, and the bearer tokens they present.

A token is shown once, when issued, and stored only as its SHA-256 digest: a copy of the database
gives no one a working token. Tokens expire, can be revoked, and stop working when their user is
deactivated; rows are never deleted, so who could do what, and when, stays on record.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, select

from session.models import Clinician, UTCDateTime
from session.store import StoreError

TOKEN_PREFIX = "trk_"
MAX_TTL_HOURS = 24 * 90


class Role(enum.StrEnum):
    """What a user may do; the API's role-by-route matrix says which routes each role reaches."""

    TECHNICIAN = "technician"  # runs sessions, reads
    CLINICIAN = "clinician"  # runs sessions, documents (amendments), reads
    BILLING = "billing"  # reads and exports
    ADMIN = "admin"  # users, tokens, settings; reads


class AccountError(StoreError):
    """A request about users or tokens the store refuses; the message names the field and rule."""


class UnknownUser(AccountError):
    """No user by that name."""


class LastAdmin(AccountError):
    """Deactivating this user would leave no active admin to manage the accounts."""


class User(SQLModel, table=True):
    """Someone who signs in to the service (a clinician user links to their clinicians row)."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=sa.String(64), unique=True, index=True)
    role: str = Field(sa_type=sa.String(16))  # a Role value
    clinician_id: int | None = Field(default=None, foreign_key="clinicians.id")
    active: bool = Field(default=True)
    created_at: datetime = Field(sa_type=UTCDateTime)


class ApiToken(SQLModel, table=True):
    """A bearer token, by digest only: the plaintext is never stored."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    token_sha256: str = Field(sa_type=sa.String(64), unique=True, index=True)
    label: str = Field(default="", sa_type=sa.String(200))
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def valid_at(self, moment: datetime) -> bool:
        return self.revoked_at is None and moment < self.expires_at


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued token: ``plaintext`` exists only here, to be shown once."""

    plaintext: str
    token: ApiToken


def token_digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


class Accounts:
    """Users and tokens in the session database (same engine as :class:`session.store.Store`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # --- users ------------------------------------------------------------------------------------

    def create_user(self, name: str, role: Role | str, clinician_id: int | None = None) -> User:
        name = name.strip()
        if not name or len(name) > 64:
            raise AccountError(f"user name {name!r} must be 1 to 64 characters")
        try:
            role_value = Role(role).value
        except ValueError:
            allowed = ", ".join(r.value for r in Role)
            raise AccountError(f"user {name!r}: role {role!r} must be one of {allowed}") from None
        with self._session() as db:
            if db.exec(select(User).where(User.name == name)).first() is not None:
                raise AccountError(f"user name {name!r} already exists")
            if clinician_id is not None and db.get(Clinician, clinician_id) is None:
                raise AccountError(f"user {name!r}: clinician_id {clinician_id} is not a clinician")
            user = User(
                name=name, role=role_value, clinician_id=clinician_id, created_at=datetime.now(UTC)
            )
            db.add(user)
            db.commit()
            return user

    def get_user(self, name: str) -> User:
        with self._session() as db:
            user = db.exec(select(User).where(User.name == name)).first()
        if user is None:
            raise UnknownUser(f"no user named {name!r}")
        return user

    def users(self) -> list[User]:
        with self._session() as db:
            return list(db.exec(select(User).order_by(col(User.name))).all())

    def deactivate(self, name: str) -> User:
        """Refuse every token of this user from now on (the user row stays, for the record).
        The last active admin stays: without one, nobody could manage the accounts."""
        with self._session() as db:
            user = db.exec(select(User).where(User.name == name)).first()
            if user is None:
                raise UnknownUser(f"no user named {name!r}")
            if user.active and user.role == Role.ADMIN.value:
                # Lock the active admins' rows (PostgreSQL), so two admins deactivated at once
                # cannot both see the other still active.
                admins = db.exec(
                    select(User.id)
                    .where(User.role == Role.ADMIN.value, col(User.active).is_(True))
                    .with_for_update()
                ).all()
                if len(admins) <= 1:
                    raise LastAdmin(
                        f"user {name!r} is the last active admin; add another admin first "
                        "(traction users add NAME --role admin)"
                    )
            user.active = False
            db.add(user)
            db.commit()
            return user

    # --- tokens -----------------------------------------------------------------------------------

    def issue_token(
        self,
        user: User | str,
        ttl_hours: float,
        label: str = "",
        now: datetime | None = None,
    ) -> IssuedToken:
        """A new token for an active user, valid ``ttl_hours`` from ``now``; the plaintext is in
        the result only."""
        if not 0 < ttl_hours <= MAX_TTL_HOURS:
            raise AccountError(f"ttl_hours {ttl_hours} must be above 0 and at most {MAX_TTL_HOURS}")
        owner = self.get_user(user if isinstance(user, str) else user.name)
        if not owner.active:
            raise AccountError(f"user {owner.name!r} is deactivated; no token can be issued")
        issued = now or datetime.now(UTC)
        plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = ApiToken(
            user_id=owner.id or 0,
            token_sha256=token_digest(plaintext),
            label=label,
            created_at=issued,
            expires_at=issued + timedelta(hours=ttl_hours),
        )
        with self._session() as db:
            db.add(token)
            db.commit()
        return IssuedToken(plaintext, token)

    def authenticate(self, plaintext: str, now: datetime | None = None) -> User | None:
        """The active user whose unexpired, unrevoked token this is; None for anything else."""
        if not plaintext.startswith(TOKEN_PREFIX):
            return None
        moment = now or datetime.now(UTC)
        with self._session() as db:
            found = db.exec(
                select(ApiToken, User)
                .join(User, col(User.id) == col(ApiToken.user_id))
                .where(ApiToken.token_sha256 == token_digest(plaintext))
            ).first()
        if found is None:
            return None
        token, user = found
        if not token.valid_at(moment) or not user.active:
            return None
        return user

    def revoke_token(self, token_id: int) -> ApiToken:
        with self._session() as db:
            token = db.get(ApiToken, token_id)
            if token is None:
                raise AccountError(f"no token with id {token_id}")
            if token.revoked_at is None:
                token.revoked_at = datetime.now(UTC)
                db.add(token)
                db.commit()
            return token

    def tokens(self, user: str | None = None) -> list[tuple[ApiToken, User]]:
        """Every token (of one user if named), oldest first, with its user."""
        stmt = select(ApiToken, User).join(User, col(User.id) == col(ApiToken.user_id))
        if user is not None:
            stmt = stmt.where(User.name == self.get_user(user).name)
        with self._session() as db:
            return [(t, u) for t, u in db.exec(stmt.order_by(col(ApiToken.id))).all()]

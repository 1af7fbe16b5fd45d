"""Who is signed in at this workstation's command line.

``traction login`` checks a user's password and keeps a short-lived token in a file only the
operating-system user can read, tied to the store it was issued by. Commands that put a person's
name on a record (sign, co-sign, amend, patient edits) take that person from here, never from
typed free text.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from session.accounts import AccountError, Accounts, Role, User, token_digest
from session.passwords import Passwords
from session.store import Store
from traction.api.access import ROLE_PERMISSIONS, Permission
from traction.settings import Settings

LOGIN_TTL_HOURS = 8.0  # one clinic shift


class NotSignedIn(AccountError):
    """No valid sign-in for this operating-system user; the message says how to sign in."""


@dataclass(frozen=True)
class SignIn:
    user: str
    token: str
    expires_at: datetime
    database: str


def _login_file(settings: Settings) -> Path:
    return settings.data_dir / "logins" / f"login-{getpass.getuser()}.json"


def login(store: Store, settings: Settings, name: str, password: str) -> SignIn:
    """Check the password, issue a short-lived token and keep it for this OS user."""
    database = settings.effective_database_url
    user = Passwords(store.engine).check(name, password)
    issued = Accounts(store.engine).issue_token(
        user, LOGIN_TTL_HOURS, label=f"traction login by os user {getpass.getuser()}"
    )
    sign_in = SignIn(user.name, issued.plaintext, issued.token.expires_at, database)
    path = _login_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(
            {
                "user": sign_in.user,
                "token": sign_in.token,
                "expires_at": sign_in.expires_at.isoformat(),
                "database": database,
            },
            handle,
        )
    return sign_in


def _saved(settings: Settings) -> SignIn | None:
    path = _login_file(settings)
    try:
        data = json.loads(path.read_text())
        return SignIn(
            data["user"],
            data["token"],
            datetime.fromisoformat(data["expires_at"]),
            data["database"],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def current_user(store: Store, settings: Settings) -> User:
    """The person signed in at this command line, checked against the store now (an expired,
    revoked or deactivated sign-in is refused)."""
    database = settings.effective_database_url
    saved = _saved(settings)
    if saved is None:
        raise NotSignedIn("nobody is signed in here; run `traction login` first")
    if saved.database != database:
        raise NotSignedIn(
            f"the sign-in of {saved.user} is for another store; run `traction login` again"
        )
    user = Accounts(store.engine).authenticate(saved.token, datetime.now(UTC))
    if user is None:
        raise NotSignedIn(
            f"the sign-in of {saved.user} has expired or was revoked; run `traction login` again"
        )
    return user


def authorized_user(store: Store, settings: Settings, permission: Permission, doing: str) -> User:
    """The signed-in person, whose role must hold ``permission`` for ``doing``."""
    user = current_user(store, settings)
    if permission not in ROLE_PERMISSIONS[Role(user.role)]:
        raise NotSignedIn(
            f"{user.name} is signed in as {user.role}, which may not {doing}; sign in as someone "
            "who may, with `traction login`"
        )
    return user


def documenting_user(store: Store, settings: Settings) -> User:
    """The signed-in person, who must be allowed to document (amend, sign, co-sign) notes."""
    return authorized_user(store, settings, Permission.DOCUMENT, "amend, sign or co-sign notes")


def signing_clinician(store: Store, settings: Settings) -> tuple[User, int]:
    """The signed-in clinician user and the clinician they sign as."""
    user = documenting_user(store, settings)
    if user.clinician_id is None:
        raise NotSignedIn(
            f"user {user.name} is not linked to a clinician, so cannot sign; an admin links it "
            "with `traction users add NAME --role clinician --clinician ID`"
        )
    return user, user.clinician_id


def logout(store: Store, settings: Settings) -> str | None:
    """Revoke the saved token and forget it; the name of who was signed in, if anyone."""
    saved = _saved(settings)
    if saved is None:
        return None
    accounts = Accounts(store.engine)
    for token, _user in accounts.tokens(saved.user):
        if token.token_sha256 == token_digest(saved.token) and token.id is not None:
            accounts.revoke_token(token.id)
    with contextlib.suppress(FileNotFoundError):
        _login_file(settings).unlink()
    return saved.user

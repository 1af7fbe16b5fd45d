"""People sign in with passwords: argon2 hashes, a lockout after five wrong ones, a CLI sign-in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest_db import CommandRunner
from sqlmodel import Session, select

from session.accounts import AccountError, Accounts, Role, User
from session.passwords import LOCKOUT, MAX_FAILURES, Passwords, SignInRefused, UserPassword
from session.store import Store
from traction.cli import app
from traction.exitcodes import Exit

GOOD = "correct horse battery"
T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
def passwords(store: Store) -> Passwords:
    Accounts(store.engine).create_user("dreyes", Role.CLINICIAN)
    pw = Passwords(store.engine)
    pw.set("dreyes", GOOD, now=T0)
    return pw


def test_the_right_password_signs_in_and_only_a_hash_is_stored(
    passwords: Passwords, store: Store
) -> None:
    user = passwords.check("dreyes", GOOD, now=T0)
    assert isinstance(user, User) and user.name == "dreyes"
    with Session(store.engine) as db:
        [row] = db.exec(select(UserPassword)).all()
    assert row.hash.startswith("$argon2id$") and GOOD not in row.hash


def test_wrong_password_and_unknown_user_get_the_same_answer(passwords: Passwords) -> None:
    with pytest.raises(SignInRefused, match="^wrong user name or password$"):
        passwords.check("dreyes", "not the password", now=T0)
    with pytest.raises(SignInRefused, match="^wrong user name or password$"):
        passwords.check("nobody", GOOD, now=T0)


def test_the_fifth_wrong_password_locks_the_account_until_the_lockout_ends(
    passwords: Passwords,
) -> None:
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(SignInRefused, match="wrong"):
            passwords.check("dreyes", "guess guess guess", now=T0)
    assert passwords.check("dreyes", GOOD, now=T0).name == "dreyes"  # 4 wrong: not locked
    for _ in range(MAX_FAILURES):
        with pytest.raises(SignInRefused, match="wrong"):
            passwords.check("dreyes", "guess guess guess", now=T0)
    with pytest.raises(SignInRefused, match="locked after 5 wrong passwords"):
        passwords.check("dreyes", GOOD, now=T0 + LOCKOUT - timedelta(seconds=1))
    assert passwords.check("dreyes", GOOD, now=T0 + LOCKOUT).name == "dreyes"


def test_a_reset_clears_the_lockout(passwords: Passwords) -> None:
    for _ in range(MAX_FAILURES):
        with pytest.raises(SignInRefused):
            passwords.check("dreyes", "guess guess guess", now=T0)
    passwords.set("dreyes", "another long phrase", now=T0)
    assert passwords.check("dreyes", "another long phrase", now=T0).name == "dreyes"


def test_a_deactivated_user_cannot_sign_in(passwords: Passwords, store: Store) -> None:
    Accounts(store.engine).deactivate("dreyes")
    with pytest.raises(SignInRefused, match="deactivated"):
        passwords.check("dreyes", GOOD, now=T0)


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("x" * 11, "must be 12 to 256 characters, got 11"),
        ("x" * 257, "must be 12 to 256 characters, got 257"),
        ("my-DREYES-password", "must not contain the user name"),
    ],
)
def test_password_rules_are_named(passwords: Passwords, password: str, rule: str) -> None:
    with pytest.raises(AccountError, match=rule):
        passwords.set("dreyes", password)


def test_password_rule_bounds_are_inclusive(passwords: Passwords) -> None:
    passwords.set("dreyes", "y" * 12)
    passwords.set("dreyes", "y" * 256)
    assert passwords.check("dreyes", "y" * 256).name == "dreyes"


def test_cli_login_whoami_logout(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRACTION_DATABASE_URL", db_url)
    runner = CommandRunner()

    def invoke(*args: str, stdin: str | None = None) -> tuple[int, str]:
        result = runner.invoke(app, list(args), input=stdin)
        return result.exit_code, result.output

    assert invoke("users", "add", "dreyes", "--role", "clinician")[0] == 0
    code, out = invoke("whoami")
    assert code == Exit.USAGE and "run `traction login` first" in out
    code, out = invoke("users", "passwd", "dreyes", "--password-stdin", stdin="short\n")
    assert code == Exit.USAGE and "12 to 256 characters" in out
    code, out = invoke("users", "passwd", "dreyes", "--password-stdin", stdin=GOOD + "\n")
    assert code == 0, out
    code, out = invoke("login", "dreyes", "--password-stdin", stdin="wrong password!\n")
    assert code == Exit.USAGE and "wrong user name or password" in out
    code, out = invoke("login", "dreyes", "--password-stdin", stdin=GOOD + "\n")
    assert code == 0 and "signed in as dreyes for 8 hours" in out, out
    [file] = (tmp_path / "logins").iterdir()
    assert file.stat().st_mode & 0o077 == 0  # readable by this OS user only
    assert invoke("whoami") == (0, "dreyes (clinician)\n")
    code, out = invoke("logout")
    assert code == 0 and "dreyes signed out" in out
    code, out = invoke("whoami")
    assert code == Exit.USAGE and "run `traction login`" in out

"""Users and tokens on SQLite and PostgreSQL: tokens stored only as digests, refused when expired,
revoked or their user deactivated."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from conftest_db import CommandRunner, dispose_engines
from sqlalchemy.engine import Engine

from session.accounts import AccountError, Accounts, LastAdmin, Role, token_digest
from session.db import make_engine
from session.models import Discipline
from session.store import Store
from traction.commands.accounts import tokens_app, users_app
from traction.exitcodes import Exit


@pytest.fixture
def accounts(engine: Engine) -> Accounts:
    return Accounts(engine)


def test_an_issued_token_authenticates_its_user(accounts: Accounts) -> None:
    accounts.create_user("dana", Role.TECHNICIAN)
    issued = accounts.issue_token("dana", ttl_hours=8, label="room 2")
    user = accounts.authenticate(issued.plaintext)
    assert user is not None and user.name == "dana" and user.role == "technician"
    assert issued.token.expires_at - issued.token.created_at == timedelta(hours=8)


def test_only_the_digest_is_stored_never_the_token(accounts: Accounts, engine: Engine) -> None:
    accounts.create_user("dana", Role.BILLING)
    issued = accounts.issue_token("dana", ttl_hours=1)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM api_tokens")).mappings().all()
    assert len(rows) == 1
    stored = " ".join(str(v) for v in rows[0].values())
    assert issued.plaintext not in stored
    assert rows[0]["token_sha256"] == token_digest(issued.plaintext)


def test_unknown_malformed_expired_and_revoked_tokens_are_refused(accounts: Accounts) -> None:
    accounts.create_user("sam", Role.CLINICIAN)
    assert accounts.authenticate("trk_not-a-token") is None
    assert accounts.authenticate("") is None
    past = datetime.now(UTC) - timedelta(hours=3)
    expired = accounts.issue_token("sam", ttl_hours=2, now=past)
    assert accounts.authenticate(expired.plaintext) is None
    live = accounts.issue_token("sam", ttl_hours=2)
    assert accounts.authenticate(live.plaintext) is not None
    accounts.revoke_token(live.token.id or 0)
    assert accounts.authenticate(live.plaintext) is None
    [revoked] = [t for t, _ in accounts.tokens("sam") if t.id == live.token.id]
    assert revoked.revoked_at is not None


def test_a_deactivated_users_tokens_stop_working(accounts: Accounts) -> None:
    accounts.create_user("lee", Role.TECHNICIAN)
    issued = accounts.issue_token("lee", ttl_hours=1)
    accounts.deactivate("lee")
    assert accounts.authenticate(issued.plaintext) is None
    with pytest.raises(AccountError, match="deactivated"):
        accounts.issue_token("lee", ttl_hours=1)


def test_the_last_active_admin_cannot_be_deactivated(accounts: Accounts) -> None:
    accounts.create_user("ana", Role.ADMIN)
    accounts.create_user("ben", Role.ADMIN)
    accounts.create_user("cal", Role.BILLING)
    accounts.deactivate("ana")
    with pytest.raises(LastAdmin, match="'ben' is the last active admin; add another admin"):
        accounts.deactivate("ben")
    assert accounts.get_user("ben").active
    accounts.deactivate("cal")  # other roles go as they please
    accounts.deactivate("ana")  # an inactive admin counts for nothing, and may be deactivated again


def test_bad_requests_name_the_field_and_rule(accounts: Accounts) -> None:
    with pytest.raises(AccountError, match="role 'nurse' must be one of technician"):
        accounts.create_user("kim", "nurse")
    accounts.create_user("kim", Role.BILLING)
    with pytest.raises(AccountError, match="'kim' already exists"):
        accounts.create_user("kim", Role.BILLING)
    with pytest.raises(AccountError, match="clinician_id 99 is not a clinician"):
        accounts.create_user("pat", Role.CLINICIAN, clinician_id=99)
    with pytest.raises(AccountError, match="ttl_hours 0 must be above 0"):
        accounts.issue_token("kim", ttl_hours=0)
    with pytest.raises(AccountError, match="no user named 'nobody'"):
        accounts.issue_token("nobody", ttl_hours=1)
    with pytest.raises(AccountError, match="no token with id 12345"):
        accounts.revoke_token(12345)


def test_a_clinician_user_links_to_their_clinician_row(accounts: Accounts, store: Store) -> None:
    clinician = store.add_clinician("Dana Reyes", "PT, DPT", Discipline.PT)
    user = accounts.create_user("dreyes", Role.CLINICIAN, clinician_id=clinician.id)
    assert accounts.get_user("dreyes").clinician_id == clinician.id == user.clinician_id
    assert [u.name for u in accounts.users()] == ["dreyes"]


# --- the users and tokens commands, through Typer's runner -----------------------------------------

cli = typer.Typer()
cli.add_typer(users_app, name="users")
cli.add_typer(tokens_app, name="tokens")


@pytest.fixture
def cli_env(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("TRACTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRACTION_DATABASE_URL", db_url)
    monkeypatch.delenv("TRACTION_CONFIG", raising=False)
    yield tmp_path
    dispose_engines()


def test_users_and_tokens_commands_print_a_token_once_and_refuse_it_once_revoked(
    cli_env: Path,
) -> None:
    runner = CommandRunner()
    added = runner.invoke(cli, ["users", "add", "ops", "--role", "admin"])
    assert added.exit_code == 0, added.output
    created = runner.invoke(cli, ["tokens", "create", "ops", "--ttl-hours", "2", "--label", "x"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[0]
    accounts = Accounts(make_engine(os.environ["TRACTION_DATABASE_URL"]))
    assert accounts.authenticate(token) is not None
    listed = runner.invoke(cli, ["tokens", "list"])
    assert "valid" in listed.stdout and token not in listed.stdout
    assert runner.invoke(cli, ["tokens", "revoke", "1"]).exit_code == 0
    assert accounts.authenticate(token) is None
    assert "revoked" in runner.invoke(cli, ["tokens", "list", "--user", "ops"]).stdout
    last = runner.invoke(cli, ["users", "deactivate", "ops"])
    assert last.exit_code == Exit.USAGE and "last active admin" in last.output
    assert runner.invoke(cli, ["users", "add", "ops2", "--role", "admin"]).exit_code == 0
    assert runner.invoke(cli, ["users", "deactivate", "ops"]).exit_code == 0
    assert " no " in runner.invoke(cli, ["users", "list"]).stdout
    accounts.engine.dispose()


def test_account_commands_fail_cleanly_with_usage_exit_codes(cli_env: Path) -> None:
    runner = CommandRunner()
    runner.invoke(cli, ["users", "add", "ops", "--role", "admin"])
    again = runner.invoke(cli, ["users", "add", "ops", "--role", "admin"])
    assert again.exit_code == Exit.USAGE and "already exists" in again.output
    assert "Traceback" not in again.output
    bad_role = runner.invoke(cli, ["users", "add", "kim", "--role", "nurse"])
    assert bad_role.exit_code == 2 and "nurse" in bad_role.output
    missing = runner.invoke(cli, ["tokens", "revoke", "9"])
    assert missing.exit_code == Exit.USAGE and "no token with id 9" in missing.output
    nobody = runner.invoke(cli, ["tokens", "create", "nobody"])
    assert nobody.exit_code == Exit.USAGE and "no user named 'nobody'" in nobody.output

"""Opening the session database, and keeping its schema in step with the code.

SQLite in WAL mode in the per-user data directory is the default; a ``postgresql+psycopg://`` URL
selects a clinic's shared server. The schema is made and changed only by the Alembic migrations in
``session/migrations``; :func:`check_schema` refuses a database this code does not match, so an old
program never writes to a newer schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import platformdirs
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000


class SchemaError(Exception):
    """The database's schema does not match this version of the software; the message says what
    to do."""


def default_url() -> str:
    """SQLite file ``traction.db`` in the per-user data directory (created if missing)."""
    data_dir = Path(platformdirs.user_data_dir("traction", appauthor=False))
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / 'traction.db'}"


def make_engine(url: str | None = None) -> Engine:
    """An engine for ``url`` (default: :func:`default_url`).

    SQLite connections get WAL journaling, ``synchronous=NORMAL`` (a committed batch survives a
    process crash; only a power cut can lose the last few), a busy timeout and foreign keys.
    """
    url = url or default_url()
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic configuration built in code, pointing at the migrations inside this package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def upgrade(target: str | Engine | None = None, revision: str = "head") -> str | None:
    """Migrate the database at ``target`` (a URL or an engine; default :func:`default_url`) to
    ``revision``; return the revision it is at afterwards."""
    engine = target if isinstance(target, Engine) else make_engine(target)
    try:
        command.upgrade(alembic_config(engine), revision)
    except CommandError as exc:
        raise SchemaError(f"cannot upgrade {_where(engine)} to {revision}: {exc}") from None
    return current_revision(engine)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "session/migrations has no revisions"
    return head


def check_schema(engine: Engine) -> str:
    """Refuse a database this code cannot use; return its revision when it is current.

    Newer than this code (another workstation upgraded the shared server): upgrade the software.
    Older or empty: run ``traction db upgrade``.
    """
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return head
    where = _where(engine)
    if current is None:
        raise SchemaError(
            f"{where} has no traction schema (expected revision {head}); "
            "run `traction db upgrade` to create it"
        )
    scripts = ScriptDirectory.from_config(alembic_config())
    try:
        known = scripts.get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        raise SchemaError(
            f"{where} is at schema revision {current}, newer than this software knows "
            f"(latest {head}); upgrade the traction software before using this database"
        )
    raise SchemaError(
        f"{where} is at schema revision {current}, older than this software needs ({head}); "
        "run `traction db upgrade`"
    )


def _where(engine: Engine) -> str:
    return f"database {engine.url.render_as_string(hide_password=True)}"

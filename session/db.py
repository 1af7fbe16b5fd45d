"""Opening the session database, and keeping its schema in step with the code.

SQLite in WAL mode in the per-user data directory is the default; a ``postgresql+psycopg://`` URL
selects a clinic's shared server. The schema is made and changed only by the Alembic migrations in
``session/migrations``; :func:`check_schema` refuses a database this code does not match, so an old
program never writes to a newer schema.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from session.errors import SchemaError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000
SCHEMA_HEAD = "plans"
"""The newest revision in ``migrations/versions``, so that opening a current database costs one
query and no Alembic import; a test keeps it equal to Alembic's own head (update it with every
new migration)."""


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


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    """An exclusive OS lock on ``path`` (created if missing), held by this open file only."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _use_wal(cursor: Any) -> None:
    """Put the file in WAL mode, once, under an OS lock of its own.

    WAL is a property of the file: after the first switch every connection finds it set. The
    switch itself needs the file to itself, and several processes switching a new file at once
    fail with "database is locked" whatever the busy timeout (six workstations' first start on
    a loaded machine). Not the schema lock's file: a connection opened under that lock would
    wait on itself."""
    if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    main_file = next(row[2] for row in cursor.execute("PRAGMA database_list") if row[1] == "main")
    if not main_file:  # in memory: no file, and no one else to race
        cursor.execute("PRAGMA journal_mode=WAL")
        return
    with _file_lock(f"{main_file}.wal-lock"):
        cursor.execute("PRAGMA journal_mode=WAL")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic configuration built in code, pointing at the migrations inside this package."""
    from alembic.config import Config  # Alembic loads only to migrate or diagnose

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


@contextlib.contextmanager
def schema_lock(engine: Engine) -> Iterator[Connection | None]:
    """Hold the store-wide lock under which the schema is made or changed.

    PostgreSQL: a session advisory lock keyed on the schema the store lives in, held by the
    connection yielded (run the migration on it). SQLite: an OS lock on a file beside the
    database. So two first starts, or two ``traction db upgrade``, run one after the other and the
    second finds the work done.
    """
    backend = engine.dialect.name
    if backend == "postgresql":
        with engine.connect() as conn:
            conn.execute(
                sa.text("SELECT pg_advisory_lock(hashtext('traction-schema:' || current_schema()))")
            )
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(
                    sa.text(
                        "SELECT pg_advisory_unlock(hashtext('traction-schema:' || current_schema()))"
                    )
                )
                conn.commit()
        return
    database = engine.url.database if backend == "sqlite" else None
    if not database or database == ":memory:":
        yield None
        return
    with _file_lock(f"{database}.schema-lock"):
        yield None


def upgrade(
    target: str | Engine | None = None, revision: str = "head", *, only_if_empty: bool = False
) -> str | None:
    """Migrate the database at ``target`` (a URL or an engine; default :func:`default_url`) to
    ``revision`` under :func:`schema_lock`; return the revision it is at afterwards.

    ``only_if_empty``: create the schema of a database that has none, and leave any other as it is
    (the service's start: it never changes a schema other workstations may be using)."""
    if not isinstance(target, Engine):
        engine = make_engine(target)
        try:
            return upgrade(engine, revision, only_if_empty=only_if_empty)
        finally:
            engine.dispose()
    from alembic import command
    from alembic.util.exc import CommandError

    engine = target
    with schema_lock(engine) as conn:
        if only_if_empty and current_revision(engine) is not None:
            return current_revision(engine)
        config = alembic_config(engine)
        if conn is not None:
            config.attributes["connection"] = conn
        try:
            command.upgrade(config, revision)
        except CommandError as exc:
            raise SchemaError(f"cannot upgrade {_where(engine)} to {revision}: {exc}") from None
    return current_revision(engine)


def prepare(engine: Engine) -> str:
    """Make a store ready for use without changing anything a user did not ask for: create the
    schema of an empty database, check any other (an older one asks for ``traction db upgrade``,
    a newer one for newer software). Returns the schema revision."""
    if stamped_revision(engine) == SCHEMA_HEAD:  # the usual case: one query, no Alembic import
        return SCHEMA_HEAD
    if current_revision(engine) is None:
        upgrade(engine, only_if_empty=True)
    return check_schema(engine)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def stamped_revision(engine: Engine) -> str | None:
    """The revision recorded in ``alembic_version`` with one plain query (None: no schema, or
    not exactly one head recorded)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    return str(rows[0][0]) if len(rows) == 1 else None


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "session/migrations has no revisions"
    return head


def check_schema(engine: Engine) -> str:
    """Refuse a database this code cannot use; return its revision when it is current.

    Newer than this code (another workstation upgraded the shared server): upgrade the software.
    Older or empty: run ``traction db upgrade``.
    """
    if stamped_revision(engine) == SCHEMA_HEAD:
        return SCHEMA_HEAD
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

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

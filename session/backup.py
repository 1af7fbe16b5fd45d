"""Backing up and restoring the session store, and saying what a copy really holds.

A plain file copy of a SQLite store taken while sessions run misses everything still in the WAL
file (sealed sessions included), so a backup uses SQLite's online backup API, which copies a
consistent snapshot through SQLite itself. A PostgreSQL store is dumped with ``pg_dump`` in its
custom format and restored with ``pg_restore``, the tools PostgreSQL ships for exactly this.

Every backup and restore is followed by a :class:`CopyReport`: how many sessions, samples and
seals the copy holds, the newest session, and every seal that no longer matches, so nobody learns
on the day they need a backup that it is empty.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from session.db import check_schema, make_engine
from session.models import StoredSample, TreatmentSession
from session.seal import verify
from session.store import Store, StoreError


class BackupError(StoreError):
    """A backup or restore could not be made; the message says why and what to do."""


@dataclass(frozen=True)
class CopyReport:
    """What a store (or a copy of one) holds, and whether its seals still match."""

    where: str
    sessions: int
    unfinished: int
    samples: int
    sealed: int
    newest_id: str | None
    newest_started_at: datetime | None
    changed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.changed


def inspect_store(engine: Engine) -> CopyReport:
    """Count what ``engine``'s store holds and verify every sealed session's seal."""
    check_schema(engine)
    with engine.connect() as conn:
        counts = _Counts.read(conn)
    return counts.report(engine)


def _inspect(engine: Engine) -> CopyReport:
    """:func:`inspect_store` on an engine made for it, closed afterwards."""
    try:
        return inspect_store(engine)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class _Counts:
    sessions: int
    unfinished: int
    samples: int
    sealed_ids: list[str]
    newest_id: str | None
    newest_started_at: datetime | None

    @classmethod
    def read(cls, conn: sa.Connection) -> _Counts:
        count = sa.select(sa.func.count())
        newest = conn.execute(
            sa.select(_SESSIONS.c.id, _SESSIONS.c.started_at)
            .order_by(_SESSIONS.c.started_at.desc(), _SESSIONS.c.id.desc())
            .limit(1)
        ).first()
        return cls(
            sessions=int(conn.execute(count.select_from(_SESSIONS)).scalar_one()),
            unfinished=int(
                conn.execute(
                    count.select_from(_SESSIONS).where(_SESSIONS.c.outcome.is_(None))
                ).scalar_one()
            ),
            samples=int(conn.execute(count.select_from(_SAMPLES)).scalar_one()),
            sealed_ids=list(
                conn.execute(
                    sa.select(_SESSIONS.c.id).where(_SESSIONS.c.seal_digest.is_not(None))
                ).scalars()
            ),
            newest_id=newest.id if newest else None,
            newest_started_at=newest.started_at if newest else None,
        )

    def report(self, engine: Engine) -> CopyReport:
        """The report, verifying the seals of the sessions counted (a sealed session never
        changes, so checking it later checks the same rows)."""
        store = Store(engine)
        changed = []
        for session_id in self.sealed_ids:
            result = verify(store, session_id)
            if not result.ok:
                changed.append(f"{session_id}: " + "; ".join(result.differences))
        return CopyReport(
            where=engine.url.render_as_string(hide_password=True),
            sessions=self.sessions,
            unfinished=self.unfinished,
            samples=self.samples,
            sealed=len(self.sealed_ids),
            newest_id=self.newest_id,
            newest_started_at=self.newest_started_at,
            changed=changed,
        )


_SESSIONS: sa.Table = TreatmentSession.__table__  # type: ignore[attr-defined]
_SAMPLES: sa.Table = StoredSample.__table__  # type: ignore[attr-defined]


def backup(source_url: str, destination: Path) -> CopyReport:
    """Copy the store at ``source_url`` to ``destination`` (which must not exist yet) while it may
    be in use, then inspect the copy."""
    if destination.exists():
        raise BackupError(f"{destination} already exists; choose a new file name for the backup")
    destination.parent.mkdir(parents=True, exist_ok=True)
    url = sa.make_url(source_url)
    if url.get_backend_name() == "sqlite":
        return _backup_sqlite(_sqlite_path(url), destination)
    if url.get_backend_name() == "postgresql":
        return _backup_postgres(url, destination)
    raise BackupError(f"cannot back up a {url.get_backend_name()} store")


def restore(backup_file: Path, target_url: str, *, replace: bool = False) -> CopyReport:
    """Restore ``backup_file`` into the store at ``target_url``, then inspect the result.

    A target that already holds sessions is refused unless ``replace`` is given; a replaced SQLite
    store is kept beside it as ``<name>.before-restore``.
    """
    if not backup_file.is_file():
        raise BackupError(f"no backup file at {backup_file}")
    url = sa.make_url(target_url)
    if url.get_backend_name() == "sqlite":
        return _restore_sqlite(backup_file, _sqlite_path(url), replace=replace)
    if url.get_backend_name() == "postgresql":
        return _restore_postgres(backup_file, url, replace=replace)
    raise BackupError(f"cannot restore into a {url.get_backend_name()} store")


# --- SQLite ---------------------------------------------------------------------------------------


def _sqlite_path(url: sa.URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite store cannot be backed up or restored")
    return Path(url.database)


def _readonly_engine(path: Path) -> Engine:
    """An engine on a SQLite file that will not switch it to WAL or leave side files behind."""
    return sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")


def _copy_sqlite(source: Path, destination: Path) -> None:
    """SQLite's online backup: a consistent snapshot including what is still in the WAL file."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(destination)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        dst.commit()
    finally:
        dst.close()
        src.close()


def _backup_sqlite(source: Path, destination: Path) -> CopyReport:
    if not source.is_file():
        raise BackupError(f"no store at {source}; nothing to back up")
    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        _copy_sqlite(source, partial)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"could not back up {source}: {exc}") from None
    os.replace(partial, destination)  # a backup file either exists whole or not at all
    return _inspect(_readonly_engine(destination))


def _restore_sqlite(backup_file: Path, target: Path, *, replace: bool) -> CopyReport:
    report = _inspect(_readonly_engine(backup_file))  # refuse a broken backup before touching
    if target.exists():
        held = _inspect(make_engine(f"sqlite:///{target}")).sessions
        if held and not replace:
            raise BackupError(
                f"{target} already holds {held} session(s); pass --replace to restore over it "
                "(the current store is kept as a .before-restore file)"
            )
        aside = target.with_name(target.name + ".before-restore")
        _copy_sqlite(target, aside)
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{backup_file}?mode=ro", uri=True)
    dst = sqlite3.connect(target, timeout=30)
    try:
        src.backup(dst)  # through SQLite, so an existing WAL file cannot resurrect old pages
    finally:
        dst.close()
        src.close()
    restored = _inspect(make_engine(f"sqlite:///{target}"))
    if (restored.sessions, restored.samples) != (report.sessions, report.samples):
        raise BackupError(
            f"restore into {target} holds {restored.sessions} sessions and {restored.samples} "
            f"samples, the backup {report.sessions} and {report.samples}"
        )
    return restored


# --- PostgreSQL -----------------------------------------------------------------------------------


def _libpq_args(url: sa.URL) -> tuple[list[str], dict[str, str]]:
    """Connection arguments for pg_dump/pg_restore, with the password in the environment."""
    args = ["--host", url.host or "127.0.0.1", "--port", str(url.port or 5432)]
    if url.username:
        args += ["--username", url.username]
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return args, env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} is not installed; install PostgreSQL's client tools "
            "(Debian: apt-get install postgresql-client) and retry"
        )
    return path


def _run(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(
            f"{Path(command[0]).name} failed (exit {result.returncode}): {result.stderr.strip()}"
        )


def _backup_postgres(url: sa.URL, destination: Path) -> CopyReport:
    """pg_dump from a snapshot exported by our own transaction, so the counts reported are
    exactly what the archive holds."""
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        return _dump_postgres(engine, url, destination)
    finally:
        engine.dispose()


def _dump_postgres(engine: Engine, url: sa.URL, destination: Path) -> CopyReport:
    check_schema(engine)
    args, env = _libpq_args(url)
    partial = destination.with_name(destination.name + ".partial")
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
            counts = _Counts.read(conn)
            _run(
                [_tool("pg_dump"), *args, "--format=custom", "--no-owner"]
                + [f"--snapshot={snapshot}", "--file", str(partial), url.database or "postgres"],
                env,
            )
    os.replace(partial, destination)
    _run([_tool("pg_restore"), "--list", str(destination)], env)  # the archive reads back
    return counts.report(engine)


def _restore_postgres(backup_file: Path, url: sa.URL, *, replace: bool) -> CopyReport:
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        return _load_postgres(engine, backup_file, url, replace=replace)
    finally:
        engine.dispose()


def _load_postgres(engine: Engine, backup_file: Path, url: sa.URL, *, replace: bool) -> CopyReport:
    with engine.connect() as conn:
        has_schema = sa.inspect(conn).has_table("sessions")
    if has_schema:
        held = inspect_store(engine).sessions
        if held and not replace:
            raise BackupError(
                f"{url.database} already holds {held} session(s); restore into an empty database "
                "or pass --replace"
            )
    args, env = _libpq_args(url)
    flags = ["--clean", "--if-exists"] if has_schema else []
    _run(
        [_tool("pg_restore"), *args, "--no-owner", *flags, "--dbname", url.database or "postgres"]
        + [str(backup_file)],
        env,
    )
    return inspect_store(engine)

"""Alembic environment: runs against the engine handed over by ``session.db`` (or sqlalchemy.url)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from sqlmodel import SQLModel

import session.accounts  # noqa: F401  (registers the tables on SQLModel.metadata)
import session.audit  # noqa: F401
import session.console_sessions  # noqa: F401
import session.facts  # noqa: F401
import session.lockouts  # noqa: F401
import session.models  # noqa: F401
import session.passwords  # noqa: F401
import session.plans  # noqa: F401

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    held = config.attributes.get("connection")  # the one holding the schema lock (session.db)
    if held is not None:
        _run(held)
        return
    engine = config.attributes.get("engine") or sa.create_engine(
        config.get_main_option("sqlalchemy.url") or ""
    )
    with engine.connect() as connection:
        _run(connection)


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()


if context.is_offline_mode():
    raise SystemExit("traction migrations run online only: use `traction db upgrade`")
run_migrations_online()

"""What every command needs: settings, the session store they point at, and (for the commands
that run treatments) the workstation's identity with its unfinished sessions recovered.

Only settings and the database engine load here: a command that reads a listing pays for no
ORM models, recovery or logging (each loads inside the function that needs it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from session.db import make_engine, prepare
from traction.settings import Settings, load_settings

if TYPE_CHECKING:
    from session.identity import WorkstationIdentity
    from session.recovery import RecoveryReport
    from session.store import Store


_closers: list[Callable[[], None]] = []
"""How to give back what this command opened (:func:`close_opened`), newest first."""


def settings_from(config: Path | None) -> Settings:
    return load_settings(config)


def close_opened() -> None:
    """Close every store and engine the command opened, as it ends (``traction.cli`` calls this):
    a store's batch writer holds a connection outside the engine's pool, and a server counts
    connections, so none is left for the process exit or a garbage collector to drop."""
    while _closers:
        _closers.pop()()


def open_engine(settings: Settings) -> Engine:
    """An engine on the configured store, checked against this software's schema.

    An empty database (a fresh workstation) gets the schema created; an older one must be upgraded
    on purpose with ``traction db upgrade``; a newer one is refused (upgrade the software).
    """
    engine = make_engine(settings.effective_database_url)
    _closers.append(engine.dispose)
    prepare(engine)
    return engine


def open_store(settings: Settings) -> Store:
    """The store on :func:`open_engine`'s checked engine."""
    from session.store import Store

    store = Store(open_engine(settings))
    _closers.append(store.close)
    return store


def claim_workstation(
    store: Store, data_dir: Path, label: str
) -> tuple[WorkstationIdentity, RecoveryReport]:
    """This workstation's identity (made on first start, registered in the store), and the
    sessions of it whose process is provably gone, recorded to their end. Every entry point that
    runs treatments (``run``, ``demo``, ``serve``) starts here."""
    import structlog

    from session.identity import load_identity, register
    from session.recovery import recover

    identity = load_identity(data_dir, label)
    register(store.engine, identity)
    report = recover(store, identity)
    for session_id in report.closed:
        structlog.get_logger(__name__).warning(
            "recovered an unfinished session", session=session_id
        )
    return identity, report

"""What every command needs: settings, and the session store they point at."""

from __future__ import annotations

from pathlib import Path

from session.db import SchemaError, check_schema, current_revision, make_engine, upgrade
from session.store import Store
from traction.settings import Settings, load_settings


def settings_from(config: Path | None) -> Settings:
    return load_settings(config)


def open_store(settings: Settings) -> Store:
    """The store, checked against this software's schema.

    An empty database (a fresh workstation) gets the schema created; an older one must be upgraded
    on purpose with ``traction db upgrade``; a newer one is refused (upgrade the software).
    """
    engine = make_engine(settings.effective_database_url)
    try:
        check_schema(engine)
    except SchemaError:
        if current_revision(engine) is not None:
            raise
        upgrade(engine)
    return Store(engine)

"""Database fixtures: every store/recorder test runs on a SQLite file and on PostgreSQL.

PostgreSQL is the server named by ``TRACTION_TEST_PG_URL`` (default: the local server's
``traction_test`` database, created if missing); each test gets a fresh schema, dropped after.
If the server cannot be reached the PostgreSQL tests fail and say so; set ``TRACTION_TEST_PG=skip``
to skip them on purpose.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from devices.records import Started
from session.db import make_engine, upgrade
from session.models import Discipline
from session.store import SessionContext, Store

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/traction_test"
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


def pg_base_url() -> sa.URL:
    return sa.make_url(os.environ.get("TRACTION_TEST_PG_URL", DEFAULT_PG_URL))


def _ensure_pg_database(url: sa.URL) -> None:
    """Create the test database if it is missing (several test runs may race to do it)."""
    conninfo = f"host={url.host} port={url.port or 5432} user={url.username} dbname=postgres"
    if url.password:
        conninfo += f" password={url.password}"
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)
        ).fetchone()
        if not exists:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(f'CREATE DATABASE "{url.database}"')


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A URL to an empty database: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'traction.db'}"
        return
    if os.environ.get("TRACTION_TEST_PG") == "skip":
        pytest.skip("PostgreSQL tests skipped on purpose (TRACTION_TEST_PG=skip)")
    base = pg_base_url()
    try:
        _ensure_pg_database(base)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {base.render_as_string(hide_password=True)} is unreachable ({exc}). "
            "Start it (see .ci/run), point TRACTION_TEST_PG_URL at one, or set "
            "TRACTION_TEST_PG=skip to skip the PostgreSQL half of the suite on purpose.",
            pytrace=False,
        )
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = base.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a database migrated to the head revision."""
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def store(engine: Engine) -> Store:
    return Store(engine)


@pytest.fixture
def context(store: Store) -> SessionContext:
    """A patient, a treating PT and a supervising PT, ready to start a lumbar session."""
    patient = store.add_patient("MRN-0001", 82.0, payer_id="medicare")
    treating = store.add_clinician("Dana Reyes", "PTA", Discipline.PT, "1000000001")
    supervising = store.add_clinician("Sam Okafor", "PT, DPT", Discipline.PT, "1000000002")
    assert patient.id is not None and treating.id is not None and supervising.id is not None
    return SessionContext(
        patient_id=patient.id,
        treating_clinician_id=treating.id,
        supervising_clinician_id=supervising.id,
        workstation="ws-test",
        regions=("lumbar",),
        diagnosis_codes=("M51.16",),
        medical_necessity="Radiculopathy; traction to reduce nerve root compression per POC goal 2.",
        plan_of_care_ref="POC-2024-17",
        patient_position="supine",
        pull_angle_deg=20.0,
    )


def make_started(run_id: str | None = None, t: float = 0.0) -> Started:
    """A ``Started`` record as the control loop publishes it."""
    return Started(
        run_id=run_id or str(uuid.uuid4()),
        t=t,
        wall=datetime.now(UTC),
        table="modbus+tcp://127.0.0.1:5020?unit=1&map=generic-v1",
        device={
            "model": "LT-200",
            "serial_number": "SN-4711",
            "firmware": "2.3.1",
            "rated_max_force_n": 890.0,
            "manufacturer": "Tractek",
        },
        profile={"kind": "intermittent", "target_n": 300.0, "rest_n": 120.0, "hold_s": 60.0},
        limits={"max_force_n": 445.0, "body_weight_fraction": 0.5},
        tick_hz=50.0,
        time_scale=1.0,
    )

"""Database fixtures: every store/recorder test runs on a SQLite file and on PostgreSQL.

PostgreSQL is the server named by ``TRACTION_TEST_PG_URL`` (default: the local server's
``traction_test`` database, created if missing); each test gets a fresh schema, dropped after.
If the server cannot be reached the PostgreSQL tests fail and say so; set ``TRACTION_TEST_PG=skip``
to skip them on purpose.
"""

from __future__ import annotations

import contextlib
import gc
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner, Result

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


@contextlib.contextmanager
def database(backend: str, tmp: Path) -> Iterator[str]:
    """A URL to an empty database on ``backend``: a fresh SQLite file in ``tmp``, or a fresh
    PostgreSQL schema (dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'traction.db'}"
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked ``backend("sqlite")`` or ``backend("postgresql")`` runs on that backend only.

    For end-to-end scenarios (a real session at a scaled clock, then commands on its record):
    what they add is the scenario, and each backend's store is proven by the store, recorder and
    API tests that run on both. Running them once halves the suite's longest tests; the marked
    scenarios are spread over the two backends (TESTING.md)."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("backend")
        if marker is None:
            keep.append(item)
            continue
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        backend = params.get("db_url", params.get("module_db_url"))
        if backend is None or marker.args[0] not in ("sqlite", "postgresql"):
            raise pytest.UsageError(
                f"{item.nodeid}: backend({marker.args[0]!r}) needs a db_url or module_db_url fixture and "
                "'sqlite' or 'postgresql'"
            )
        (keep if backend == marker.args[0] else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a fresh SQLite file, or a fresh PostgreSQL schema."""
    with database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(params=BACKENDS, scope="module")
def module_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One empty database per test module and backend, for modules that share one running app
    (the API tests): each such module runs once on SQLite and once on PostgreSQL."""
    with database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


def dispose_engines() -> None:
    """Close the connections of every store and engine still alive.

    Commands run in-process (Typer's runner) open the store and leave it to the process exit; on
    PostgreSQL the garbage collector would then drop open connections, which psycopg reports as a
    ResourceWarning in whichever test happens to be running. A store's batch writer holds a
    connection outside the engine's pool, so stores are closed first.
    """
    alive = gc.get_objects()
    for obj in alive:
        if isinstance(obj, Store):
            obj.close()
    for obj in alive:
        if isinstance(obj, Engine):
            obj.dispose()


@pytest.fixture(autouse=True, scope="module")
def collect_garbage_per_module() -> Iterator[None]:
    """Collect garbage as each test module ends, after its own fixtures are torn down: a
    connection the module leaves open then fails that module's last test, not whichever test
    of another module the garbage collector happens to interrupt."""
    yield
    gc.collect()


class CommandRunner(CliRunner):
    """Typer's runner, closing the connections each command leaves behind as it returns (see
    :func:`dispose_engines`), so a later garbage collection cannot fail an unrelated test."""

    def invoke(self, *args: Any, **kwargs: Any) -> Result:
        try:
            return super().invoke(*args, **kwargs)
        finally:
            dispose_engines()


def query(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on the database at ``url`` (either backend), for tests that look or tamper
    underneath the product, as someone with database access would."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a database migrated to the head revision."""
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def store(engine: Engine) -> Iterator[Store]:
    store = Store(engine)
    yield store
    store.close()  # its batch writer holds a connection outside the engine's pool


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

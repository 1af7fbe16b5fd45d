"""Listing sessions at a clinic's volume: keyset pages in the store, the CLI and the API."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from api_support import TestClient, World, make_world, running_client
from conftest_db import CommandRunner, make_started

from devices.records import Finished, Outcome
from session.store import SessionContext, SessionCursor, SessionQuery, Store, StoreError
from traction.cli import COMMANDS, SESSIONS, Entry, app, load_command

DAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def add_sessions(store: Store, context: SessionContext, count: int, same_minute: int = 0) -> None:
    """``count`` finished sessions an hour apart; the first ``same_minute`` share one start, so
    pages must break ties by id."""
    for i in range(count):
        wall = DAY + timedelta(hours=0 if i < same_minute else i)
        started = make_started(f"run-{i:04d}")
        started = type(started)(**{**started.__dict__, "wall": wall})
        store.create_session(started, context)
        outcome = Outcome.TRIPPED if i % 3 == 0 else Outcome.COMPLETED
        store.finish(Finished(started.run_id, 1.0, wall + timedelta(minutes=20), outcome, "", 0))


def walk(
    store: Store, limit: int, newest_first: bool, query: SessionQuery | None = None
) -> list[str]:
    ids: list[str] = []
    after = None
    while True:
        page = store.list_sessions(query, limit=limit, after=after, newest_first=newest_first)
        ids += [row.id for row in page]
        if len(page) < limit:
            return ids
        after = page[-1].cursor


def test_keyset_pages_visit_every_session_once_in_order(
    store: Store, context: SessionContext
) -> None:
    add_sessions(store, context, 23, same_minute=5)
    oldest_first = store.session_ids()
    assert walk(store, 4, newest_first=False) == oldest_first
    assert walk(store, 4, newest_first=True) == oldest_first[::-1]
    assert walk(store, 50, newest_first=True) == oldest_first[::-1]
    tripped = SessionQuery(outcome=Outcome.TRIPPED)
    assert walk(store, 3, newest_first=True, query=tripped) == [
        sid for sid in oldest_first[::-1] if int(sid[-4:]) % 3 == 0
    ]
    assert store.count_sessions(tripped) == 8


def test_a_page_holds_the_listed_columns_and_the_patients_reference(
    store: Store, context: SessionContext
) -> None:
    add_sessions(store, context, 2)
    [row] = store.list_sessions(limit=1, newest_first=True)
    assert row.id == "run-0001" and row.patient_reference == "MRN-0001"
    assert row.regions == ["lumbar"] and row.outcome == "completed" and not row.sealed
    assert row.started_at == DAY + timedelta(hours=1)
    with pytest.raises(StoreError, match="limit 0 must be between 1"):
        store.list_sessions(limit=0)


def test_a_cursor_survives_its_text_form_and_a_forged_one_is_refused() -> None:
    cursor = SessionCursor(DAY, "run-0001")
    assert SessionCursor.parse(cursor.text()) == cursor
    for bad in ("nonsense", "2026-03-02T08:00:00~", "2026-03-02T08:00:00~x"):
        with pytest.raises(StoreError, match="not one this service gave out"):
            SessionCursor.parse(bad)


# --- the command ---------------------------------------------------------------------------


@pytest.fixture
def cli_store(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    from session.db import make_engine, upgrade
    from session.models import Discipline

    monkeypatch.setenv("TRACTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRACTION_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.setenv("LINES", "16")  # a screenful: 10 rows
    url = db_url
    upgrade(url)
    store = Store(make_engine(url))
    patient = store.add_patient("MRN-0001", 80.0)
    pt = store.add_clinician("Dana Reyes", "PT", Discipline.PT, "1234567893")
    assert patient.id is not None and pt.id is not None
    add_sessions(store, SessionContext(patient.id, pt.id, "ws", ("lumbar",)), 25)
    yield store
    store.close()
    store.engine.dispose()


def listed(*args: str) -> tuple[list[str], str]:
    result = CommandRunner().invoke(app, ["sessions", "list", *args])
    assert result.exit_code == 0, result.output
    firsts = [line.split()[0] for line in result.output.splitlines() if line.strip()]
    rows = [word for word in firsts if word.startswith("run-")]
    return rows, result.output


def test_sessions_list_shows_a_screenful_newest_first_and_says_how_to_see_more(
    cli_store: Store,
) -> None:
    rows, out = listed()
    assert rows == [f"run-{i:04d}" for i in range(24, 14, -1)]
    assert "10 of 25 session(s); --limit N or --all for more" in out
    rows, out = listed("--limit", "3", "--outcome", "tripped")
    assert rows == ["run-0024", "run-0021", "run-0018"] and "3 of 9 session(s)" in out


def test_sessions_list_all_pages_through_everything(
    cli_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("traction.commands.listing.LIST_PAGE", 7)
    rows, out = listed("--all")
    assert rows == [f"run-{i:04d}" for i in range(24, -1, -1)]
    assert out.count("session ") == 1  # one header over every page
    assert out.rstrip().endswith("25 session(s)")


# --- imports ------------------------------------------------------------------------------


def test_help_lists_every_command_without_importing_any() -> None:
    probe = (
        "import sys; from typer.testing import CliRunner; from traction.cli import app; "
        "out = CliRunner().invoke(app, ['--help']).output; "
        "heavy = [m for m in ('sqlalchemy', 'session.store', 'fastapi', 'matplotlib', "
        "'traction.commands.records', 'pydantic') if m in sys.modules]; "
        "print(heavy); print(out)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.splitlines()[0] == "[]"
    assert all(name in out for name in COMMANDS)


@pytest.mark.parametrize(
    ("name", "entries"),
    [(name, COMMANDS) for name in COMMANDS] + [(name, SESSIONS) for name in SESSIONS],
)
def test_each_listed_summary_is_how_the_commands_own_help_begins(
    name: str, entries: dict[str, Entry]
) -> None:
    command = load_command(name, entries)
    assert command.get_short_help_str(1000) == entries[name].summary


LISTING_NEVER_LOADS = (
    "sqlmodel",
    "session.models",
    "session.store",
    "pydantic_settings",
    "alembic",
    "structlog",
    "fastapi",
    "traction.api",
    "traction.signin",
    "traction.commands.records",
    "session.exports",
    "reportlab",
    "matplotlib",
    "fhir",
    "pymodbus",
)


def test_sessions_list_loads_only_settings_the_engine_and_the_listing_query(
    cli_store: Store,
) -> None:
    """The command runs in a fresh interpreter, as a user runs it; afterwards none of the ORM
    models, migrations, logging, HTTP service or exports is loaded."""
    probe = (
        "import sys; from typer.testing import CliRunner; from traction.cli import app; "
        "result = CliRunner().invoke(app, ['sessions', 'list', '--limit', '3']); "
        f"loaded = [m for m in {LISTING_NEVER_LOADS!r} if m in sys.modules]; "
        "print(result.exit_code, loaded); print(result.output)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    first, _, listing = out.partition("\n")
    assert first == "0 []", out
    assert "3 of 25 session(s)" in listing and "run-0024" in listing


def test_the_listing_columns_are_the_models_columns() -> None:
    """The listing names its columns without loading the models; each must be the model's
    column of the same name and kind, so a renamed or retyped column fails here first."""
    from session.listing import PATIENTS, SESSIONS
    from session.models import SQLModel

    for clause in (SESSIONS, PATIENTS):
        table = SQLModel.metadata.tables[clause.name]
        for column in clause.columns:
            assert column.name in table.c, f"{clause.name}.{column.name} is not in the model"
            model_type = table.c[column.name].type
            assert isinstance(model_type, type(column.type)), (
                f"{clause.name}.{column.name}: the model's {model_type!r} is not a "
                f"{type(column.type).__name__}"
            )


# --- the API ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_db_url: str) -> Iterator[World]:
    world = make_world(tmp_path_factory.mktemp("api-listing"), module_db_url)
    patient = world.store.patient_by_reference(world.patient_ref)
    assert patient.id is not None
    context = SessionContext(patient.id, world.clinician_id, "ws-elsewhere", ("lumbar",))
    add_sessions(world.store, context, 7, same_minute=3)
    yield world
    world.close()


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    yield from running_client(world)


@pytest.mark.parametrize("newest_first", [False, True])
def test_the_api_pages_sessions_by_keyset(
    client: TestClient, world: World, newest_first: bool
) -> None:
    tech = world.headers("technician")
    seen: list[str] = []
    params: dict[str, str | int | bool] = {
        "limit": 3,
        "workstation": "ws-elsewhere",
        "newest_first": newest_first,
    }
    for _ in range(10):
        response = client.get("/sessions", params=params, headers=tech)
        assert response.status_code == 200, response.text
        seen += [s["id"] for s in response.json()]
        if "X-Next-After" not in response.headers:
            break
        params["after"] = response.headers["X-Next-After"]
    oldest_first = world.store.session_ids(SessionQuery(workstation="ws-elsewhere"))
    assert seen == (oldest_first[::-1] if newest_first else oldest_first)
    assert len(seen) == 7


def test_the_api_refuses_a_forged_cursor_and_a_huge_page(client: TestClient, world: World) -> None:
    tech = world.headers("technician")
    forged = client.get("/sessions", params={"after": "yesterday"}, headers=tech)
    assert forged.status_code == 422 and "after" in forged.text
    huge = client.get("/sessions", params={"limit": 100_000}, headers=tech)
    assert huge.status_code == 422 and "limit" in huge.text

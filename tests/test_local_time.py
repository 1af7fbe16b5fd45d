"""Times a person reads are in the clinic's zone with the zone named; the data stays UTC.

The workstation runs with ``TZ`` and the clinic's ``time_zone`` (TRACTION_TIME_ZONE) set to
America/Chicago: every list, show and the PDF note must show the session's start converted to
Central time, named CST, and never the UTC hour."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from bounds_support import steady_command_line
from cli_support import cli, sign_in
from conftest_db import dispose_engines, query
from pypdf import PdfReader

from session.localtime import local_time

CHICAGO = ZoneInfo("America/Chicago")


@pytest.mark.parametrize(
    ("zone", "moment", "shown"),
    [
        ("America/Chicago", datetime(2026, 11, 28, 15, 5, tzinfo=UTC), "2026-11-28 09:05 CST"),
        ("America/Chicago", datetime(2026, 7, 1, 15, 5, tzinfo=UTC), "2026-07-01 10:05 CDT"),
        ("America/Chicago", datetime(2026, 11, 28, 3, 5, tzinfo=UTC), "2026-11-27 21:05 CST"),
        ("Asia/Kolkata", datetime(2026, 11, 28, 15, 5, tzinfo=UTC), "2026-11-28 20:35 IST"),
        ("Etc/GMT+5", datetime(2026, 11, 28, 15, 5, tzinfo=UTC), "2026-11-28 10:05 -0500"),
        ("UTC", datetime(2026, 11, 28, 15, 5, tzinfo=UTC), "2026-11-28 15:05 UTC"),
    ],
)
def test_a_moment_reads_in_the_zone_with_the_zone_named(
    zone: str, moment: datetime, shown: str
) -> None:
    assert local_time(moment, ZoneInfo(zone)) == shown
    assert local_time(moment, ZoneInfo(zone), seconds=True) == shown.replace(
        shown[11:16], shown[11:16] + ":00"
    )


@pytest.fixture
def chicago(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("TRACTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRACTION_DATABASE_URL", db_url)
    steady_command_line(monkeypatch)
    monkeypatch.setenv("TRACTION_TIME_ZONE", "America/Chicago")
    monkeypatch.setenv("TZ", "America/Chicago")
    time.tzset()
    monkeypatch.setenv("COLUMNS", "200")
    yield tmp_path
    monkeypatch.delenv("TZ")
    time.tzset()
    dispose_engines()


def ok(*args: str) -> str:
    code, out = cli(*args)
    assert code == 0, out
    return out


@pytest.mark.backend("postgresql")
def test_every_list_show_and_the_pdf_read_in_the_clinics_zone(chicago: Path) -> None:
    ok("patients", "add", "MRN-1", "--weight", "180 lb", "--sex", "female", "--payer", "medicare")
    ok("clinicians", "add", "Dana Reyes", "--credentials", "PT, DPT", "--discipline", "PT",
       "--npi", "1234567893")  # fmt: skip
    sign_in("dreyes", clinician=1)
    ok("plans", "set", "MRN-1", "--profile", "demo", "--why", "initial evaluation")
    ok("run", "--patient", "MRN-1", "--clinician", "1", "--diagnosis", "M51.16",
       "--time-scale", "5", "--minutes", "1.6")  # fmt: skip
    url = os.environ["TRACTION_DATABASE_URL"]
    [(sid, started_raw)] = query(url, "SELECT id, started_at FROM sessions")
    started = _utc(started_raw)
    local = local_time(started, CHICAGO)  # e.g. 2026-11-28 06:42 CST
    assert local.endswith((" CST", " CDT"))
    utc_hour = f"{started:%Y-%m-%d %H:%M}"
    assert local[:16] != utc_hour  # Central time is never UTC

    listed = ok("sessions", "list")
    assert local in listed and utc_hour not in listed
    shown = ok("sessions", "show", sid[:12])
    assert f"started           {local_time(started, CHICAGO, seconds=True)}" in shown
    assert utc_hour not in shown

    ok("sessions", "amend", sid, "patient_response", "tolerated well", "--why", "seen after")
    ok("sessions", "sign", sid)
    [(amended_raw,)] = query(url, "SELECT at FROM amendments WHERE field_name = 'patient_response'")
    [(signed_raw,)] = query(url, "SELECT signed_at FROM sessions")
    shown = ok("sessions", "show", sid[:12])
    assert f"at {local_time(_utc(amended_raw), CHICAGO)}: seen after" in shown
    assert f"signed            {local_time(_utc(signed_raw), CHICAGO)}" in shown

    for args in (("patients", "list"), ("patients", "show", "MRN-1"), ("plans", "show", "MRN-1")):
        out = ok(*args)
        assert " CST" in out or " CDT" in out, out
        assert " UTC" not in out

    code, out = cli("export", sid, "-f", "pdf", "-f", "json", "--out", str(chicago / "out"))
    assert code == 9, out  # simulated: documented, never billed
    text = "".join(
        page.extract_text() for page in PdfReader(next(chicago.glob("out/*/*.pdf"))).pages
    )
    assert local in text and utc_hour not in text
    assert local_time(_utc(signed_raw), CHICAGO) in text
    # the data keeps an explicit offset: the JSON document's start is the same moment
    doc = json.loads(next(chicago.glob("out/*/*[0-9a-f].json")).read_text())
    assert datetime.fromisoformat(doc["started_at"]) == started

    runs = ok("claims", "runs")
    assert " CST" in runs or " CDT" in runs
    audit = ok("audit", "--patient", "MRN-1")
    [(at_raw,)] = query(url, "SELECT max(at) FROM access_log")
    assert local_time(_utc(at_raw), CHICAGO, seconds=True) in audit
    backup = ok("backup", str(chicago / "copy.db")) if "sqlite" in url else None
    if backup is not None:
        assert f"newest session: {sid} started {local}" in backup


def _utc(value: object) -> datetime:
    """A timestamp as the database returns it (SQLite: naive UTC text; PostgreSQL: aware)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

"""The `traction` command through Typer's runner, on real simulated tables, on a SQLite file and on
PostgreSQL (``db_url``): the command reads the database from ``TRACTION_DATABASE_URL``."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import sqlalchemy as sa
from bounds_support import steady_command_line
from cli_support import QUICK_PROFILE, QUICK_SCALE, sign_in
from conftest_db import CommandRunner, dispose_engines, query
from pypdf import PdfReader

from session.export.json_doc import published_schema
from session.journal import is_owned
from traction.cli import app
from traction.exitcodes import Exit

SCALE = QUICK_SCALE


@pytest.fixture
def data_dir(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("TRACTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRACTION_DATABASE_URL", db_url)
    steady_command_line(monkeypatch)
    monkeypatch.setenv("COLUMNS", "160")
    yield tmp_path
    dispose_engines()


def invoke(*args: str) -> tuple[int, str]:
    result = CommandRunner().invoke(app, list(args))
    return result.exit_code, result.output


def setup_people(weight: str = "82", *extra: str) -> None:
    code, out = invoke(
        "patients",
        "add",
        "MRN-1",
        "--weight-kg",
        weight,
        "--sex",
        "female",
        "--payer",
        "medicare",
        *extra,
    )
    assert code == 0, out
    code, out = invoke(
        "clinicians",
        "add",
        "Dana Reyes",
        "--credentials",
        "PT, DPT",
        "--discipline",
        "PT",
        "--npi",
        "1234567893",
    )
    assert code == 0, out


def session_ids() -> list[str]:
    """Ids of the recorded sessions, oldest first, read underneath the product."""
    return [row[0] for row in query(os.environ["TRACTION_DATABASE_URL"], SESSION_IDS)]


SESSION_IDS = "SELECT id FROM sessions ORDER BY started_at"


@pytest.mark.backend("sqlite")
def test_demo_runs_to_the_end_and_its_exports_open(data_dir: Path) -> None:
    code, out = invoke("demo", "--profile", QUICK_PROFILE, "--time-scale", SCALE)
    assert code == 0, out
    assert "completed" in out and "97012" in out and "no blocking findings besides SIMULATED" in out
    pdf = next(data_dir.glob("demo/exports/*/*.pdf"))
    reader = PdfReader(pdf)
    text = "".join(page.extract_text() for page in reader.pages)
    assert "97012" in text and "DEMO-0001" in text and "M51.16" in text
    assert any(page.images for page in reader.pages)  # the force/time plot
    assert "SIMULATED" in text
    doc = json.loads(next(data_dir.glob("demo/exports/*/*[0-9a-f].json")).read_text())
    jsonschema.validate(doc, published_schema())
    assert doc["delivered"]["cycles"] >= 1
    assert doc["simulated"] is True and doc["billing"]["status"] == "simulated"
    assert not list(data_dir.glob("demo/exports/*.csv"))  # never a claim file


def test_run_refuses_a_first_session_above_the_cap_with_exit_3(data_dir: Path) -> None:
    setup_people()
    code, out = invoke(
        "run", "lumbar-intermittent", "--confirm-force", "--patient", "MRN-1", "--clinician", "1"
    )
    assert code == Exit.REFUSED, out
    assert "usual cap for lumbar session 1" in out and "nothing was started" in out


def test_run_refuses_a_contraindicated_patient_with_exit_3(data_dir: Path) -> None:
    setup_people("82", "--contraindication", "osteoporosis")
    code, out = invoke(
        "run", QUICK_PROFILE, "--patient", "MRN-1", "--clinician", "1", "--time-scale", SCALE
    )
    assert code == Exit.REFUSED, out
    assert "Osteoporosis" in out and "nothing was started" in out
    assert session_ids() == []


@pytest.mark.backend("postgresql")
def test_run_completes_then_sessions_verify_and_export(data_dir: Path) -> None:
    setup_people()
    code, out = invoke(
        "run",
        "demo",
        "--patient",
        "MRN-1",
        "--clinician",
        "1",
        "--diagnosis",
        "M51.16",
        "--necessity",
        "radicular pain",
        "--plan-of-care",
        "POC-1",
        "--time-scale",
        SCALE,
    )
    assert code == Exit.OK, out
    [sid] = session_ids()
    code, out = invoke("sessions", "list", "--patient", "MRN-1")
    assert code == 0 and sid[:12] in out and "completed" in out
    code, out = invoke("sessions", "show", sid, "--plot", str(data_dir / "plot.png"))
    assert code == 0 and "released" in out
    assert (data_dir / "plot.png").read_bytes().startswith(b"\x89PNG")
    code, out = invoke("verify", sid[:8])  # a unique prefix, as listed
    assert code == 0 and "ok" in out
    code, out = invoke("export", sid, "-f", "csv", "-f", "x12", "--out", str(data_dir / "claims"))
    assert code == Exit.HELD, out  # a simulated table (x20 time): documented, never billed
    assert "simulated" in out and "SIMULATED" in out and "NO_SIGNATURE" in out
    assert not (data_dir / "claims" / sid / f"{sid}.837p.txt").exists()
    assert not (data_dir / "claims" / "billing-lines.csv").exists()
    code, out = invoke("sessions", "sign", sid)
    assert code == Exit.USAGE and "traction login" in out  # nobody signed in: nobody signs
    sign_in("dreyes", clinician=1)
    code, out = invoke("sessions", "amend", sid, "diagnosis_codes", '["M51.36"]', "--why", "x")
    assert code == Exit.USAGE and "category header" in out
    code, out = invoke("sessions", "sign", sid)
    assert code == 0, out
    code, out = invoke("export", sid, "-f", "pdf", "--out", str(data_dir / "note.pdf"))
    assert code == Exit.HELD, out
    assert "simulated" in out and PdfReader(data_dir / "note.pdf").pages
    code, out = invoke("export", sid, "-f", "pdf", "-f", "json", "--out", str(data_dir / "x.pdf"))
    assert code == Exit.USAGE and "one session and one --format" in out


@pytest.mark.backend("postgresql")
def test_a_stop_switch_trip_exits_4_and_tampering_exits_6(data_dir: Path) -> None:
    setup_people()
    code, out = invoke(
        "run",
        "demo",
        "--patient",
        "MRN-1",
        "--clinician",
        "1",
        "--time-scale",
        SCALE,
        "--fault",
        "stop-switch@30",
    )
    assert code == Exit.TRIPPED, out
    last_frame = out[out.rindex("╭") :]  # the live panel as it was left on screen
    assert "RELEASED: no traction force is applied" in last_frame
    assert "Ctrl-C" not in last_frame and "remaining" not in last_frame
    [sid] = session_ids()
    query(
        os.environ["TRACTION_DATABASE_URL"],
        "UPDATE samples SET measured_n = measured_n + 1 WHERE session_id = :s AND seq = 3",
        s=sid,
    )
    code, out = invoke("verify", sid)
    assert code == Exit.INTEGRITY, out
    assert "CHANGED" in out


def test_usage_errors_exit_2_with_the_rule(data_dir: Path) -> None:
    setup_people()
    code, out = invoke(
        "run",
        "demo",
        "--patient",
        "MRN-1",
        "--clinician",
        "1",
        "--url",
        "modbus+tcp://127.0.0.1:1?unit=1",
        "--time-scale",
        "5",
    )
    assert code == Exit.USAGE and "only simulated (sim://) tables" in out
    code, out = invoke(
        "run", QUICK_PROFILE, "--patient", "MRN-1", "--clinician", "1", "--diagnosis", "M54.5"
    )
    assert code == Exit.USAGE and "diagnosis_codes[0]" in out and "M54.50" in out
    code, out = invoke("run", "nope", "--patient", "MRN-1", "--clinician", "1")
    assert code == Exit.USAGE and "neither a file nor a shipped profile" in out
    code, out = invoke("run", QUICK_PROFILE, "--patient", "MRN-404", "--clinician", "1")
    assert code == Exit.USAGE and "MRN-404" in out
    code, out = invoke("patients", "add", "MRN-1", "--weight-kg", "80")
    assert code == Exit.USAGE and "already exists" in out
    code, out = invoke(
        "patients", "add", "MRN-2", "--weight-kg", "80", "--contraindication", "gout"
    )
    assert code == Exit.USAGE and "'gout' is not one of the contraindications" in out
    code, out = invoke("patients", "add", "MRN-2", "--weight-kg", "80", "--payer", "acme")
    assert code == Exit.USAGE and "'acme' is not a payer" in out
    code, out = invoke(
        "run", QUICK_PROFILE, "--patient", "MRN-1", "--clinician", "1", "--region", "cervical"
    )
    assert code == Exit.USAGE and "treats lumbar" in out


def test_unreachable_table_exits_5(data_dir: Path) -> None:
    setup_people()
    code, out = invoke(
        "run",
        "demo",
        "--patient",
        "MRN-1",
        "--clinician",
        "1",
        "--url",
        "modbus+tcp://127.0.0.1:9?unit=1&timeout=0.1",
    )
    assert code == Exit.TABLE, out
    assert "table error" in out


def test_db_upgrade_and_status(data_dir: Path) -> None:
    code, out = invoke("db", "upgrade")
    assert code == 0 and "revision" in out
    code, out = invoke("db", "status")
    assert code == 0 and "software expects" in out


@pytest.mark.backend("sqlite")
@pytest.mark.parametrize(
    "signals",
    [[signal.SIGINT], [signal.SIGINT, signal.SIGINT], [signal.SIGTERM]],
    ids=["ctrl-c", "ctrl-c-twice", "sigterm"],
)
def test_signals_stop_the_session_and_the_table_ends_released(
    data_dir: Path, signals: list[signal.Signals]
) -> None:
    """A real process and real signals: the first Ctrl-C is a controlled stop, a second one
    releases at once, SIGTERM (a service manager stopping us) releases at once; each way exit 7,
    the session is recorded as stopped and the last event is the release."""
    setup_people()
    env = {**os.environ, "TRACTION_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "traction",
            "run",
            "demo",
            "--patient",
            "MRN-1",
            "--clinician",
            "1",
            "--time-scale",
            SCALE,  # x5: the 0.5 s staleness bound stays 100 ms of real time (x10 left 50 ms)
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = os.environ["TRACTION_DATABASE_URL"]
    deadline = time.monotonic() + 30
    while True:
        time.sleep(0.5)
        if proc.poll() is not None:
            pytest.fail(f"`traction run` ended before its first hold:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("`traction run` recorded no hold in 30 s")
        # In the hold the ramp-down takes at least 0.7 s of real time (x5, 5 lbf/s from 17 lbf or
        # more): a second Ctrl-C 0.3 s after the first lands in it on a loaded machine too.
        with contextlib.suppress(sa.exc.OperationalError, sa.exc.ProgrammingError):
            if query(url, "SELECT count(*) FROM samples WHERE phase = 'hold'")[0][0] > 5:
                break  # (the schema may not exist yet)
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(0.3)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == Exit.STOPPED, out
    [(outcome, reason)] = query(url, "SELECT outcome, outcome_reason FROM sessions")
    kinds = [k for (k,) in query(url, "SELECT kind FROM events ORDER BY seq")]
    last_phases = [p for (p,) in query(url, "SELECT phase FROM samples ORDER BY seq DESC LIMIT 3")]
    assert outcome == "stopped"
    assert "stop_requested" in kinds and kinds[-1] == "released"
    if signals == [signal.SIGINT]:
        assert "Ctrl-C" in reason and last_phases[0] == "stopping"  # a supervised ramp-down
    elif signals == [signal.SIGTERM]:
        assert "SIGTERM" in reason and last_phases[0] != "stopping"  # let go at once
    else:
        assert kinds.count("stop_requested") == 2 and "twice" in reason


@pytest.mark.backend("sqlite")
@pytest.mark.slow
def test_run_leaves_another_live_run_alone_and_recovers_it_once_killed(data_dir: Path) -> None:
    """Two `traction run` on one workstation: the second neither seals nor touches the first's
    running session (it used to, by workstation name). Once the first is killed outright, its
    treatment process ends the session on its own (the simulator died with the workstation: the
    link is lost, so it trips) and lets go of the journal; the next start records the session from
    it, sealed."""
    setup_people()
    env = {**os.environ, "TRACTION_DATA_DIR": str(data_dir)}
    first = subprocess.Popen(
        [sys.executable, "-m", "traction", "run", "demo"]
        # real time: this run only has to stay live while the second one runs, and a loaded
        # machine must not trip it on a late reading (that would close it, and not by another)
        + ["--patient", "MRN-1", "--clinician", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = os.environ["TRACTION_DATABASE_URL"]
    try:
        deadline = time.monotonic() + 60
        running: list[str] = []
        while not running:
            assert time.monotonic() < deadline, "the first run never recorded a sample"
            time.sleep(0.3)
            with contextlib.suppress(sa.exc.OperationalError, sa.exc.ProgrammingError):
                running = [sid for (sid,) in query(url, "SELECT DISTINCT session_id FROM samples")]
        [live] = running
        code, out = invoke(
            "run", QUICK_PROFILE, "--patient", "MRN-1", "--clinician", "1", "--time-scale", SCALE
        )
        assert code in (Exit.OK, Exit.TRIPPED), out
        assert "recovered" not in out
        [(outcome,)] = query(url, "SELECT outcome FROM sessions WHERE id = :s", s=live)
        assert outcome is None, "a live session was closed by another process"
    finally:
        first.kill()
        first.wait(30)
    journal = data_dir / "journals" / f"{live}.journal"
    deadline = time.monotonic() + 30
    while is_owned(journal):
        assert time.monotonic() < deadline, "the first run's treatment process never ended"
        time.sleep(0.2)

    code, out = invoke(
        "run", QUICK_PROFILE, "--patient", "MRN-1", "--clinician", "1", "--time-scale", SCALE
    )

    assert code in (Exit.OK, Exit.TRIPPED), out
    assert f"recovered session {live}" in out
    [(outcome, reason, sealed)] = query(
        url, "SELECT outcome, outcome_reason, seal_digest FROM sessions WHERE id = :s", s=live
    )
    assert outcome == "tripped" and "link lost" in reason and sealed
    assert invoke("verify", live)[0] == Exit.OK
    assert list((data_dir / "journals").glob("*.journal")) == []


@pytest.mark.backend("sqlite")
def test_a_locking_fault_in_the_demo_is_acknowledged_in_the_demo_store(data_dir: Path) -> None:
    code, out = invoke(
        "demo", "--profile", QUICK_PROFILE, "--time-scale", SCALE, "--fault", "motor-fault@10"
    )
    assert "ALARM - table sim://lumbar LOCKED" in out, out
    assert 'traction tables ack sim://lumbar --demo --reason "..."' in out
    code, out = invoke("demo", "--profile", QUICK_PROFILE, "--time-scale", SCALE)
    assert code == Exit.REFUSED, out
    assert (
        "table sim://lumbar is locked" in out and "traction tables ack sim://lumbar --demo" in out
    )
    code, out = invoke("tables", "ack", "sim://lumbar", "--demo", "--reason", "rehearsal")
    assert code == 0 and "acknowledged: table sim://lumbar (motor trip" in out, out
    assert "(demo rehearsal on" in out  # no sign-in in the demo's store: the OS user is named
    code, out = invoke(
        "demo", "--profile", QUICK_PROFILE, "--time-scale", SCALE, "--fault", "stop-switch@5"
    )
    assert "locked" not in out and "outcome: tripped" in out, out  # it started again

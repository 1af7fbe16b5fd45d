"""The `traction` command through Typer's runner, on real simulated tables and real SQLite files."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from pypdf import PdfReader
from typer.testing import CliRunner

from session.export.json_doc import published_schema
from traction.cli import app
from traction.exitcodes import Exit

SCALE = "20"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRACTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "160")
    return tmp_path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
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


def session_ids(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM sessions ORDER BY started_at")]


def test_demo_runs_to_the_end_and_its_exports_open(data_dir: Path) -> None:
    code, out = invoke("demo", "--time-scale", SCALE)
    assert code == 0, out
    assert "completed" in out and "97012" in out and "no blocking findings" in out
    pdf = next(data_dir.glob("exports/*/*.pdf"))
    reader = PdfReader(pdf)
    text = "".join(page.extract_text() for page in reader.pages)
    assert "97012" in text and "DEMO-0001" in text and "M51.16" in text
    assert any(page.images for page in reader.pages)  # the force/time plot
    doc = json.loads(next(data_dir.glob("exports/*/*[0-9a-f].json")).read_text())
    jsonschema.validate(doc, published_schema())
    assert doc["delivered"]["cycles"] >= 1
    assert (data_dir / "exports" / "billing-lines.csv").read_text().count("97012") == 1


def test_run_refuses_a_contraindicated_patient_with_exit_3(data_dir: Path) -> None:
    setup_people("82", "--contraindication", "osteoporosis")
    code, out = invoke(
        "run", "demo", "--patient", "MRN-1", "--clinician", "1", "--time-scale", SCALE
    )
    assert code == Exit.REFUSED, out
    assert "Osteoporosis" in out and "nothing was started" in out
    assert session_ids(data_dir / "traction.db") == []


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
    [sid] = session_ids(data_dir / "traction.db")
    code, out = invoke("sessions", "list", "--patient", "MRN-1")
    assert code == 0 and sid[:12] in out and "completed" in out
    code, out = invoke("sessions", "show", sid, "--plot", str(data_dir / "plot.png"))
    assert code == 0 and "released" in out
    assert (data_dir / "plot.png").read_bytes().startswith(b"\x89PNG")
    code, out = invoke("verify", sid[:8])  # a unique prefix, as listed
    assert code == 0 and "ok" in out
    code, out = invoke("export", sid, "-f", "csv", "-f", "x12", "--out", str(data_dir / "claims"))
    assert code == 0, out
    assert "blocked" in out and "NO_SIGNATURE" in out  # nobody signed yet: billing is told
    assert (data_dir / "claims" / sid / f"{sid}.837p.txt").read_text().startswith("HI*")
    code, out = invoke(
        "sessions", "amend", sid, "diagnosis_codes", '["M51.36"]', "--who", "D", "--why", "x"
    )
    assert code == Exit.USAGE and "category header" in out
    code, out = invoke("sessions", "sign", sid, "--clinician", "1")
    assert code == 0, out
    code, out = invoke("export", sid, "-f", "pdf", "--out", str(data_dir / "note.pdf"))
    assert code == 0, out
    assert "ready" in out and PdfReader(data_dir / "note.pdf").pages
    code, out = invoke("export", sid, "-f", "pdf", "-f", "json", "--out", str(data_dir / "x.pdf"))
    assert code == Exit.USAGE and "one session and one --format" in out


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
    [sid] = session_ids(data_dir / "traction.db")
    with sqlite3.connect(data_dir / "traction.db") as conn:
        conn.execute(
            "UPDATE samples SET measured_n = measured_n + 1 WHERE session_id = ? AND seq = 3",
            (sid,),
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
        "run", "demo", "--patient", "MRN-1", "--clinician", "1", "--diagnosis", "M54.5"
    )
    assert code == Exit.USAGE and "diagnosis_codes[0]" in out and "M54.50" in out
    code, out = invoke("run", "nope", "--patient", "MRN-1", "--clinician", "1")
    assert code == Exit.USAGE and "neither a file nor a shipped profile" in out
    code, out = invoke("run", "demo", "--patient", "MRN-404", "--clinician", "1")
    assert code == Exit.USAGE and "MRN-404" in out
    code, out = invoke("patients", "add", "MRN-1", "--weight-kg", "80")
    assert code == Exit.USAGE and "already exists" in out
    code, out = invoke(
        "patients", "add", "MRN-2", "--weight-kg", "80", "--contraindication", "gout"
    )
    assert code == Exit.USAGE and "'gout' is not a contraindication" in out
    code, out = invoke("patients", "add", "MRN-2", "--weight-kg", "80", "--payer", "acme")
    assert code == Exit.USAGE and "'acme' is not a payer" in out
    code, out = invoke(
        "run", "demo", "--patient", "MRN-1", "--clinician", "1", "--region", "cervical"
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
            "lumbar-intermittent",
            "--confirm-force",
            "--patient",
            "MRN-1",
            "--clinician",
            "1",
            "--time-scale",
            "10",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    db = data_dir / "traction.db"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if db.exists() and session_ids(db):
            with sqlite3.connect(db) as conn:
                if conn.execute("SELECT count(*) FROM samples").fetchone()[0] > 20:
                    break
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(0.3)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == Exit.STOPPED, out
    assert "usual cap for lumbar session 1" in out  # first-session cap listed as a warning
    with sqlite3.connect(db) as conn:
        outcome, reason = conn.execute("SELECT outcome, outcome_reason FROM sessions").fetchone()
        kinds = [k for (k,) in conn.execute("SELECT kind FROM events ORDER BY seq")]
        last_phases = [
            p for (p,) in conn.execute("SELECT phase FROM samples ORDER BY seq DESC LIMIT 3")
        ]
    assert outcome == "stopped"
    assert "stop_requested" in kinds and kinds[-1] == "released"
    if signals == [signal.SIGINT]:
        assert "Ctrl-C" in reason and last_phases[0] == "stopping"  # a supervised ramp-down
    elif signals == [signal.SIGTERM]:
        assert "SIGTERM" in reason and last_phases[0] != "stopping"  # let go at once
    else:
        assert kinds.count("stop_requested") == 2 and "twice" in reason

"""`traction tables` against a `traction simulate` process: a latched stop switch, then cleared."""

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest_db import CommandRunner

from traction.cli import app
from traction.exitcodes import Exit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def simulated_table(tmp_path: Path) -> Iterator[Path]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "traction",
            "simulate",
            "--port",
            str(port),
            "--duration",
            "60",
            "--fault",
            "stop-switch@0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"`traction simulate` never listened on port {port} (exit {proc.poll()})")
        time.sleep(0.1)
    config = tmp_path / "settings.toml"
    config.write_text(
        f'data_dir = "{tmp_path}"\n[[tables]]\nname = "bench-1"\n'
        f'url = "modbus+tcp://127.0.0.1:{port}?unit=1&map=generic-v1"\n'
        '[[tables]]\nname = "unplugged"\nurl = "modbus+tcp://127.0.0.1:9?unit=1&timeout=0.1"\n'
    )
    yield config
    proc.terminate()
    proc.wait(timeout=10)


def test_tables_show_a_latched_fault_until_it_is_cleared(simulated_table: Path) -> None:
    runner = CommandRunner(env={"COLUMNS": "400"})  # wide enough that no state wraps
    deadline = time.monotonic() + 20  # the stop-switch press is scheduled at 0 s: wait for it
    while True:
        listed = runner.invoke(app, ["tables", "list", "--config", str(simulated_table)])
        assert listed.exit_code == Exit.TABLE, listed.output  # one table does not answer
        if "fault: patient pressed the stop switch" in listed.output:
            break
        assert time.monotonic() < deadline, f"the stop-switch fault never showed:\n{listed.output}"
        time.sleep(0.2)
    assert "fault 5" not in listed.output  # the name, never the device code
    assert "SIM-L-0001" in listed.output
    assert "unplugged" in listed.output and "127.0.0.1:9" in listed.output  # listed, with its error
    assert "connection refused" in listed.output
    assert "1 of 2 table(s) unreachable: unplugged" in listed.output
    cleared = runner.invoke(
        app, ["tables", "clear-fault", "bench-1", "--config", str(simulated_table)]
    )
    assert cleared.exit_code == 0 and "bench-1: ready" in cleared.output
    again = runner.invoke(app, ["tables", "list", "--config", str(simulated_table)])
    assert "fault:" not in again.output and "ready" in again.output

    reachable_only = simulated_table.with_name("reachable.toml")
    text = simulated_table.read_text()
    reachable_only.write_text(text[: text.index('[[tables]]\nname = "unplugged"')])
    all_answer = runner.invoke(app, ["tables", "list", "--config", str(reachable_only)])
    assert all_answer.exit_code == 0, all_answer.output
    assert "bench-1" in all_answer.output and "unreachable" not in all_answer.output

"""`traction tables` against a `traction simulate` process: a latched stop switch, then cleared."""

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from traction.cli import app


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
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
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
    runner = CliRunner(env={"COLUMNS": "200"})
    time.sleep(0.5)  # let the scheduled stop-switch press land
    listed = runner.invoke(app, ["tables", "list", "--config", str(simulated_table)])
    assert listed.exit_code == 0, listed.output
    assert "fault 5" in listed.output and "stop switch" in listed.output
    assert "SIM-L-0001" in listed.output
    assert "unplugged" in listed.output and "127.0.0.1:9" in listed.output  # listed, with its error
    cleared = runner.invoke(
        app, ["tables", "clear-fault", "bench-1", "--config", str(simulated_table)]
    )
    assert cleared.exit_code == 0 and "bench-1: ready" in cleared.output
    again = runner.invoke(app, ["tables", "list", "--config", str(simulated_table)])
    assert "fault 5" not in again.output and "ready" in again.output

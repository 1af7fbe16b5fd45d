"""`traction simulate` run as a script runs it: stdout is a pipe, and the tables' URLs (pty paths
included) must be readable while the simulator serves, as plain lines or as JSON."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from devices.clock import ScaledClock
from traction.tables import open_table


class Simulating:
    """A running ``traction simulate`` whose stdout lines are collected as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)

    def next_line(self, within_s: float = 30.0) -> str:
        """The next line printed; fails the test if none comes within ``within_s``."""
        try:
            return self._lines.get(timeout=within_s)
        except queue.Empty:
            raise AssertionError(f"no line from simulate within {within_s} s") from None


@contextmanager
def simulating(*args: str) -> Iterator[Simulating]:
    with subprocess.Popen(
        [sys.executable, "-m", "traction", "simulate", "--duration", "60", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            yield Simulating(proc)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


async def test_json_names_every_table_while_serving_and_the_url_opens_it() -> None:
    with simulating("--port", "0", "--tables", "2", "--json") as sim:
        document = json.loads(sim.next_line())
        assert document["event"] == "serving"
        tables = document["tables"]
        assert [t["table"] for t in tables] == ["1", "2"]
        assert {t["transport"] for t in tables} == {"tcp"}
        assert tables[0]["port"] != tables[1]["port"]
        for table in tables:
            assert table["url"] == f"modbus+tcp://127.0.0.1:{table['port']}?unit=1&map=generic-v1"
            async with open_table(table["url"], ScaledClock()) as opened:
                assert (await opened.table.read_state()).ready


async def test_json_gives_the_pty_a_driver_opens_for_rtu() -> None:
    with simulating("--transport", "rtu", "--json", "--fault", "stop-switch@0.2") as sim:
        (table,) = json.loads(sim.next_line())["tables"]
        assert table["device"].startswith("/dev/") and table["simulator_device"].startswith("/dev/")
        assert table["url"] == f"modbus+rtu://{table['device']}?baud=19200&unit=1&map=generic-v1"
        fault = json.loads(sim.next_line())
        assert fault == {"event": "fault", "kind": "stop-switch", "table": 1, "t": fault["t"]}
        async with open_table(table["url"], ScaledClock()) as opened:
            assert (await opened.table.read_state()).stop_switch_pressed


async def test_plain_output_to_a_pipe_names_the_url_and_pty_at_once() -> None:
    with simulating("--transport", "line") as sim:
        first = sim.next_line()
        assert first.startswith("table 1: line:///dev/") and "(simulator on /dev/" in first
        url = first.split()[2]
        assert "Serving" in sim.next_line()
        async with open_table(url, ScaledClock()) as opened:
            assert (await opened.table.identify()).serial_number == "SIM-L-0001-1"

"""A table that stops answering while idle: the tables routes still answer, name the silent table
and say why, and one silent table never hides the others."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import TestClient, World, make_world

from devices.clock import ScaledClock
from simulators.hosting import simulator_thread
from simulators.modbus_server import RunningSimulator, start_tcp_simulator
from simulators.physics import TableModel, TableSpec
from traction.api.app import create_app
from traction.settings import TableSetting


@pytest.fixture
def wired() -> Iterator[RunningSimulator]:
    """A table on Modbus TCP, served from the simulator thread (as a table has its own processor)."""
    clock = ScaledClock(1.0)
    model = TableModel(TableSpec(serial_number="SIM-SILENT-1"), seed=5, now=clock.now())
    host = simulator_thread()
    server = asyncio.run(host.run(start_tcp_simulator({1: model}, clock)))
    yield server
    asyncio.run(host.run(server.stop()))


@pytest.fixture
def world(tmp_path: Path, wired: RunningSimulator) -> Iterator[World]:
    world = make_world(tmp_path, f"sqlite:///{tmp_path / 'traction.db'}")
    wire = TableSetting(name="wired", url=f"{wired.url(1)}&timeout=0.2")
    world.settings = world.settings.model_copy(update={"tables": [*world.settings.tables, wire]})
    yield world
    world.close()


def test_a_silent_table_is_listed_as_not_answering_and_the_others_still_read(
    world: World, wired: RunningSimulator
) -> None:
    tech = world.headers("technician")
    with TestClient(create_app(world.settings)) as client:
        listed = client.get("/tables", headers=tech)
        assert listed.status_code == 200
        assert [(t["name"], t["unreachable"]) for t in listed.json()] == [
            ("table-1", None),
            ("table-2", None),
            ("wired", None),
        ]
        assert all(t["state"] is not None for t in listed.json())

        wired.faults.slow(60.0)  # the table goes silent: every reply later than any wait
        listed = client.get("/tables", headers=tech)
        assert listed.status_code == 200, listed.text
        by_name = {t["name"]: t for t in listed.json()}
        assert by_name["table-1"]["state"] is not None and by_name["table-1"]["unreachable"] is None
        assert by_name["table-2"]["state"] is not None and by_name["table-2"]["unreachable"] is None
        silent = by_name["wired"]
        assert silent["state"] is None
        assert "no answer within 0.2 s" in silent["unreachable"], silent
        assert silent["device"]["serial_number"] == "SIM-SILENT-1"  # as it reported when opened

        one = client.get("/tables/wired", headers=tech)
        assert one.status_code == 200 and one.json()["unreachable"] == silent["unreachable"]

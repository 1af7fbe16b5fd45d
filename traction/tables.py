"""Opening tables for the application, including ``sim://`` tables run in-process.

A ``sim://NAME`` table is a simulator started here, on the same clock, behind the real wire: by default
a Modbus TCP server on a free loopback port, or with ``?transport=rtu`` / ``?transport=line`` a
pseudo-terminal pair. The driver that talks to it is the same one a real table gets, so nothing above
this module can tell a simulated table from a wired one (except through ``models``, for injecting
faults in demos and tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from devices.clock import Clock
from devices.contract import Table
from devices.errors import ConfigError
from devices.opening import open_device
from devices.urls import TableAddress, parse_table_url
from simulators.line_server import start_line_simulator
from simulators.modbus_server import start_rtu_simulator, start_tcp_simulator
from simulators.physics import TableModel, TableSpec
from simulators.priority import answer_like_a_table
from simulators.ptypair import PtyPair

# Simulated table models by sim:// name. Ratings follow the clinic's usual split tables.
SIM_SPECS: dict[str, TableSpec] = {
    "lumbar": TableSpec(
        model="SIM-TX1 lumbar", serial_number="SIM-L-0001", rated_max_force_n=900.0
    ),
    "cervical": TableSpec(
        model="SIM-TX1 cervical", serial_number="SIM-C-0001", rated_max_force_n=400.0
    ),
}


def sim_spec(name: str) -> TableSpec:
    """The simulated table for a sim:// name; unknown names get a lumbar table with their own serial."""
    if name in SIM_SPECS:
        return SIM_SPECS[name]
    return TableSpec(model=f"SIM-TX1 {name}", serial_number=f"SIM-{name.upper()[:12]}")


@dataclass
class OpenTable:
    """A connected table and, for sim:// tables, the simulated models behind it."""

    name: str
    url: str
    table: Table
    models: dict[int, TableModel] = field(default_factory=dict)

    @property
    def simulated(self) -> bool:
        return bool(self.models)


async def _start_simulator(
    address: TableAddress, clock: Clock, stack: contextlib.AsyncExitStack
) -> tuple[str, dict[int, TableModel]]:
    """Start the simulator a sim:// URL names; return the wire URL to open and its models."""
    answer_like_a_table()
    where = f"table URL {address.url!r}"
    transport = address.params.get("transport", "tcp")
    seed = address.int_param("seed", 1, 0, 2**31)
    model = TableModel(sim_spec(address.host), seed=seed, now=clock.now())
    if transport == "tcp":
        server = await start_tcp_simulator(
            {1: model}, clock, map_name=address.params.get("map", "generic-v1")
        )
        stack.push_async_callback(server.stop)
        return server.url(1), {1: model}
    if transport in ("rtu", "line"):
        pair = PtyPair().start()
        stack.callback(pair.close)
        if transport == "rtu":
            baud = address.baud(19200)
            rtu = await start_rtu_simulator(
                {1: model},
                clock,
                pair.device_port,
                baud=baud,
                map_name=address.params.get("map", "generic-v1"),
            )
            stack.push_async_callback(rtu.stop)
            return rtu.url(1, device=pair.host_port), {1: model}
        baud = address.baud(9600)
        line = await start_line_simulator(
            model, clock, pair.device_port, baud=baud, host_port=pair.host_port
        )
        stack.push_async_callback(line.stop)
        return line.url(), {1: model}
    raise ConfigError(where, f"transport={transport!r} must be tcp, rtu or line")


@contextlib.asynccontextmanager
async def open_table(url: str, clock: Clock, name: str | None = None) -> AsyncIterator[OpenTable]:
    """Open, connect and finally close a table (and its simulator, for sim:// URLs)."""
    address = parse_table_url(url)
    async with contextlib.AsyncExitStack() as stack:
        models: dict[int, TableModel] = {}
        wire = address
        if address.scheme == "sim":
            wire_url, models = await _start_simulator(address, clock, stack)
            wire = parse_table_url(wire_url)
        table = open_device(wire, clock)
        await table.connect()
        stack.push_async_callback(table.close)
        yield OpenTable(name=name or address.label, url=url, table=table, models=models)

"""Opening tables for the application, including ``sim://`` tables run in-process.

A ``sim://NAME`` table is a simulator started here, on the same clock, behind the real wire: by default
a Modbus TCP server on a free loopback port, or with ``?transport=rtu`` / ``?transport=line`` a
pseudo-terminal pair. It runs on a thread and event loop of its own (:mod:`simulators.hosting`), as
a real table answers from its own controller whatever the workstation is doing. The driver that talks
to it is the same one a real table gets, so nothing above this module can tell a simulated table from
a wired one (except through ``models`` and ``in_simulator``, for injecting faults in demos and tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from devices.clock import Clock
from devices.contract import Table
from devices.errors import ConfigError
from devices.opening import open_device
from devices.urls import TableAddress, parse_table_url
from simulators.hosting import SimulatorThread, simulator_thread
from simulators.line_server import start_line_simulator
from simulators.modbus_server import start_rtu_simulator, start_tcp_simulator
from simulators.physics import TableModel, TableSpec
from simulators.priority import share_with_a_table
from simulators.ptypair import PtyPair

T = TypeVar("T")

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
    """A connected table and, for sim:// tables, the simulated models behind it.

    Read a model or flip one of its fault flags freely; call a method that moves its physics (a
    switch pressed, a fault applied) through :meth:`in_simulator`, which runs it on the simulator's
    own thread, between two steps."""

    name: str
    url: str
    table: Table
    models: dict[int, TableModel] = field(default_factory=dict)
    simulator: SimulatorThread | None = None

    @property
    def simulated(self) -> bool:
        return bool(self.models)

    async def in_simulator(self, action: Callable[[], T]) -> T:
        """Call ``action`` on the simulated table's thread (a fault injected, a switch pressed)."""
        if self.simulator is None:
            raise ConfigError(self.url, "faults can only be injected into a sim:// table")
        return await self.simulator.call(action)


async def _start_simulator(
    address: TableAddress, clock: Clock, stack: contextlib.AsyncExitStack
) -> tuple[str, TableModel]:
    """Start the simulator a sim:// URL names on the simulator thread; return the wire URL to
    open and its model. ``stack`` stops the simulator, then closes its serial pair."""
    where = f"table URL {address.url!r}"
    transport = address.params.get("transport", "tcp")
    if transport not in ("tcp", "rtu", "line"):
        raise ConfigError(where, f"transport={transport!r} must be tcp, rtu or line")
    seed = address.int_param("seed", 1, 0, 2**31)
    model = TableModel(sim_spec(address.host), seed=seed, now=clock.now())
    map_name = address.params.get("map", "generic-v1")
    # The simulator's thread runs at a table's priority; this one is raised too, though less: a
    # thread descheduled on a busy machine while it holds the interpreter lock stalls the simulator
    # behind it, and one as high as the table would compete with the treatment process (threads
    # started from here inherit the priority).
    share_with_a_table()
    host = simulator_thread()
    if transport == "tcp":
        server = await host.run(start_tcp_simulator({1: model}, clock, map_name=map_name))
        stack.push_async_callback(lambda: host.run(server.stop()))
        return server.url(1), model
    pair = PtyPair().start()
    stack.callback(pair.close)
    if transport == "rtu":
        rtu = await host.run(
            start_rtu_simulator(
                {1: model}, clock, pair.device_port, baud=address.baud(19200), map_name=map_name
            )
        )
        stack.push_async_callback(lambda: host.run(rtu.stop()))
        return rtu.url(1, device=pair.host_port), model
    line = await host.run(
        start_line_simulator(
            model, clock, pair.device_port, baud=address.baud(9600), host_port=pair.host_port
        )
    )
    stack.push_async_callback(lambda: host.run(line.stop()))
    return line.url(), model


@contextlib.asynccontextmanager
async def open_table(url: str, clock: Clock, name: str | None = None) -> AsyncIterator[OpenTable]:
    """Open, connect and finally close a table (and its simulator, for sim:// URLs)."""
    address = parse_table_url(url)
    async with contextlib.AsyncExitStack() as stack:
        models: dict[int, TableModel] = {}
        wire = address
        host: SimulatorThread | None = None
        if address.scheme == "sim":
            wire_url, model = await _start_simulator(address, clock, stack)
            models, host = {1: model}, simulator_thread()
            wire = parse_table_url(wire_url)
        table = open_device(wire, clock)
        await table.connect()
        stack.push_async_callback(table.close)
        yield OpenTable(
            name=name or address.label, url=url, table=table, models=models, simulator=host
        )

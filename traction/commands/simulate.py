"""``traction simulate``: serve simulated tables on the real wire protocols, by hand."""

from __future__ import annotations

import asyncio
import contextlib
import enum
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table as RichTable

from devices.clock import ScaledClock
from devices.units import ForceUnit, from_newtons
from simulators.line_server import start_line_simulator
from simulators.modbus_server import LinkFaults, start_rtu_simulator, start_tcp_simulator
from simulators.physics import TableModel
from simulators.ptypair import PtyPair
from traction.errors import friendly_errors
from traction.faults import LINK_FAULTS, ScheduledFault, parse_fault
from traction.tables import sim_spec


class Transport(enum.StrEnum):
    TCP = "tcp"
    RTU = "rtu"
    LINE = "line"


@dataclass
class Served:
    """One simulated table as the operator sees it."""

    label: str
    url: str
    model: TableModel
    link: LinkFaults | None = None


def _status(model: TableModel) -> str:
    flags = []
    if model.running:
        flags.append("[green]running[/]")
    if model.released:
        flags.append("released")
    if model.ready:
        flags.append("ready")
    if model.fault_code:
        flags.append(f"[red]fault {model.fault_code}[/]")
    if model.watchdog_tripped:
        flags.append("[red]watchdog[/]")
    if model.stop_switch_pressed:
        flags.append("[red]stop switch[/]")
    return " ".join(flags)


def _view(served: list[Served], clock: ScaledClock, unit: ForceUnit) -> RichTable:
    view = RichTable(title=f"simulated tables  t={clock.now():7.1f} s  (x{clock.scale:g})")
    view.add_column("table")
    view.add_column("connect with", no_wrap=True)
    for column in (f"force ({unit})", f"target ({unit})", "state"):
        view.add_column(column)
    for item in served:
        item.model.advance(clock.now())
        view.add_row(
            item.label,
            item.url,
            f"{from_newtons(item.model.tension_n, unit):6.1f}",
            f"{from_newtons(item.model.target_n, unit):6.1f}",
            _status(item.model),
        )
    return view


async def _serve(
    transport: Transport,
    host: str,
    port: int,
    device: str | None,
    baud: int,
    unit: int,
    count: int,
    map_name: str,
    model_name: str,
    clock: ScaledClock,
    faults: list[ScheduledFault],
    duration: float | None,
    display: ForceUnit,
    console: Console,
) -> None:
    served: list[Served] = []
    async with contextlib.AsyncExitStack() as stack:

        def new_model(index: int) -> TableModel:
            spec = sim_spec(model_name)
            spec.serial_number = f"{spec.serial_number}-{index}"
            return TableModel(spec, seed=index, now=clock.now())

        if transport is Transport.TCP:
            for i in range(count):
                model = new_model(i + 1)
                sim = await start_tcp_simulator({unit: model}, clock, map_name, host, port + i)
                stack.push_async_callback(sim.stop)
                served.append(Served(f"{i + 1}", sim.url(unit), model, sim.faults))
        elif transport is Transport.RTU:
            host_end = device
            if device is None:
                pair = stack.enter_context(PtyPair())
                device, host_end = pair.device_port, pair.host_port
            models = {unit + i: new_model(i + 1) for i in range(count)}
            sim = await start_rtu_simulator(models, clock, device, baud, map_name)
            stack.push_async_callback(sim.stop)
            for uid, model in models.items():
                served.append(
                    Served(f"unit {uid}", sim.url(uid, device=host_end), model, sim.faults)
                )
        else:
            for i in range(count):
                if device is not None and count == 1:
                    dev, host_end = device, device
                else:
                    pair = stack.enter_context(PtyPair())
                    dev, host_end = pair.device_port, pair.host_port
                model = new_model(i + 1)
                line = await start_line_simulator(model, clock, dev, baud, host_port=host_end)
                stack.push_async_callback(line.stop)
                served.append(Served(f"{i + 1}", line.url(), model))

        for fault in faults:
            if fault.table > len(served):
                raise typer.BadParameter(
                    f"--fault names table {fault.table}; only {len(served)} served"
                )
            if fault.kind in LINK_FAULTS and served[fault.table - 1].link is None:
                raise typer.BadParameter(f"--fault {fault.kind} is for Modbus simulators")
        pending = sorted(faults, key=lambda f: f.at_s)
        console.print("Serving; connect a driver with the URLs below. Ctrl-C stops.")
        with Live(_view(served, clock, display), console=console, refresh_per_second=4) as live:
            while True:
                now = clock.now()
                while pending and pending[0].at_s <= now:
                    fault = pending.pop(0)
                    target = served[fault.table - 1]
                    if fault.kind in LINK_FAULTS and target.link is not None:
                        target.link.drop()
                    else:
                        fault.apply(target.model, now)
                    console.log(f"injected {fault.kind} on table {fault.table}")
                live.update(_view(served, clock, display))
                if duration is not None and now >= duration:
                    break
                await asyncio.sleep(0.25)


def simulate(
    transport: Annotated[
        Transport, typer.Option(help="Wire protocol: tcp (Modbus TCP), rtu (Modbus RTU) or line.")
    ] = Transport.TCP,
    host: Annotated[str, typer.Option(help="TCP address to listen on (tcp).")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="First TCP port; table N listens on port+N-1.")
    ] = 5020,
    device: Annotated[
        str | None,
        typer.Option(help="Serial port for rtu/line. Omit to create a pseudo-terminal pair."),
    ] = None,
    baud: Annotated[
        int | None, typer.Option(help="Serial speed (default 19200 for rtu, 9600 for line).")
    ] = None,
    unit: Annotated[
        int, typer.Option(min=1, max=247, help="Modbus unit id of the first table.")
    ] = 1,
    tables: Annotated[
        int,
        typer.Option(
            min=1, max=16, help="How many tables: consecutive ports (tcp) or unit ids (rtu)."
        ),
    ] = 1,
    map_name: Annotated[
        str, typer.Option("--map", help="Register map from configs/devices/ (Modbus).")
    ] = "generic-v1",
    model: Annotated[
        str, typer.Option(help="Simulated table: lumbar (900 N) or cervical (400 N).")
    ] = "lumbar",
    time_scale: Annotated[
        float, typer.Option(min=0.01, max=1000, help="Run the physics this many times faster.")
    ] = 1.0,
    fault: Annotated[
        list[str] | None,
        typer.Option(help="Inject KIND@SECONDS[:TABLE], e.g. stop-switch@30. Repeatable."),
    ] = None,
    duration: Annotated[
        float | None, typer.Option(min=0, help="Stop after this many (session) seconds.")
    ] = None,
    display_unit: Annotated[
        ForceUnit, typer.Option(help="Unit for the live readout.")
    ] = ForceUnit.LBF,
) -> None:
    """Serve simulated traction tables on a real wire protocol until Ctrl-C.

    Each table is a physics model (motor with a slew limit, the patient as spring and damper, a noisy
    load cell) with the firmware's heartbeat watchdog, answering Modbus TCP, Modbus RTU or the line
    protocol exactly as a conforming table would.

    Examples:

      traction simulate                                  # one Modbus TCP table on 127.0.0.1:5020

      traction simulate --tables 2 --transport rtu       # two units on a pseudo-terminal RTU line

      traction simulate --transport line --fault stop-switch@30
    """
    console = Console()
    rate = baud or (19200 if transport is Transport.RTU else 9600)
    clock = ScaledClock(time_scale)
    with friendly_errors(), contextlib.suppress(KeyboardInterrupt):
        scheduled = [parse_fault(text) for text in fault or []]
        asyncio.run(
            _serve(
                transport,
                host,
                port,
                device,
                rate,
                unit,
                tables,
                map_name,
                model,
                clock,
                scheduled,
                duration,
                display_unit,
                console,
            )
        )

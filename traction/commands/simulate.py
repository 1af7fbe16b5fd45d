"""``traction simulate``: serve simulated tables on the real wire protocols, by hand."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
from dataclasses import dataclass, field
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table as RichTable

from devices.clock import ScaledClock, format_seconds
from devices.units import ForceUnit, from_newtons
from simulators.line_server import start_line_simulator
from simulators.modbus_server import LinkFaults, start_rtu_simulator, start_tcp_simulator
from simulators.physics import FAULT_NAMES, TableModel
from simulators.priority import answer_like_a_table
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
    """One simulated table as the operator (or a script) sees it."""

    label: str
    url: str
    model: TableModel
    link: LinkFaults | None = None
    wire: dict[str, str | int] = field(default_factory=dict)  # transport details, for --json

    def describe(self) -> dict[str, object]:
        return {"table": self.label, "url": self.url, **self.wire}


def _emit(document: dict[str, object]) -> None:
    """One JSON document on one line of stdout, flushed so a script sees it at once."""
    typer.echo(json.dumps(document))


def _announce(served: list[Served], as_json: bool) -> None:
    """Say where every table is, always, as plain lines or one JSON document (never only in a
    live view, which a log or a pipe never shows)."""
    if as_json:
        _emit({"event": "serving", "tables": [item.describe() for item in served]})
        return
    for item in served:
        device = item.wire.get("simulator_device")
        tail = f"   (simulator on {device})" if device else ""
        typer.echo(f"table {item.label}: {item.url}{tail}")
    typer.echo("Serving; connect a driver with the URLs above. Ctrl-C stops.")


def _status(model: TableModel) -> str:
    flags = []
    if model.running:
        flags.append("[green]running[/]")
    if model.released:
        flags.append("released")
    if model.ready:
        flags.append("ready")
    if model.fault_code:
        flags.append(f"[red]fault {FAULT_NAMES.get(model.fault_code, 'unknown')}[/]")
    if model.watchdog_tripped:
        flags.append("[red]watchdog[/]")
    if model.stop_switch_pressed:
        flags.append("[red]stop switch[/]")
    if model.operator_stop_pressed:
        flags.append("[red]operator stop[/]")
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
    as_json: bool,
) -> None:
    served: list[Served] = []
    answer_like_a_table(real_time=clock.scale == 1.0)  # a process of its own, answering tables only
    async with contextlib.AsyncExitStack() as stack:

        def new_model(index: int) -> TableModel:
            spec = sim_spec(model_name)
            spec.serial_number = f"{spec.serial_number}-{index}"
            return TableModel(spec, seed=index, now=clock.now())

        if transport is Transport.TCP:
            for i in range(count):
                model = new_model(i + 1)
                sim = await start_tcp_simulator(
                    {unit: model}, clock, map_name, host, port + i if port else 0
                )
                stack.push_async_callback(sim.stop)
                wire: dict[str, str | int] = {
                    "transport": "tcp",
                    "host": sim.host,
                    "port": sim.port,
                    "unit": unit,
                    "map": map_name,
                }
                served.append(Served(f"{i + 1}", sim.url(unit), model, sim.faults, wire))
        elif transport is Transport.RTU:
            host_end = device
            if device is None:
                pair = stack.enter_context(PtyPair())
                device, host_end = pair.device_port, pair.host_port
            models = {unit + i: new_model(i + 1) for i in range(count)}
            sim = await start_rtu_simulator(models, clock, device, baud, map_name)
            stack.push_async_callback(sim.stop)
            for uid, model in models.items():
                wire = {
                    "transport": "rtu",
                    "device": str(host_end),
                    "baud": baud,
                    "unit": uid,
                    "map": map_name,
                    "simulator_device": device,
                }
                served.append(
                    Served(f"unit {uid}", sim.url(uid, device=host_end), model, sim.faults, wire)
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
                wire = {
                    "transport": "line",
                    "device": host_end,
                    "baud": baud,
                    "simulator_device": dev,
                }
                served.append(Served(f"{i + 1}", line.url(), model, wire=wire))

        for fault in faults:
            if fault.table > len(served):
                raise typer.BadParameter(
                    f"--fault names table {fault.table}; only {len(served)} served"
                )
            if fault.kind in LINK_FAULTS and served[fault.table - 1].link is None:
                raise typer.BadParameter(f"--fault {fault.kind} is for Modbus simulators")
        pending = sorted(faults, key=lambda f: f.at_s)
        _announce(served, as_json)
        live = console.is_terminal and not as_json  # a log or a pipe gets plain lines instead
        view = Live(_view(served, clock, display), console=console, refresh_per_second=4)
        with view if live else contextlib.nullcontext():
            while True:
                now = clock.now()
                while pending and pending[0].at_s <= now:
                    fault = pending.pop(0)
                    target = served[fault.table - 1]
                    if fault.kind in LINK_FAULTS and target.link is not None:
                        target.link.drop()
                    else:
                        fault.apply(target.model, now)
                    _injected(fault.kind, fault.table, now, as_json, console if live else None)
                if live:
                    view.update(_view(served, clock, display))
                if duration is not None and now >= duration:
                    break
                # Wake for the display (4 Hz real time), the next fault or the end, whichever
                # comes first, so a fault lands when it was scheduled.
                wake = [now + 0.25 * clock.scale, *(f.at_s for f in pending[:1])]
                if duration is not None:
                    wake.append(duration)
                await clock.sleep_until(min(wake))


def _injected(kind: str, table: int, now: float, as_json: bool, console: Console | None) -> None:
    if as_json:
        _emit({"event": "fault", "kind": kind, "table": table, "t": round(now, 3)})
    elif console is not None:
        console.log(f"injected {kind} on table {table}")
    else:
        typer.echo(f"injected {kind} on table {table} at t={format_seconds(now)}")


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
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="For scripts: print one JSON line naming every table's URL and wire (pty paths "
            "included), then one JSON line per injected fault; no live view.",
        ),
    ] = False,
) -> None:
    """Serve simulated traction tables on a real wire protocol until Ctrl-C.

    Each table is a physics model (motor with a slew limit, the patient as spring and damper, a noisy
    load cell) with the firmware's heartbeat watchdog, answering Modbus TCP, Modbus RTU or the line
    protocol exactly as a conforming table would.

    Where each table listens (its URL, and on rtu/line the pty path) is printed first, always,
    one "table N: URL" line each, so a log or a script can find it; on a terminal a live view
    follows. With --json the first line is {"event": "serving", "tables": [...]}.

    Examples:

      traction simulate                                  # one Modbus TCP table on 127.0.0.1:5020

      traction simulate --transport rtu --json | head -1 # where the pty is, for a script

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
                as_json,
            )
        )

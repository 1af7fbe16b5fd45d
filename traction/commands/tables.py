"""``traction tables``: what the configured tables are and how they are, and clearing a fault."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from devices.clock import ScaledClock
from devices.errors import TableError
from devices.units import format_force
from traction.context import settings_from
from traction.errors import friendly_errors
from traction.options import ConfigOption
from traction.settings import Settings
from traction.tables import open_table

tables_app = typer.Typer(help="The tables wired to this workstation.", no_args_is_help=True)
console = Console()


async def _survey(settings: Settings) -> Table:
    view = Table("table", "URL", "model / serial", "rated", "force", "state")
    for configured in settings.tables:
        try:
            async with open_table(configured.url, ScaledClock(), configured.name) as opened:
                info = await opened.table.identify()
                state = await opened.table.read_state()
        except TableError as exc:
            view.add_row(configured.name, configured.url, "", "", "", f"[red]{exc.message}[/]")
            continue
        flags = [
            name
            for name, on in (
                ("running", state.running),
                ("ready", state.ready),
                ("released", state.released),
                (f"fault {state.fault_code}", state.faulted),
                ("stop switch", state.stop_switch_pressed),
                ("switch unplugged", not state.stop_switch_connected),
                ("watchdog", state.watchdog_tripped),
            )
            if on
        ]
        unit = settings.display_unit
        view.add_row(
            configured.name,
            configured.url,
            f"{info.model} / {info.serial_number}",
            format_force(info.rated_max_force_n, unit),
            format_force(state.measured_force_n, unit),
            " ".join(flags),
        )
    return view


@tables_app.command("list")
def list_tables(config: ConfigOption = None) -> None:
    """Connect to each configured table and show its identity and state."""
    with friendly_errors():
        console.print(asyncio.run(_survey(settings_from(config))))


async def _clear(url: str, name: str) -> str:
    async with open_table(url, ScaledClock(), name) as opened:
        await opened.table.clear_fault()
        state = await opened.table.read_state()
    return "ready" if state.ready else "still not ready (check the stop switch and the fault)"


@tables_app.command("clear-fault")
def clear_fault(
    name: Annotated[str, typer.Argument(help="Table name from the settings.")],
    config: ConfigOption = None,
) -> None:
    """Clear a latched fault (stop switch, watchdog, overload) after checking the patient and table."""
    with friendly_errors():
        settings = settings_from(config)
        configured = settings.table(name)
        console.print(f"{name}: {asyncio.run(_clear(configured.url, name))}")

"""``traction tables``: what the configured tables are and how they are, clearing a fault, and
acknowledging a lock."""

from __future__ import annotations

import asyncio
import getpass
from datetime import tzinfo
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from devices.clock import ScaledClock
from devices.errors import TableError
from devices.faults import fault
from devices.units import format_force
from session.localtime import local_time
from session.lockouts import Lockouts, TableLockout
from traction.api.access import Permission
from traction.context import open_store, settings_from
from traction.errors import friendly_errors
from traction.exitcodes import Exit
from traction.options import ConfigOption
from traction.settings import Settings
from traction.signin import authorized_user
from traction.tables import open_table

tables_app = typer.Typer(help="The tables wired to this workstation.", no_args_is_help=True)
console = Console()


def _alarm_text(locks: list[TableLockout], zone: tzinfo) -> str:
    return " ".join(
        f"[bold white on red]LOCKED[/] {lock.fault} at "
        f"{local_time(lock.locked_at, zone)}: {lock.reason}"
        for lock in locks
    )


async def _survey(settings: Settings, lockouts: Lockouts) -> tuple[Table, list[str]]:
    """The view of every configured table (and of every other locked one), and the names of the
    configured tables that could not be read."""
    view = Table("table", "URL", "model / serial", "rated", "force", "state", "alarm")
    unreachable: list[str] = []
    ws = settings.workstation
    shown: set[int] = set()
    for configured in settings.tables:
        try:
            async with open_table(configured.url, ScaledClock(), configured.name) as opened:
                info = await opened.table.identify()
                state = await opened.table.read_state()
        except TableError as exc:
            locks = await asyncio.to_thread(lockouts.active, ws, configured.name)
            shown |= {lock.id or 0 for lock in locks}
            view.add_row(
                configured.name,
                configured.url,
                "",
                "",
                "",
                f"[red]{exc.message}[/]",
                _alarm_text(locks, settings.zone),
            )
            unreachable.append(configured.name)
            continue
        locks = await asyncio.to_thread(lockouts.active, ws, configured.name, info.serial_number)
        shown |= {lock.id or 0 for lock in locks}
        flags = [
            name
            for name, on in (
                ("running", state.running),
                ("ready", state.ready),
                ("released", state.released),
                (f"fault: {fault(state.fault).title}" if state.faulted else "", state.faulted),
                ("stop switch", state.stop_switch_pressed),
                ("operator stop", state.operator_stop_pressed),
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
            _alarm_text(locks, settings.zone),
        )
    # Tables run by URL (not in the settings) can be locked too: their alarms stay listed.
    for lock in await asyncio.to_thread(lockouts.active_on, ws):
        if (lock.id or 0) not in shown:
            view.add_row(
                lock.table_name, lock.table_url, f"? / {lock.device_serial}", "", "", "",
                _alarm_text([lock], settings.zone),
            )  # fmt: skip
    return view, unreachable


@tables_app.command("list")
def list_tables(config: ConfigOption = None) -> None:
    """Connect to each configured table and show its identity, its state and any alarm.

    A table locked by a lock-severity trip (hard limit, stuck or disagreeing sensors, watchdog,
    overload) shows LOCKED until it is acknowledged with `traction tables ack NAME`. Every table
    is listed, reachable or not; the exit code is 5 when any could not be read, so a script can
    tell "all tables answer" from "some do not".
    """
    with friendly_errors():
        settings = settings_from(config)
        lockouts = Lockouts(open_store(settings).engine)
        view, unreachable = asyncio.run(_survey(settings, lockouts))
    console.print(view)
    if unreachable:
        Console(stderr=True).print(
            f"[red]{len(unreachable)} of {len(settings.tables)} table(s) unreachable:[/] "
            f"{', '.join(unreachable)}. Check the cable, address and power, then retry."
        )
        raise typer.Exit(Exit.TABLE)


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


@tables_app.command("ack")
def acknowledge(
    name: Annotated[
        str,
        typer.Argument(help="The locked table: its name in the settings, its URL, or its serial."),
    ],
    reason: Annotated[
        str,
        typer.Option(
            help="What was checked (patient, table, sensor) and why the table may run again.",
        ),
    ],
    demo: Annotated[
        bool,
        typer.Option(
            "--demo", help="The lock is in `traction demo`'s own store (<data dir>/demo)."
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Acknowledge a locked table's alarm, so that sessions may start on it again.

    A lock-severity trip (hard limit, stuck or disagreeing sensors, watchdog, overload) locks the
    table: `traction run`, `demo` and the HTTP service refuse to start on it. A clinician checks
    the patient and the table first, then acknowledges here as the person signed in with
    `traction login` (a clinician or technician); who and why are recorded.

    Example:

      traction tables ack lumbar-1 --reason "patient checked, no distress; load cell verified"
    """
    with friendly_errors():
        settings = settings_from(config)
        if demo:  # a rehearsal's store: no sign-in there; the operating-system user is recorded
            from traction.commands.demo import demo_settings

            settings = demo_settings(settings, None, clinic_store=False)
            store = open_store(settings)
            who = f"{getpass.getuser()} (demo rehearsal on {settings.workstation})"
        else:
            store = open_store(settings)
            user = authorized_user(
                store, settings, Permission.ACKNOWLEDGE, "acknowledge a locked table"
            )
            who = f"{user.name} ({user.role})"
        lockouts = Lockouts(store.engine)
        for lock in lockouts.acknowledge(settings.workstation, name, who, reason):
            session = f" in session {lock.session_id}" if lock.session_id else ""
            console.print(
                f"acknowledged: table {lock.table_name} ({lock.fault} trip{session} at "
                f"{local_time(lock.locked_at, settings.zone, seconds=True)}: {lock.reason}) by "
                f"{who}: {reason.strip()}"
            )
        console.print(
            f"If the table itself still shows a latched fault: traction tables clear-fault {name}"
        )

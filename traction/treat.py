"""Running one treatment from the workstation's terminal: shared by ``traction run`` and ``demo``."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import signal
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from devices.clock import ScaledClock
from devices.configfiles import config_file
from devices.errors import ConfigError
from devices.limits import Violation, blocking, load_limits
from devices.profiles import ForceProfile, load_profile
from devices.records import Record, Started
from devices.units import ForceUnit
from devices.urls import parse_table_url
from session.lockouts import Lockouts, TableRef
from session.models import Patient
from session.runner import Treatment, TreatmentResult, preflight, prior_sessions
from session.store import SessionContext, Store
from traction.context import claim_workstation
from traction.faults import LINK_FAULTS, ScheduledFault
from traction.live import LiveView
from traction.tables import OpenTable, open_table


def resolve_profile(text: str) -> ForceProfile:
    """A profile file path, or the name of one shipped in configs/profiles/ (e.g. ``demo``)."""
    path = Path(text)
    if path.is_file():
        return load_profile(path)
    shipped = config_file("profiles", f"{text}.toml")
    if shipped.is_file():
        return load_profile(str(shipped))
    names = sorted(
        p.name.removesuffix(".toml")
        for p in config_file("profiles").iterdir()
        if p.name.endswith(".toml")
    )
    raise ConfigError(
        "profile", f"{text!r} is neither a file nor a shipped profile ({', '.join(names)})"
    )


def violations_table(violations: list[Violation], unit: ForceUnit) -> Table:
    table = Table("", "field", "value", "limit", "rule", title="Safety check")
    for v in violations:
        mark = "[red]BLOCK[/]" if v.blocking else "[yellow]warn[/]"
        table.add_row(mark, v.field, v.value, v.limit, v.message)
    return table


@dataclass
class Refused(Exception):
    """The prescription did not pass the safety check; nothing moved."""

    violations: list[Violation]


async def treat(
    store: Store,
    url: str,
    profile: ForceProfile,
    patient: Patient,
    context: SessionContext,
    *,
    data_dir: Path,
    time_scale: float,
    unit: ForceUnit,
    console: Console,
    operator_confirmed: bool = False,
    tick_hz: float | None = None,
    limits_path: Path | None = None,
    faults: Sequence[ScheduledFault] = (),
    label: str | None = None,
    name: str | None = None,
    ack_command: str | None = None,
    memory_limit_mb: int = 1024,
) -> TreatmentResult:
    """Check, run with a live readout, and record one session. Ctrl-C stops with a controlled
    ramp-down; a second Ctrl-C releases at once. Raises :class:`Refused` on a blocking violation
    and ``session.lockouts.TableLocked`` when the table (``name``, default the URL) is locked by
    an unacknowledged trip.

    The control loop runs in the treatment process (:mod:`session.control_host`,
    ``memory_limit_mb`` of address space); Ctrl-C reaches this process only, which relays it.

    First the workstation's identity is claimed (made on the first start in ``data_dir``) and its
    sessions whose process is gone are recorded to their end (journal ingested, interrupted,
    sealed); sessions other processes are running are left alone."""
    if time_scale != 1.0 and parse_table_url(url).scheme != "sim":
        raise ConfigError("--time-scale", "only simulated (sim://) tables run on a scaled clock")
    identity, report = await asyncio.to_thread(
        claim_workstation, store, data_dir, context.workstation
    )
    for session_id in report.closed:
        console.print(f"[yellow]recovered session {session_id}[/] (its process had ended)")
    context = replace(context, workstation_id=identity.id)
    limits = load_limits(limits_path)
    table = name or url  # what the workstation calls it: the key of its lock
    lockouts = Lockouts(store.engine)
    await asyncio.to_thread(lockouts.refuse_if_locked, TableRef(context.workstation, table, url))
    prior = await asyncio.to_thread(prior_sessions, store, patient)
    clock = ScaledClock(time_scale)
    async with open_table(url, clock, name) as opened:
        device, violations = await preflight(
            opened.table, profile, patient, limits, operator_confirmed, prior
        )
        ref = TableRef(context.workstation, table, url, device.serial_number)
        await asyncio.to_thread(lockouts.refuse_if_locked, ref)  # the same table by another name
        if violations:
            console.print(violations_table(violations, unit))
        if blocking(violations):
            raise Refused(blocking(violations))
        if faults and not opened.simulated:
            raise ConfigError(
                "--fault", "faults can only be injected into simulated (sim://) tables"
            )
        treatment = Treatment(
            store,
            opened.table,
            profile,
            patient,
            # a simulator's session is marked simulated: never billed
            dataclasses.replace(context, simulated=context.simulated or opened.simulated),
            limits,
            clock,
            identity.journal_dir,
            tick_hz=tick_hz,
            operator_confirmed=operator_confirmed,
            table_label=label or url,
            prior_sessions=prior,
            unit=unit,
            table_name=table,
            table_url=url,
            memory_limit_bytes=memory_limit_mb * 1024 * 1024,
        )
        view = LiveView(
            unit,
            profile.total_s,
            limits.hard_limit_n(profile, device),
            f"{opened.name} · patient {patient.reference} · {profile.name}",
            table_name=table,
            ack_command=ack_command,
        )
        treatment.subscribe(view)
        presses = 0

        def on_interrupt() -> None:
            nonlocal presses
            presses += 1
            if presses == 1:
                view.status = "stopping (controlled ramp-down)"
                treatment.loop.stop("operator pressed Ctrl-C")
            else:
                treatment.loop.release("operator pressed Ctrl-C twice: immediate release")

        def on_terminate() -> None:
            treatment.loop.release("terminated by the system (SIGTERM): immediate release")

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, on_interrupt)
        loop.add_signal_handler(signal.SIGTERM, on_terminate)
        started = StartedWatch()
        treatment.subscribe(started)
        injector = asyncio.create_task(_inject(faults, opened, clock, console, started.seen))
        try:
            with Live(view, console=console, refresh_per_second=8, transient=False):
                return await treatment.run()
        finally:
            console.line()
            injector.cancel()
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)


class StartedWatch:
    """Sets ``seen`` when the session has started (its treatment process takes a moment)."""

    def __init__(self) -> None:
        self.seen = asyncio.Event()

    def deliver(self, record: Record) -> None:
        if isinstance(record, Started):
            self.seen.set()


async def _inject(
    faults: Sequence[ScheduledFault],
    opened: OpenTable,
    clock: ScaledClock,
    console: Console,
    started: asyncio.Event,
) -> None:
    """Apply scheduled faults to a simulated table at their session times (rehearsals)."""
    if not faults:
        return
    await started.wait()
    start = clock.now()
    for fault in sorted(faults, key=lambda f: f.at_s):
        await clock.sleep_until(start + fault.at_s)
        model = opened.models.get(fault.table)
        if model is None or fault.kind in LINK_FAULTS:
            console.print(f"[yellow]fault {fault.kind} cannot be injected here; skipped[/]")
            continue
        await opened.in_simulator(functools.partial(fault.apply, model, clock.now()))
        console.print(f"[magenta]injected {fault.kind}[/] at {fault.at_s:g} s")

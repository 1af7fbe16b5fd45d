"""The live readout a clinician watches during a session: force against target, phase, time left.

It is a stream subscriber like the recorder, but one that may fall behind: it keeps only the latest
sample and the last few events, so a slow terminal never holds anything up. It is laid out to fit an
80x24 terminal, and once the session has finished it stops showing a force or a countdown and says
plainly whether the table is released.
"""

from __future__ import annotations

import collections
import math

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from devices.records import Event, EventKind, Finished, Phase, Record, Sample, Started
from devices.units import ForceUnit, format_force
from session.cycles import CycleCount
from session.lockouts import is_lock

_ALARM = {EventKind.TRIP, EventKind.STOP_SWITCH, EventKind.LINK_LOST, EventKind.FAULT}
_EVENT_LINES = 4  # with the grid and the frame this keeps the panel within 24 rows

# What an event means for the patient, said next to it so nobody has to guess.
_MEANING = {
    EventKind.TRIP: "traction released at once",
    EventKind.STOP_SWITCH: "patient pressed the stop switch; traction released",
    EventKind.LINK_LOST: "if the link stays down the table releases by itself",
    EventKind.LINK_BACK: "link restored",
    EventKind.FAULT: "the table reported a fault; traction released",
    EventKind.PAUSE: "force held at its current value",
}


def mmss(seconds: float) -> str:
    """``mm:ss`` of a non-negative duration, rounded to the nearest second (never ``03:60``)."""
    whole = max(0, math.floor(seconds + 0.5))
    minutes, secs = divmod(whole, 60)
    return f"{minutes:02d}:{secs:02d}"


def _label(event: Event) -> str:
    """An event's kind, and for a trip the fault's name and severity (never a device code)."""
    name, severity = event.data.get("fault"), event.data.get("severity")
    if name and severity:
        return f"{event.kind.value} {name} ({severity})"
    return event.kind.value


class LiveView:
    """Subscriber that renders the session as a Rich panel."""

    def __init__(
        self,
        unit: ForceUnit,
        total_s: float,
        hard_limit_n: float,
        title: str,
        table_name: str = "NAME",
        ack_command: str | None = None,
    ) -> None:
        self.unit = unit
        self.table_name = table_name
        self.ack_command = ack_command or f"traction tables ack {table_name}"
        self.alarm: Event | None = None  # a lock-severity trip: stays raised until acknowledged
        self.total_s = total_s
        self.hard_limit_n = hard_limit_n
        self.title = title
        self.t0: float | None = None
        self.sample: Sample | None = None
        self.events: collections.deque[Event] = collections.deque(maxlen=_EVENT_LINES)
        self.finished: Finished | None = None
        self.released = False
        self.peak_n = 0.0
        self.cycles = CycleCount()
        self.status = "starting"
        self.device = ""
        self.phase_durations: dict[Phase, float] = {}
        self.phase: Phase | None = None
        self.phase_t0 = 0.0

    def deliver(self, record: Record) -> None:
        if isinstance(record, Started):
            self.t0 = record.t
            self.hard_limit_n = float(record.extra.get("hard_limit_n", self.hard_limit_n))
            self.device = " ".join(
                str(record.device.get(key, "")) for key in ("model", "serial_number")
            ).strip()
            hold, rest = record.profile.get("hold_s"), record.profile.get("rest_s")
            if hold:
                for phase in (Phase.HOLD, Phase.PROGRESSION, Phase.REGRESSION):
                    self.phase_durations[phase] = float(hold)
            if rest:
                self.phase_durations[Phase.REST] = float(rest)
        elif isinstance(record, Sample):
            if record.phase is not self.phase:
                self.phase, self.phase_t0 = record.phase, record.t
            self.sample = record
            self.peak_n = max(self.peak_n, record.measured_n)
            self.cycles.add(record.phase, record.target_n)
        elif isinstance(record, Event) and record.kind is not EventKind.PHASE:
            self.events.append(record)
            if record.kind is EventKind.RELEASED:
                self.released = True
            if is_lock(record):
                self.alarm = record
        elif isinstance(record, Finished):
            self.finished = record

    def _force(self, value_n: float) -> str:
        return format_force(value_n, self.unit)

    def _countdown(self, sample: Sample) -> str:
        duration = self.phase_durations.get(sample.phase)
        if duration is None:
            return ""
        left = max(0.0, duration - (sample.t - self.phase_t0))
        return f"   {sample.phase.value} {mmss(left)} left"

    def _running_rows(self, grid: Table, sample: Sample) -> None:
        elapsed = sample.t - (self.t0 or 0.0)
        remaining = max(0.0, self.total_s - elapsed)
        scale_max = max(self.hard_limit_n, 1.0)
        grid.add_row("measured", Text(self._force(sample.measured_n), style="bold cyan"))
        grid.add_row("target", self._force(sample.target_n))
        grid.add_row("", ProgressBar(total=scale_max, completed=sample.measured_n, width=40))
        grid.add_row("phase", self._countdown(sample).strip() or sample.phase.value)
        grid.add_row("cycles", self.cycles.describe(self.unit))  # the note's wording
        grid.add_row("time", f"{mmss(elapsed)} elapsed, {mmss(remaining)} remaining")

    def _final_rows(self, grid: Table, finished: Finished) -> None:
        if self.released:
            grid.add_row(
                "table", Text("RELEASED: no traction force is applied", style="bold green")
            )
        else:
            grid.add_row(
                "table",
                Text(
                    "release NOT confirmed: check the table and release the patient by hand",
                    style="bold red",
                ),
            )
        grid.add_row("outcome", f"{finished.outcome.value}: {finished.reason}")
        elapsed = finished.t - (self.t0 or 0.0)
        grid.add_row("time", f"{mmss(elapsed)} of {mmss(self.total_s)} delivered")
        grid.add_row("cycles", self.cycles.describe(self.unit))

    def __rich__(self) -> RenderableType:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        if self.device:
            grid.add_row("device", self.device)
        if self.finished is not None:
            self._final_rows(grid, self.finished)
        elif self.sample is None:
            grid.add_row("status", self.status)
        else:
            self._running_rows(grid, self.sample)
        grid.add_row(
            "limits",
            f"hard limit {self._force(self.hard_limit_n)}; peak {self._force(self.peak_n)}",
        )
        lines = [self._event_line(e) for e in self.events]
        parts: list[RenderableType] = [grid, *lines]
        if self.alarm is not None:
            parts += [
                Text(
                    f"ALARM - table {self.table_name} LOCKED: {self.alarm.reason}",
                    style="bold white on red",
                    no_wrap=True,
                    overflow="ellipsis",
                ),
                Text(
                    f'check the patient and the table, then: {self.ack_command} --reason "..."',
                    style="bold red",
                ),
            ]
        if self.finished is None:
            parts.append(
                Text("Ctrl-C: controlled stop   Ctrl-C again: release at once", style="dim")
            )
        return Panel(Group(*parts), title=self.title, title_align="left")

    def _event_line(self, event: Event) -> Text:
        meaning = _MEANING.get(event.kind)
        if event.kind is EventKind.WARNING and "overruns" in event.data:
            meaning = "safe: the pull never outran its ramp and the table's limits stayed armed"
        # what it means for the patient first: on a narrow terminal the detail is what gets cut
        said = f"{meaning}; {event.reason}" if meaning else event.reason
        text = f"{mmss(event.t - (self.t0 or 0.0))}  {_label(event)}: {said}"
        return Text(
            text,
            style="bold red" if event.kind in _ALARM else "",
            no_wrap=True,
            overflow="ellipsis",
        )

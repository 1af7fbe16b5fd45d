"""The live readout a clinician watches during a session: force against target, phase, time left.

It is a stream subscriber like the recorder, but one that may fall behind: it keeps only the latest
sample and the last few events, so a slow terminal never holds anything up.
"""

from __future__ import annotations

import collections

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from devices.records import Event, EventKind, Finished, Record, Sample, Started
from devices.units import ForceUnit, format_force

_ALARM = {EventKind.TRIP, EventKind.STOP_SWITCH, EventKind.LINK_LOST, EventKind.FAULT}


class LiveView:
    """Subscriber that renders the session as a Rich panel."""

    def __init__(self, unit: ForceUnit, total_s: float, hard_limit_n: float, title: str) -> None:
        self.unit = unit
        self.total_s = total_s
        self.hard_limit_n = hard_limit_n
        self.title = title
        self.t0: float | None = None
        self.sample: Sample | None = None
        self.events: collections.deque[Event] = collections.deque(maxlen=6)
        self.finished: Finished | None = None
        self.peak_n = 0.0
        self.status = "starting"

    def deliver(self, record: Record) -> None:
        if isinstance(record, Started):
            self.t0 = record.t
            self.hard_limit_n = float(record.extra.get("hard_limit_n", self.hard_limit_n))
        elif isinstance(record, Sample):
            self.sample = record
            self.peak_n = max(self.peak_n, record.measured_n)
        elif isinstance(record, Event) and record.kind is not EventKind.PHASE:
            self.events.append(record)
        elif isinstance(record, Finished):
            self.finished = record

    def _force(self, value_n: float) -> str:
        return format_force(value_n, self.unit)

    def __rich__(self) -> RenderableType:
        sample = self.sample
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        if sample is None:
            grid.add_row("status", self.status)
        else:
            elapsed = sample.t - (self.t0 or 0.0)
            remaining = max(0.0, self.total_s - elapsed)
            scale_max = max(self.hard_limit_n, 1.0)
            grid.add_row("measured", Text(self._force(sample.measured_n), style="bold cyan"))
            grid.add_row("target", self._force(sample.target_n))
            grid.add_row("", ProgressBar(total=scale_max, completed=sample.measured_n, width=40))
            grid.add_row("phase", f"{sample.phase.value}   cycle {sample.cycle}")
            grid.add_row(
                "time",
                f"{elapsed // 60:02.0f}:{elapsed % 60:02.0f} elapsed, "
                f"{remaining // 60:02.0f}:{remaining % 60:02.0f} remaining",
            )
            grid.add_row(
                "limits",
                f"hard limit {self._force(self.hard_limit_n)}; peak so far {self._force(self.peak_n)}",
            )
        lines = [
            Text(
                f"{e.t - (self.t0 or 0.0):7.1f} s  {e.kind.value}: {e.reason}",
                style="bold red" if e.kind in _ALARM else "",
            )
            for e in self.events
        ]
        if self.finished is not None:
            lines.append(
                Text(
                    f"finished: {self.finished.outcome.value} ({self.finished.reason})",
                    style="bold",
                )
            )
        hint = Text("Ctrl-C: controlled stop   Ctrl-C again: release at once", style="dim")
        return Panel(Group(grid, *lines, hint), title=self.title)

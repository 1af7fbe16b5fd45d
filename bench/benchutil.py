"""What every benchmark shares: timing loops, the machine's description, and RESULTS.md sections.

Each benchmark owns one section of bench/RESULTS.md, between ``<!-- name -->`` and
``<!-- /name -->`` markers, so running one benchmark replaces its own numbers and keeps the others.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "RESULTS.md"

if str(REPO) not in sys.path:  # run as a script from anywhere: the packages are at the repo root
    sys.path.insert(0, str(REPO))

from devices.contract import Table  # noqa: E402 - needs the repository on the path


@dataclass(frozen=True)
class Rate:
    """Calls completed in a timed window."""

    calls: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds

    @property
    def ms_per_call(self) -> float:
        return 1000.0 * self.seconds / self.calls


async def rate_of(call: Callable[[], Awaitable[object]], seconds: float, warmup: int = 20) -> Rate:
    """Back-to-back calls of ``call`` for about ``seconds`` of real time, after a warm-up."""
    for _ in range(warmup):
        await call()
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        await call()
        calls += 1
        now = time.perf_counter()
        if now >= deadline:
            return Rate(calls, now - start)


Hook = Callable[[], Awaitable[object]]


async def interleaved(
    subject: Hook,
    baseline: Hook,
    seconds: float,
    rounds: int = 3,
    exclusive: tuple[tuple[Hook, Hook], tuple[Hook, Hook]] | None = None,
) -> tuple[Rate, Rate]:
    """Best-of-``rounds`` rates of subject and baseline, alternating so load hits both alike.

    ``exclusive`` gives (open, close) hooks for the subject and the baseline when only one of them
    may hold the link at a time (a serial port is locked by whoever opens it).
    """
    subjects: list[Rate] = []
    baselines: list[Rate] = []
    for _ in range(rounds):
        for call, results, side in ((baseline, baselines, 1), (subject, subjects, 0)):
            if exclusive is not None:
                await exclusive[side][0]()
            try:
                results.append(await rate_of(call, seconds))
            finally:
                if exclusive is not None:
                    await exclusive[side][1]()
    return max(subjects, key=lambda r: r.per_second), max(baselines, key=lambda r: r.per_second)


TICK_RATES_HZ = (25, 50, 100, 200, 400, 800, 1600)
TICK_WINDOW_S = 1.0
TICK_HEADER = [
    "| target Hz | achieved Hz | tick p50 ms | tick p99 ms | late ticks | sustained |",
    "|---|---|---|---|---|---|",
]


@dataclass(frozen=True)
class TickRun:
    """One window of deadline ticks at a target rate."""

    hz: int
    achieved_hz: float
    durations: list[float]
    late: int

    @property
    def sustained(self) -> bool:
        wanted = len(self.durations)
        return self.achieved_hz >= 0.98 * self.hz and self.late <= 0.01 * wanted

    def row(self, note: str = "") -> str:
        p50, p99 = percentile(self.durations, 0.5), percentile(self.durations, 0.99)
        verdict = "yes" if self.sustained else "no"
        return (
            f"| {self.hz} | {self.achieved_hz:.0f} | {1000 * p50:.2f} | {1000 * p99:.2f} | "
            f"{self.late} | {verdict}{note} |"
        )


async def tick_window(table: Table, hz: int) -> TickRun:
    """Deadline ticks at ``hz`` for TICK_WINDOW_S: heartbeat and read, as the control loop does."""
    period = 1.0 / hz
    wanted = int(TICK_WINDOW_S * hz)
    durations: list[float] = []
    start = time.perf_counter()
    deadline = start
    late = 0
    for _ in range(wanted):
        tick_start = time.perf_counter()
        await table.heartbeat()
        await table.read_state()
        now = time.perf_counter()
        durations.append(now - tick_start)
        deadline += period
        if now > deadline:
            late += 1
            deadline = now  # skip ahead rather than burst to catch up, as the loop does
        else:
            await asyncio.sleep(deadline - now)
    return TickRun(hz, wanted / (time.perf_counter() - start), durations, late)


async def sustainable_tick_rate(table: Table) -> tuple[int, list[str]]:
    """The highest rate in TICK_RATES_HZ at which deadline ticks keep up; a row per rate tried.

    A tick is what the control loop does every period while the target holds still: heartbeat and
    read the state (the loop writes the target only when it changes). A rate is sustained when at
    least 98 % of its ticks run and no more than 1 % finish after the next deadline. A rate that
    misses gets a second window, so one stall on a busy machine does not end the ladder.
    """
    await table.set_target(0.0)
    best = 0
    rows: list[str] = []
    for hz in TICK_RATES_HZ:
        run = await tick_window(table, hz)
        note = ""
        if not run.sustained:
            run, note = await tick_window(table, hz), " (second window)"
        rows.append(run.row(note))
        if not run.sustained:
            break
        best = hz
    return best, rows


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    """One line naming the machine the numbers came from."""
    load = os.getloadavg()
    return (
        f"{platform.node() or 'host'}: nproc={os.cpu_count()}, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()}, "
        f"load average at start {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}"
    )


def command_line() -> str:
    """The command that produced these results, as run from the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        shown = str(script.relative_to(REPO))
    except ValueError:
        shown = str(script)
    return shlex.join([".venv/bin/python", shown, *sys.argv[1:]])


def write_section(name: str, title: str, machine_line: str, lines: list[str]) -> None:
    """Replace (or append) this benchmark's section of RESULTS.md."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join(
        [
            f"<!-- {name} -->",
            f"## {title}",
            "",
            f"Command: `{command_line()}`  ",
            f"Machine: {machine_line}  ",
            f"Run: {stamp}",
            "",
            *lines,
            f"<!-- /{name} -->",
        ]
    )
    text = RESULTS.read_text() if RESULTS.exists() else _HEADER
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + body + tail
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    RESULTS.write_text(text)


_HEADER = """# Benchmark results

Latest numbers from the scripts in bench/ (see bench/README.md). Each section is rewritten by its
own script; ratios compare against a baseline run in the same process, so they travel between
machines better than the absolute figures. Loopback and pseudo-terminals only: a pty does not pace
bytes at the baud rate, so serial figures are host overhead, and the wire time is the estimate.
"""

"""What a command costs before it does anything: imports, against typer + rich alone.

Each figure is a fresh interpreter, repeated and alternated with its baseline so machine load hits
both alike:

- process time (user + system CPU, which a loaded machine inflates far less than wall time) and
  wall time of ``traction --help`` against ``python -c "import typer, rich"``, and of
  ``python -c pass``;
- the import time Python itself reports (``-X importtime``, the sum over top-level imports) of
  the same, which leaves the interpreter's start-up out;
- the same for ``traction sessions list --help`` (the command's own module loaded: the store,
  SQLAlchemy) and which heavy packages each one loads.

Target (issue 15): ``traction --help`` at most 3x the import time of typer + rich alone.

Run from the repository root: ``.venv/bin/python bench/bench_imports.py`` (about 30 s).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_listing import fill
from benchutil import machine, write_section

ROUNDS = 7
TRACTION = str(Path(sys.executable).with_name("traction"))
BASELINE = "import typer, rich"
HEAVY = ("sqlalchemy", "sqlmodel", "alembic", "fastapi", "matplotlib", "reportlab", "pymodbus")

CASES: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "typer + rich alone": [sys.executable, "-c", BASELINE],
    "traction --help": [TRACTION, "--help"],
    "traction sessions list --help": [TRACTION, "sessions", "list", "--help"],
    "traction sessions list (a store of 10 sessions)": [TRACTION, "sessions", "list"],
}


def cpu_and_wall(command: list[str]) -> tuple[float, float]:
    """(user + system CPU seconds, wall seconds) of one run of ``command``."""
    before = os.times()
    begin = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "COLUMNS": "100"})
    wall = time.perf_counter() - begin
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return cpu, wall


def import_seconds(command: list[str]) -> tuple[float, list[str]]:
    """Seconds of imports ``-X importtime`` reports (top-level entries summed), and which of
    HEAVY were imported."""
    if command[0] == TRACTION:
        command = [sys.executable, "-X", "importtime", "-m", "traction", *command[1:]]
    else:
        command = [command[0], "-X", "importtime", *command[1:]]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    total_us = 0
    loaded: set[str] = set()
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if cumulative.strip().isdigit() and not name.startswith("  "):  # top level only
            total_us += int(cumulative)
        loaded.add(name.strip().split(".")[0])
    return total_us / 1e6, [m for m in HEAVY if m in loaded]


def main() -> None:
    machine_line = machine()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="traction-bench-") as tmp:
        fill(Path(tmp), 10)
        os.environ["TRACTION_DATA_DIR"] = tmp
        rows = measure()
    took = time.perf_counter() - began
    lines = [
        "### Imports per command against typer + rich alone",
        "",
        f"Medians of {ROUNDS} alternating runs, each a fresh interpreter. `{BASELINE}` is the "
        "baseline. Target: `traction --help` at most 3x its import time.",
        "",
        "| what | imports s (-X importtime) | imports / baseline | CPU s (user+sys) | "
        "CPU / baseline | wall s | heavy packages loaded |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Total run time {took:.0f} s.",
        "",
    ]
    print("\n".join(lines))
    write_section("bench_imports", "Command imports (bench/bench_imports.py)", machine_line, lines)


def measure() -> list[str]:
    cpu: dict[str, list[float]] = {name: [] for name in CASES}
    wall: dict[str, list[float]] = {name: [] for name in CASES}
    imports: dict[str, list[float]] = {name: [] for name in CASES}
    heavy: dict[str, list[str]] = {}
    for _ in range(ROUNDS):
        for name, command in CASES.items():
            c, w = cpu_and_wall(command)
            cpu[name].append(c)
            wall[name].append(w)
            seconds, heavy[name] = import_seconds(command)
            imports[name].append(seconds)
    base = "typer + rich alone"
    rows = []
    for name in CASES:
        ratio = statistics.median(imports[name]) / statistics.median(imports[base])
        cpu_ratio = statistics.median(cpu[name]) / statistics.median(cpu[base])
        rows.append(
            f"| {name} | {statistics.median(imports[name]):.3f} | {ratio:.2f} | "
            f"{statistics.median(cpu[name]):.3f} | {cpu_ratio:.2f} | "
            f"{statistics.median(wall[name]):.3f} | {', '.join(heavy[name]) or '-'} |"
        )
    return rows


if __name__ == "__main__":
    main()

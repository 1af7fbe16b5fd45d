"""The fault matrix's machinery: one real ``traction run`` process, one simulated table on its real
wire, one injected fault, and the table's own log of the truth.

Black-box on purpose: the host is the command a clinic runs (a subprocess, so it can be killed
outright), the table is a simulator in this process behind Modbus TCP, Modbus RTU on a pty pair or
line-v1 on a pty pair, and every figure comes from the simulator's trace of the TRUE cord tension
(``TableModel.start_trace``), never from what the host read. The record is read back from the
case's own SQLite store. Nothing here knows how the host runs its control loop.

Cases run several at a time (:func:`run_matrix`): each waits most of its life on real-time
physics, so running them side by side keeps the whole matrix within a few minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import sys
import threading
import time
import tomllib
import traceback
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cli_support import PASSWORD
from conftest_db import CommandRunner

from devices.clock import ScaledClock
from devices.faults import FAULTS, Severity
from devices.units import N_PER_LBF
from simulators.line_server import start_line_simulator
from simulators.modbus_server import start_rtu_simulator, start_tcp_simulator
from simulators.physics import TableModel, TableSpec, TraceRow
from simulators.priority import answer_like_a_table
from simulators.ptypair import PtyPair
from traction.cli import app
from traction.faults import MODEL_FAULTS

TRANSPORTS = ("modbus-tcp", "modbus-rtu", "line")
PHASES = ("ramp", "hold", "rest")
PAUSED = "paused"  # paused 1 s into the hold, through `traction serve`'s API
TABLE_NAME = "matrix-table"  # the table's name in the settings `traction serve` reads
RTU_BAUD = 19200
LINE_BAUD = 9600  # line-v1's own rate: the control loop's default there is its slow-link 5 Hz
SLOWEST_TICK_HZ = 5.0  # what a bound in ticks assumes if a record lacks its rate
DRIVER_TIMEOUT_S = 0.3

# The prescription every case runs: lumbar intermittent 25/10 lbf, 5 s holds and rests.
HOLD_LBF = 25.0
REST_LBF = 10.0
RAMP_LBF_PER_S = 10.0
HOLD_N = HOLD_LBF * N_PER_LBF
REST_N = REST_LBF * N_PER_LBF
OVER_TARGET_TOLERANCE_N = 5.0 * N_PER_LBF  # configs/safety.toml [supervisor]
HARD_LIMIT_N = HOLD_N + 10.0 * N_PER_LBF  # hold + hard_limit_margin
PROFILE = f"""\
name = "fault matrix: lumbar intermittent {HOLD_LBF:g}/{REST_LBF:g} lbf"
region = "lumbar"
mode = "intermittent"
hold_force = "{HOLD_LBF:g} lbf"
rest_force = "{REST_LBF:g} lbf"
hold_s = 5
rest_s = 5
total_s = 60
ramp_rate = "{RAMP_LBF_PER_S:g} lbf/s"
position = "supine"
unit = "lbf"
"""
# Released: the table says so and the cord is slack (a tenth of a pound left, at most).
SLACK_N = 0.5
HEARTBEAT_TIMEOUT_S = 1.0  # configs/safety.toml [supervisor] heartbeat_timeout_s
WATCHDOG_MARGIN_S = 0.5  # one more heartbeat period on the slowest wire, and a loaded machine
JOLT_N = 20 * N_PER_LBF  # traction.faults "jolt": the patient moves, +20 lbf at once
DB_STALL_S = 3.0
# Under max_stall_s (0.9 s) and the table's 1 s watchdog with room for a loaded machine: the gap
# the loop sees is the freeze plus up to one tick (0.2 s at 5 Hz), 0.2 s under the stall bound.
SHORT_FREEZE_S = 0.5
LONG_FREEZE_S = 5.0  # far past both
MOTOR_SLEW_N_PER_S = TableSpec().slew_n_per_s  # how fast a runaway motor raises the tension
# The steepest rise of the truth over any half second after a host freeze, against the ramp rate:
# a stall that stepped the target would show as a rise two to three times the ramp rate.
RISE_WINDOW_S = 0.5
RISE_MARGIN = 1.5
MAX_CONCURRENT = 4  # the simulators share this process: more would starve their replies
# A case whose session ended before its fault was injected tested nothing (the host tripped on
# something else, most often a reply the loaded machine delayed past its deadline): it is run
# again, with what ended it kept in the case's notes, this many times in all at most.
ATTEMPTS = 3
TECHNICIAN = "tech"  # the user who acknowledges locks (tests/cli_support.py's password)


class NotReached(AssertionError):
    """The session ended before the phase where the fault was to be injected: no fault was
    tested, so the case says so instead of measuring a release it never caused."""


@dataclass(frozen=True)
class FaultClass:
    """One kind of fault, how it is injected, and the release it promises.

    ``bound_ticks`` and ``bound_s`` add up to the promised time from the fault to a slack, released
    cord (ticks of the session's own control period, read from its record); ``why`` says where the
    bound comes from."""

    name: str
    title: str
    bound_ticks: float
    bound_s: float
    why: str
    timed_while_paused: bool = True  # False: paused, the target holds and no time is promised
    peak_bound_n: float = HOLD_N + OVER_TARGET_TOLERANCE_N  # the truth never goes above this


FAULT_CLASSES = {
    f.name: f
    for f in (
        FaultClass(
            "stop-switch",
            "patient stop switch",
            0,
            0.1,
            "the table releases on the switch itself; 0.1 s covers the cord's drop",
        ),
        FaultClass(
            "operator-stop",
            "operator stop button on the table",
            0,
            0.1,
            "the table releases on the button itself; 0.1 s covers the cord's drop",
        ),
        FaultClass(
            "over-force",
            "over-force (patient jolts +20 lbf)",
            3,
            0.3,
            "seen at the next reading (over target, hard limit) or by the table's own force limit; "
            "three ticks, the drop and 0.2 s for a loaded machine",
        ),
        FaultClass(
            "runaway",
            "motor runs away (pulls toward its rating)",
            3,
            OVER_TARGET_TOLERANCE_N / MOTOR_SLEW_N_PER_S + 0.3,
            "the motor raises the tension at its full 150 N/s: the over-target tolerance (5 lbf) "
            "is crossed after 0.15 s, then seen at the next reading; three ticks, the drop and "
            "0.2 s for a loaded machine. Whatever the host does, the table's own force limit (the "
            "hard limit, on its independent channel) releases it: the peak is bounded by the hard "
            "limit, not the prescription",
            peak_bound_n=HARD_LIMIT_N,
        ),
        FaultClass(
            "stuck-load-cell",
            "load cell stuck",
            3,
            6.5,
            "caught once the truth moves 5 lbf from the stuck value (channel disagreement): at "
            "worst after the rest of a 5 s hold or rest and the next ramp. While paused the target "
            "holds, the truth creeps only by the stuck value's own error, and no time is promised: "
            "the force bound is what holds",
            timed_while_paused=False,
        ),
        FaultClass(
            "drift",
            "load cell drifting (channels disagree)",
            3,
            5.5,
            "the offset creeps at 5 N/s: the 5 lbf disagreement band is crossed after 4.4 s",
        ),
        FaultClass(
            "redundant-channel-fail",
            "redundant force channel fails alone (reads 0)",
            3,
            0.3,
            "the two channels disagree by the whole tension (more than the 5 lbf band) at the "
            "next reading; three ticks, the drop and 0.2 s for a loaded machine",
        ),
        FaultClass(
            "link-loss",
            "cable pulled",
            0,
            HEARTBEAT_TIMEOUT_S + WATCHDOG_MARGIN_S,
            "the table's heartbeat watchdog (1 s) lets go; no command can reach it",
        ),
        FaultClass(
            "not-answering",
            "table stops answering",
            0,
            HEARTBEAT_TIMEOUT_S + WATCHDOG_MARGIN_S,
            "the host trips on missing readings and releases; if the table hears nothing either, "
            "its watchdog (1 s) lets go",
        ),
        FaultClass(
            "host-kill",
            "host process killed (kill -9)",
            0,
            HOLD_LBF / RAMP_LBF_PER_S + 2 * WATCHDOG_MARGIN_S,
            "the treatment process sees its channel close and makes a controlled stop: it ramps "
            "down at the prescription's ramp rate (2.5 s from the hold) and releases, plus 1 s for "
            "a loaded machine; had it died too, the table's watchdog (1 s) would let go",
        ),
        FaultClass(
            "db-stall",
            f"database locked for {DB_STALL_S:g} s",
            0,
            HEARTBEAT_TIMEOUT_S,
            "the treatment goes on (the journal keeps every record); the SIGTERM that ends it "
            "releases the table at once (`traction serve` first stops taking requests): within "
            "the watchdog's 1 s",
        ),
        FaultClass(
            "host-freeze-short",
            f"host frozen {SHORT_FREEZE_S:g} s (SIGSTOP)",
            0,
            HEARTBEAT_TIMEOUT_S,
            "under the stall bound (0.9 s) and the table's 1 s watchdog the treatment goes on: the "
            "target ramps on at one tick's ramp per tick (no step), the overrun is recorded; the "
            "SIGTERM that ends it 1 s later releases within the watchdog's 1 s. The gap the loop "
            "sees is the freeze plus up to one tick (it may be asleep toward its next deadline): "
            "0.7 s at most at 5 Hz, so a stall trip means the machine held the loop 0.2 s more; "
            "then the 1 s runs from the thaw",
        ),
        FaultClass(
            "host-freeze-long",
            f"host frozen {LONG_FREEZE_S:g} s (SIGSTOP)",
            0,
            HEARTBEAT_TIMEOUT_S + WATCHDOG_MARGIN_S,
            "no heartbeat reaches the table: its watchdog (1 s) lets go while the host is frozen; "
            "after the thaw the host trips on its own stall and records it",
        ),
        FaultClass(
            "power-cycle",
            "table power cycle",
            0,
            0.1,
            "a table losing power drops the cord; the host trips on a table that stopped running",
        ),
    )
}


@dataclass(frozen=True)
class Case:
    transport: str
    fault: str
    phase: str

    @property
    def id(self) -> str:
        return f"{self.transport}-{self.fault}-{self.phase}"


FULL_MATRIX_ENV = "TRACTION_FAULT_MATRIX"
"""Set to ``full`` for every transport x fault x phase (the weekly run, and RELIABILITY.md's)."""


def all_cases(full: bool | None = None) -> list[Case]:
    """The cases to run; each fault while paused, on Modbus TCP only (a pause is the host's state,
    the same on every wire; a pause comes from the HTTP service).

    The full matrix (``full``, or ``TRACTION_FAULT_MATRIX=full``) is every transport x fault x phase:
    140 cases, several minutes even side by side. Otherwise a covering design keeps the suite's
    time: every fault on every transport and in every phase, each pair at least once (the phase
    rotates with the fault and the transport, so each transport also meets every phase at least
    four times): 56 cases, the fewest that cover it (each fault needs its four phases)."""
    if full is None:
        full = os.environ.get(FULL_MATRIX_ENV) == "full"
    faults = list(FAULT_CLASSES)
    if full:
        cases = [Case(t, f, p) for t in TRANSPORTS for f in faults for p in PHASES]
    else:
        cases = [
            Case(t, f, PHASES[(i + j) % len(PHASES)])
            for j, t in enumerate(TRANSPORTS)
            for i, f in enumerate(faults)
        ]
    return cases + [Case("modbus-tcp", f, PAUSED) for f in faults]


@dataclass
class Measured:
    """What one case measured; ``to_json`` is what RELIABILITY.md is made from."""

    case: Case
    host_exit: int | None = None
    host_output: str = ""
    tick_hz: float | None = None
    fault_at_s: float | None = None  # seconds after the table started running
    tension_at_fault_n: float | None = None
    peak_n: float = 0.0  # the most true tension over the whole session
    peak_after_fault_n: float = 0.0
    release_s: float | None = None  # fault (or, for a db stall, the operator's stop) to slack
    release_bound_s: float | None = None
    outcome: str | None = None
    outcome_reason: str | None = None
    trip_fault: str | None = None
    trip_severity: str | None = None
    trip_reason: str | None = None
    samples_stored: int | None = None
    paused_before_fault: bool = False  # the record holds a pause (paused cases)
    samples_reported: int | None = None
    steepest_rise_n_per_s: float | None = None  # host freezes: the truth's fastest rise after it
    overrun_gap_s: float | None = None  # the longest gap of the overruns the record holds
    next_start_exit: int | None = None
    next_start_output: str = ""
    locked: bool = False
    ack_output: str = ""
    locked_after_ack: bool | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    passed: bool | None = None  # set by the test once every assertion of the case held

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("host_output")
        data.pop("next_start_output")
        data.pop("ack_output")
        data["case"] = {**asdict(self.case), "id": self.case.id}
        fault = FAULT_CLASSES[self.case.fault]
        data["fault_title"] = fault.title
        data["bound_why"] = fault.why
        data["hold_n"] = HOLD_N
        data["prescribed_bound_n"] = HOLD_N + OVER_TARGET_TOLERANCE_N
        data["peak_bound_n"] = fault.peak_bound_n
        data["hard_limit_n"] = HARD_LIMIT_N
        return data


@dataclass
class WiredTable:
    """A simulated table on its wire: the URL the host opens, the model, and the link controls."""

    url: str
    model: TableModel
    clock: ScaledClock
    cut: Callable[[], None]
    mend: Callable[[], None]
    mute: Callable[[], None]


@asynccontextmanager
async def wired_table(transport: str, serial: str) -> AsyncIterator[WiredTable]:
    answer_like_a_table()  # as the host's treatment process does: neither starves the other
    clock = ScaledClock(1.0)
    model = TableModel(
        TableSpec(serial_number=serial, model="SIM-TX1 matrix"), seed=11, now=clock.now()
    )
    async with contextlib.AsyncExitStack() as stack:
        if transport == "modbus-tcp":
            tcp = await start_tcp_simulator({1: model}, clock)
            stack.push_async_callback(tcp.stop)
            yield WiredTable(
                f"{tcp.url()}&timeout={DRIVER_TIMEOUT_S}",
                model,
                clock,
                tcp.faults.drop,
                tcp.faults.restore,
                lambda: tcp.faults.slow(60.0),
            )
        elif transport == "modbus-rtu":
            pair = stack.enter_context(PtyPair())
            rtu = await start_rtu_simulator({1: model}, clock, pair.device_port, baud=RTU_BAUD)
            stack.push_async_callback(rtu.stop)

            def mend_rtu() -> None:
                pair.mend()
                rtu.faults.restore()

            yield WiredTable(
                f"{rtu.url(1, pair.host_port)}&timeout={DRIVER_TIMEOUT_S}",
                model,
                clock,
                pair.cut,
                mend_rtu,
                lambda: rtu.faults.slow(60.0),
            )
        elif transport == "line":
            pair = stack.enter_context(PtyPair())
            line = await start_line_simulator(
                model, clock, pair.device_port, baud=LINE_BAUD, host_port=pair.host_port
            )
            stack.push_async_callback(line.stop)

            def mend_line() -> None:
                pair.mend()
                line.faults.mute(False)

            yield WiredTable(
                f"{line.url()}&timeout={DRIVER_TIMEOUT_S}",
                model,
                clock,
                pair.cut,
                mend_line,
                lambda: line.faults.mute(True),
            )
        else:
            raise ValueError(f"unknown transport {transport!r}; known: {', '.join(TRANSPORTS)}")


class Matrix:
    """Where the cases run: a migrated store with a patient and a clinician, copied per case."""

    def __init__(self, root: Path, template: Path, token: str) -> None:
        self.root = root
        self.template = template
        self.token = token  # the technician's API token (its digest is in the template's store)
        self.profile = root / "matrix-profile.toml"
        self.profile.write_text(PROFILE, encoding="utf-8")
        self._serial = 0

    def case_dir(self, case: Case, attempt: int = 1) -> Path:
        target = self.root / (case.id if attempt == 1 else f"{case.id}-attempt-{attempt}")
        shutil.copytree(self.template, target)
        return target

    def next_serial(self) -> str:
        self._serial += 1
        return f"MX-{self._serial:04d}"


def make_template(template: Path) -> str:
    """A migrated store with the patient, the clinician and the technician every case uses (the
    technician signed in, for `traction tables ack`); returns the technician's API token."""
    saved = dict(os.environ)
    os.environ.update(env_for(template))
    try:
        runner = CommandRunner()
        for args in (
            ["patients", "add", "MRN-1", "--weight-kg", "82", "--sex", "female"],
            ["clinicians", "add", "Dana Reyes", "--credentials", "PT", "--discipline", "PT"],
            ["users", "add", TECHNICIAN, "--role", "technician"],
        ):
            done = runner.invoke(app, args)
            assert done.exit_code == 0, done.output
        passwd = ["users", "passwd", TECHNICIAN, "--password-stdin"]
        done = runner.invoke(app, passwd, input=f"{PASSWORD}\n")
        assert done.exit_code == 0, done.output
        token = runner.invoke(app, ["tokens", "create", TECHNICIAN])
        assert token.exit_code == 0, token.output
        return token.stdout.strip().splitlines()[0]
    finally:
        os.environ.clear()
        os.environ.update(saved)


def env_for(data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TRACTION_DATA_DIR": str(data_dir),
        "TRACTION_DATABASE_URL": f"sqlite:///{data_dir / 'traction.db'}",
        "TRACTION_WORKSTATION": "matrix",
        "COLUMNS": "200",
    }


def _as_a_user_starts_it() -> None:
    """In the child: the priority of a program a user starts (this process serves the tables at
    a table's). The host's treatment process raises itself, as it does in a clinic; its recorder,
    live view and start-up do not compete with the treatments and tables beside them."""
    os.setpriority(os.PRIO_PROCESS, 0, 0)


async def traction(
    env: dict[str, str], *args: str, stdin: bool = False
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "traction",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=_as_a_user_starts_it,
    )


async def finish(
    proc: asyncio.subprocess.Process, timeout_s: float, data: bytes | None = None
) -> tuple[int, str]:
    """The exit code and output of ``proc``; killed (and said so) if it outlives ``timeout_s``
    or the wait is cancelled."""
    try:
        out, _ = await asyncio.wait_for(proc.communicate(data), timeout_s)
    except (TimeoutError, asyncio.CancelledError) as stopped:
        proc.kill()
        out, _ = await proc.communicate()
        if isinstance(stopped, asyncio.CancelledError):
            raise
        return -999, out.decode(errors="replace") + f"\n[killed: still running after {timeout_s} s]"
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def run_args(matrix: Matrix, case: Case, url: str) -> list[str]:
    return ["run", str(matrix.profile), "--patient", "MRN-1", "--clinician", "1", "--url", url]


class Watch:
    """Advances the model every 10 ms so its trace is complete whoever talks to it."""

    def __init__(self, table: WiredTable) -> None:
        self.table = table
        self.trace: list[TraceRow] = table.model.start_trace(0.01)
        self.started_at: float | None = None
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.table.model.advance(self.table.clock.now())
            if self.started_at is None and self.table.model.running:
                self.started_at = self.table.clock.now()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.table.model.advance(self.table.clock.now())


async def wait_for_phase(
    watch: Watch,
    phase: str,
    proc: asyncio.subprocess.Process,
    limit_s: float = 90.0,
    served: Served | None = None,
) -> None:
    """Return once the table is in ``phase`` of the prescription, seen from its own target:
    ramping (40% of the hold on the way up), 1 s into the hold, or 1 s into the rest."""
    model = watch.table.model
    deadline = time.monotonic() + limit_s
    since: float | None = None
    held = False
    next_look = 0.0
    while True:
        if proc.returncode is not None:
            raise NotReached(f"`traction run` ended (exit {proc.returncode}) before {phase}")
        if served is not None and time.monotonic() >= next_look:
            next_look = time.monotonic() + 0.5
            ended = await asyncio.to_thread(served.ended)  # sqlite blocks: never on the loop
            if ended:
                raise NotReached(f"the served session ended before {phase}: {ended}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the table never reached the {phase} phase in {limit_s} s")
        target = model.target_n
        if model.running:
            if phase == "ramp" and 0.4 * HOLD_N <= target <= 0.6 * HOLD_N:
                return
            at_hold = abs(target - HOLD_N) < 0.5
            at_rest = held and abs(target - REST_N) < 0.5
            held = held or at_hold
            if (phase == "hold" and at_hold) or (phase == "rest" and at_rest):
                since = since if since is not None else time.monotonic()
                if time.monotonic() - since >= 1.0:
                    return
            else:
                since = None
        await asyncio.sleep(0.01)


def hold_database(path: Path, seconds: float) -> threading.Thread:
    """Another program holds the store's write lock for ``seconds`` (a database stall)."""
    ready = threading.Event()

    def hold() -> None:
        db = sqlite3.connect(path, timeout=10, isolation_level=None)
        try:
            db.execute("BEGIN EXCLUSIVE")
            ready.set()
            time.sleep(seconds)
            db.execute("ROLLBACK")
        finally:
            db.close()

    thread = threading.Thread(target=hold, name="db-stall", daemon=True)
    thread.start()
    ready.wait(10)
    return thread


def query(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows from the case's store. It may wait on the host's write lock: call it off the event
    loop that serves the simulators (asyncio.to_thread), or their replies come late."""
    db = sqlite3.connect(data_dir / "traction.db", timeout=10)
    try:
        return list(db.execute(sql).fetchall())
    finally:
        db.close()


def active_locks(data_dir: Path) -> int:
    """Locks of the case's table not yet acknowledged, as the store holds them."""
    rows = query(data_dir, "SELECT count(*) FROM table_lockouts WHERE acknowledged_at IS NULL")
    return int(rows[0][0])


def slack_after(trace: Iterable[TraceRow], t0: float) -> float | None:
    """Seconds from ``t0`` to the first logged moment the table is released with a slack cord."""
    for row in trace:
        if row.t >= t0 and row.released and row.tension_n <= SLACK_N:
            return row.t - t0
    return None


def steepest_rise(trace: list[TraceRow], t0: float, t1: float) -> float:
    """The truth's fastest rise (N/s) over any ``RISE_WINDOW_S`` from ``t0`` to ``t1``."""
    rows = [row for row in trace if t0 <= row.t <= t1]
    rise = 0.0
    j = 0
    for row in rows:
        while j < len(rows) and rows[j].t - row.t < RISE_WINDOW_S:
            j += 1
        if j == len(rows):
            break
        rise = max(rise, (rows[j].tension_n - row.tension_n) / (rows[j].t - row.t))
    return rise


def host_processes(pid: int) -> list[int]:
    """``pid`` and every process under it (the treatment process the host starts, and its own),
    from /proc: the host as a whole, as a frozen virtual machine or a swap storm stops it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found = [pid]
    for parent in found:  # grows as it goes: breadth first
        found += [child for child, of in parents.items() if of == parent]
    return found


async def freeze(pid: int, seconds: float) -> None:
    """Freeze the host for ``seconds``: SIGSTOP the process that drives the table first (the
    treatment process, in its own process group) and the workstation process, then SIGCONT them
    in the reverse order. The simulators in this process go on answering meanwhile."""
    frozen = list(reversed(host_processes(pid)))
    if len(frozen) < 2:
        raise AssertionError(f"no treatment process under the host (pid {pid}) to freeze")
    for each in frozen:
        os.kill(each, signal.SIGSTOP)
    try:
        await asyncio.sleep(seconds)
    finally:
        for each in reversed(frozen):
            with contextlib.suppress(ProcessLookupError):
                os.kill(each, signal.SIGCONT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """`traction serve` for one case: the table configured by name, a session started and paused
    over the HTTP API as the clinic console does."""

    def __init__(self, data_dir: Path, url: str, token: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.config = data_dir / "serve.toml"
        self.config.write_text(
            f'[[tables]]\nname = "{TABLE_NAME}"\nurl = "{url}"\n', encoding="utf-8"
        )
        self.session_id = ""

    async def start(self, env: dict[str, str]) -> asyncio.subprocess.Process:
        args = ["serve", "--config", str(self.config), "--port", str(self.port)]
        proc = await traction(env, *args)
        for _ in range(600):  # 60 s at most
            if proc.returncode is not None:
                # it never got as far as a session: no fault was tested (run again, said so)
                code, output = await finish(proc, 5.0)
                raise NotReached(f"`traction serve` exited {code} at start: {last_words(output)}")
            with contextlib.suppress(httpx.HTTPError):
                async with httpx.AsyncClient(base_url=self.base, timeout=2.0) as client:
                    if (await client.get("/health")).status_code < 500:
                        return proc
            await asyncio.sleep(0.1)
        raise AssertionError(f"`traction serve` never answered on port {self.port} in 60 s")

    async def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.base, timeout=10.0) as client:
            reply = await client.post(path, json=body or {}, headers=self.headers)
        if reply.status_code >= 300:
            raise AssertionError(f"POST {path}: {reply.status_code} {reply.text[:500]}")
        result: dict[str, Any] = reply.json()
        return result

    async def treat(self) -> None:
        profile = tomllib.loads(PROFILE)
        started = await self.post(
            "/sessions",
            {
                "table": TABLE_NAME,
                "profile": profile,
                "patient_reference": "MRN-1",
                "treating_clinician_id": 1,
            },
        )
        self.session_id = str(started["id"])

    def ended(self) -> str:
        """The session's outcome and reason once it has one, else ''."""
        rows = query(
            self.data_dir,
            f"SELECT outcome, outcome_reason FROM sessions WHERE id = '{self.session_id}'",
        )
        return f"{rows[0][0]}: {rows[0][1]}" if rows and rows[0][0] is not None else ""

    async def wait_ended(self, proc: asyncio.subprocess.Process, limit_s: float = 30.0) -> None:
        """Until the session has an outcome in the store (the service runs on)."""
        for _ in range(int(limit_s / 0.2)):
            if await asyncio.to_thread(self.ended) or proc.returncode is not None:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"the served session had no outcome after {limit_s} s")


async def run_case(matrix: Matrix, case: Case) -> Measured:
    """Run ``case``; again (up to :data:`ATTEMPTS` in all) while its session ends before the
    fault could be injected. Every earlier attempt is kept in the notes with the host's last
    words, so a machine too loaded to run the matrix shows as such, never as a pass."""
    earlier: list[str] = []
    attempt = 1
    while True:
        measured = Measured(case)
        try:
            await _run_case(matrix, case, measured, attempt)
        except NotReached as exc:
            measured.error = str(exc)
            if attempt < ATTEMPTS:
                earlier.append(f"attempt {attempt}: {exc}; {last_words(measured.host_output)}")
                attempt += 1
                continue
        except AssertionError as exc:
            measured.error = str(exc)
        except Exception as exc:  # one broken case is that case's failure, never the matrix's
            where = traceback.format_exc(limit=-3)
            measured.error = f"{type(exc).__name__}: {exc}\n{where}"
        measured.notes[:0] = earlier
        return measured


def last_words(output: str) -> str:
    """The host's session line (its outcome and reason), or its last line."""
    lines = [line.strip(" │╰╭─") for line in output.splitlines() if line.strip(" │╰╭─")]
    said = [line for line in lines if line.startswith("session ")] or lines[-1:]
    return said[0][:300] if said else "the host said nothing"


async def _run_case(matrix: Matrix, case: Case, m: Measured, attempt: int = 1) -> None:
    fault = FAULT_CLASSES[case.fault]
    data_dir = await asyncio.to_thread(matrix.case_dir, case, attempt)
    env = env_for(data_dir)
    serial = matrix.next_serial()
    async with wired_table(case.transport, serial) as table:
        watch = Watch(table)
        served: Served | None = None
        if case.phase == PAUSED:
            served = Served(data_dir, table.url, matrix.token)
            proc = await served.start(env)
        else:
            proc = await traction(env, *run_args(matrix, case, table.url))
        try:
            if served is not None:
                await served.treat()
                await wait_for_phase(watch, "hold", proc, served=served)
                await served.post(f"/sessions/{served.session_id}/pause")
                await asyncio.sleep(1.0)  # paused: the target holds
            else:
                await wait_for_phase(watch, case.phase, proc)
            model, clock = table.model, table.clock
            model.advance(clock.now())
            t_fault = clock.now()
            m.tension_at_fault_n = model.tension_n
            stall: threading.Thread | None = None
            if case.fault == "over-force":
                MODEL_FAULTS["jolt"](model, t_fault)
                m.tension_at_fault_n = model.tension_n
            elif case.fault in MODEL_FAULTS:  # the table's own: switches, sensors, motor, power
                MODEL_FAULTS[case.fault](model, t_fault)
            elif case.fault == "link-loss":
                table.cut()
            elif case.fault == "not-answering":
                table.mute()
            elif case.fault == "host-kill":
                proc.send_signal(signal.SIGKILL)
            elif case.fault == "db-stall":
                stall = await asyncio.to_thread(hold_database, data_dir / "traction.db", DB_STALL_S)
            m.fault_at_s = t_fault - (watch.started_at or t_fault)
            release_from = t_fault
            operator_ends = stall is not None
            if case.fault.startswith("host-freeze"):
                short = case.fault == "host-freeze-short"
                await freeze(proc.pid, SHORT_FREEZE_S if short else LONG_FREEZE_S)
                operator_ends = short
                model.advance(clock.now())
                release_from = clock.now() if short else t_fault
            if stall is not None:
                await asyncio.to_thread(stall.join, DB_STALL_S + 10)
            if operator_ends:
                await asyncio.sleep(1.0)  # the session goes on after the stall ...
                model.advance(clock.now())
                if model.running:  # (a stall that tripped at the thaw ended it there)
                    release_from = clock.now()
                    proc.send_signal(signal.SIGTERM)  # ... until the operator ends it
            if served is not None and case.fault != "host-kill":
                await served.wait_ended(proc)
                with contextlib.suppress(ProcessLookupError):  # the service stops
                    proc.send_signal(signal.SIGTERM)
            m.host_exit, m.host_output = await finish(proc, 30.0)
            # the table lets go by itself when the host is gone: wait for its watchdog
            for _ in range(100):  # 5 s at most
                if slack_after(watch.trace, release_from) is not None:
                    break
                await asyncio.sleep(0.05)
        finally:
            if proc.returncode is None:
                proc.kill()
            if not m.host_output:  # the case failed before the host ended: keep what it said
                out, _ = await proc.communicate()
                m.host_output = out.decode(errors="replace")
            await watch.stop()
        trace = watch.trace
        m.peak_n = max((row.tension_n for row in trace), default=0.0)
        m.peak_after_fault_n = max(
            (row.tension_n for row in trace if row.t > t_fault + 0.005), default=0.0
        )
        m.release_s = slack_after(trace, release_from)
        if case.fault.startswith("host-freeze"):
            m.steepest_rise_n_per_s = steepest_rise(trace, t_fault, release_from)
        table.mend()
        model.faults.stuck_load_cell = None
        model.faults.drift_n_per_s = 0.0
        model.faults.runaway = False
        model.faults.redundant_stuck = None
        # The next start on the same table recovers a killed session, and must be refused while
        # the table is locked (a case that left no lock in the store skips it: it would start).
        if case.fault == "host-kill" or await asyncio.to_thread(active_locks, data_dir):
            nxt = await traction(env, *run_args(matrix, case, table.url))
            m.next_start_exit, m.next_start_output = await _next_start(nxt, table)
    await asyncio.to_thread(_read_record, data_dir, m)
    if case.phase != PAUSED or fault.timed_while_paused:
        m.release_bound_s = fault.bound_s + fault.bound_ticks / (m.tick_hz or SLOWEST_TICK_HZ)
    m.locked = "is locked" in m.next_start_output
    if m.locked:
        code, out = await _ack(env, serial)
        m.ack_output = out
        m.locked_after_ack = await asyncio.to_thread(active_locks, data_dir) > 0
        if code != 0:
            m.notes.append(f"ack exit {code}")


async def _next_start(proc: asyncio.subprocess.Process, table: WiredTable) -> tuple[int, str]:
    """The next start's verdict. If it is not refused the table starts running: stop it there
    (SIGTERM releases at once) so the case stays short."""
    waiter = asyncio.ensure_future(finish(proc, 30.0))
    while not waiter.done():
        table.model.advance(table.clock.now())
        if table.model.running and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            break
        await asyncio.sleep(0.02)
    return await waiter


async def _ack(env: dict[str, str], serial: str) -> tuple[int, str]:
    """Acknowledge as the clinic does: the technician signs in to this store, then acknowledges
    the table by its serial number (whatever name locked it: a URL, or the service's name)."""
    login = await traction(env, "login", TECHNICIAN, "--password-stdin", stdin=True)
    code, out = await finish(login, 90.0, f"{PASSWORD}\n".encode())
    if code != 0:
        return code, out
    proc = await traction(env, "tables", "ack", serial, "--reason", "fault matrix: table checked")
    return await finish(proc, 90.0)


def _read_record(data_dir: Path, m: Measured) -> None:
    rows = query(
        data_dir,
        "SELECT id, outcome, outcome_reason, sample_count, settings FROM sessions "
        "ORDER BY started_at LIMIT 1",
    )
    if not rows:
        m.error = m.error or "no session recorded"
        return
    session_id, m.outcome, m.outcome_reason, m.samples_stored, settings = rows[0]
    m.tick_hz = float(json.loads(settings).get("tick_hz") or 0) or None
    trips = query(
        data_dir,
        f"SELECT reason, data FROM events WHERE session_id = '{session_id}' AND kind = 'trip' "
        "ORDER BY seq",
    )
    m.paused_before_fault = bool(
        query(
            data_dir,
            f"SELECT count(*) FROM events WHERE session_id = '{session_id}' AND kind = 'pause'",
        )[0][0]
    )
    warnings = query(
        data_dir,
        f"SELECT data FROM events WHERE session_id = '{session_id}' AND kind = 'warning'",
    )
    gaps = [json.loads(data or "{}").get("longest_gap_real_s") for (data,) in warnings]
    m.overrun_gap_s = max((g for g in gaps if g is not None), default=None)
    if trips:
        reason, data = trips[0]
        m.trip_reason = reason
        m.trip_fault = json.loads(data).get("fault")
        m.trip_severity = json.loads(data).get("severity")
    for line in m.host_output.splitlines():
        if " samples recorded" in line:
            with contextlib.suppress(ValueError, IndexError):
                m.samples_reported = int(line.split("; ")[1].split(" samples")[0])


def expected_lock(m: Measured) -> bool:
    """Whether the case must leave the table locked: its trip is of severity lock."""
    if m.trip_fault is None:
        return False
    return FAULTS[m.trip_fault].severity is Severity.LOCK


def write_results(path: Path, results: Iterable[Measured], wall_s: float) -> None:
    """The figures of every case, with the machine they were measured on (RELIABILITY.md's
    source: bench/reliability_report.py)."""
    load = os.getloadavg()
    full = f"{FULL_MATRIX_ENV}=full " if os.environ.get(FULL_MATRIX_ENV) == "full" else ""
    document = {
        "command": f"{full}TRACTION_RELIABILITY_OUT={path.name} .venv/bin/pytest "
        "tests/test_fault_matrix.py",
        "machine": f"nproc={os.cpu_count()}, Python {platform.python_version()}, "
        f"load average at the end {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}",
        "wall_s": wall_s,
        "profile": PROFILE,
        "cases": [m.to_json() for m in results],
    }
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")


async def run_matrix(matrix: Matrix, cases: list[Case]) -> dict[str, Measured]:
    gate = asyncio.Semaphore(MAX_CONCURRENT)

    async def one(case: Case) -> Measured:
        async with gate:
            return await run_case(matrix, case)

    results = await asyncio.gather(*(one(c) for c in cases))
    return {m.case.id: m for m in results}

"""Treatments run in the workstation's treatment process (session.control_host), driven from the
workstation through each session's channel, and either side dying leaves every table released and
every session recorded.

Every case drives a real simulated table over Modbus TCP on loopback, served from this test's
process; what the table did is read from its model (the true cord tension), not from the host's
records. The model's physics advance at each request and, after the last one, when the test looks
(``truth``), as the table's own firmware would. Session time runs ``SCALE`` times faster than real
time; every supervisor bound keeps at least 0.3 s of real time, and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from treatment_cases import SCALE, WATCHDOG_REAL_S, limits_at, long_static_profile

from devices.clock import ScaledClock
from devices.limits import blocking
from devices.profiles import Region
from devices.records import EventKind, Outcome
from session.control_hosts import close_control_hosts, control_host
from session.journal import journals
from session.runner import Treatment, TreatmentResult
from session.seal import verify
from session.store import SessionContext, Store
from session.treatment_process import Order
from simulators.modbus_server import start_tcp_simulator
from simulators.physics import TableModel
from traction.context import claim_workstation
from traction.tables import OpenTable, open_table, sim_spec

PARENT = Path(__file__).with_name("treatment_parent.py")
HOLD_N = long_static_profile().hold_force_n
HEAP_AT_START_UP = 20_000  # objects: a bare interpreter holds about 8,000, with the product 30,000
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def fresh_control_host() -> Iterator[None]:
    """Each case starts its own control host: one case kills it or tightens its memory limit."""
    yield
    close_control_hosts()


def truth(model: TableModel, clock: ScaledClock) -> float:
    """The table's true tension now (its firmware runs whether or not anyone asks)."""
    model.advance(clock.now())
    return model.tension_n


async def until(
    condition: Callable[[], bool],
    what: str,
    within: float = 30.0,
    treatment: asyncio.Task[TreatmentResult] | None = None,
) -> None:
    """Wait for ``condition``; fail after ``within`` s, or at once if ``treatment`` has ended
    (saying how it ended, rather than waiting out the deadline for a session that is over)."""
    deadline = time.monotonic() + within
    while not condition():
        if treatment is not None and treatment.done():
            raise AssertionError(f"the treatment ended before {what}: {how_it_ended(treatment)}")
        assert time.monotonic() < deadline, f"timed out after {within} s waiting for {what}"
        await asyncio.sleep(0.02)


def how_it_ended(treatment: asyncio.Task[TreatmentResult]) -> str:
    if treatment.cancelled():
        return "cancelled"
    if (error := treatment.exception()) is not None:
        return f"{type(error).__name__}: {error}"
    finished = treatment.result().finished
    return f"{finished.outcome.value}: {finished.reason} ({finished.sample_count} samples)"


def treatment_on(
    opened: OpenTable,
    store: Store,
    context: SessionContext,
    clock: ScaledClock,
    journal_dir: Path,
    memory_limit_bytes: int = 1 << 30,
) -> Treatment:
    return Treatment(
        store,
        opened.table,
        long_static_profile(),
        store.get_patient(context.patient_id),
        context,
        limits_at(clock.scale),
        clock,
        journal_dir,
        memory_limit_bytes=memory_limit_bytes,
    )


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def process_ended(pid: int) -> bool:
    """Gone or a zombie (an orphan's reaper may be slow, or absent in a container)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


async def test_a_session_runs_in_a_process_of_its_own_and_the_controls_reach_the_table(
    store: Store, context: SessionContext, tmp_path: Path
) -> None:
    clock = ScaledClock(SCALE)
    async with open_table("sim://lumbar", clock) as opened:
        model = opened.models[1]
        treatment = treatment_on(opened, store, context, clock, tmp_path)
        task = asyncio.create_task(treatment.run())
        await until(lambda: model.tension_n > 0.9 * HOLD_N, "the hold", treatment=task)
        pid = treatment.loop.pid
        assert pid is not None and pid != os.getpid()
        assert "session.control_host" in command_line(pid)
        assert os.sched_getscheduler(pid) == os.SCHED_OTHER  # a scaled clock: no real time

        lower = replace(long_static_profile(), hold_force_n=HOLD_N - 60.0)
        assert not blocking(await treatment.loop.update_profile(lower, reason="test: lower"))
        await until(lambda: abs(model.tension_n - lower.hold_force_n) < 10.0, "the lower hold")

        other_region = replace(lower, region=Region.CERVICAL)
        refused = await treatment.loop.update_profile(other_region, reason="test: region")
        assert [v.field for v in blocking(refused)] == ["region"]

        treatment.loop.pause("test: pause")
        await until(lambda: treatment.loop.paused, "the pause")
        treatment.loop.resume("test: resume")
        await until(lambda: not treatment.loop.paused, "the resume")
        assert model.tension_n > 0.8 * lower.hold_force_n  # held throughout

        treatment.loop.stop("test: stop")
        result = await asyncio.wait_for(task, 60)
        assert model.released and truth(model, clock) < 1.0
    assert result.finished.outcome is Outcome.STOPPED
    assert treatment.loop.end is not None and treatment.loop.end.returncode == 0
    kinds = [e.kind for e in store.iter_events(result.session_id)]
    for kind in (EventKind.SETTINGS_CHANGED, EventKind.PAUSE, EventKind.RESUME):
        assert kinds.count(kind) == 1, kind
    reasons = [e.reason for e in store.iter_events(result.session_id)]
    assert any(r.startswith("settings change refused (test: region)") for r in reasons)
    session = store.get_session(result.session_id)
    assert session.outcome_reason == "test: stop"
    assert session.settings["extra"]["scheduling"].startswith("niceness ")
    # its start-up heap (the product's modules, at least) was set aside before the first tick
    assert session.settings["extra"]["heap_set_aside"] > HEAP_AT_START_UP
    assert verify(store, result.session_id).ok
    assert journals(tmp_path) == []


async def test_on_a_real_time_clock_the_treatment_runs_in_real_time_and_the_record_says_so(
    store: Store, context: SessionContext, tmp_path: Path
) -> None:
    """At x1 (every real table) the treatment process runs under SCHED_FIFO where the system
    allows it, ahead of every ordinary thread, and the session's settings say how it ran."""
    clock = ScaledClock(1.0)
    async with open_table("sim://lumbar", clock) as opened:
        treatment = treatment_on(opened, store, context, clock, tmp_path)
        task = asyncio.create_task(treatment.run())
        await until(lambda: opened.models[1].running, "the ramp", treatment=task)
        pid = treatment.loop.pid
        assert pid is not None
        policy, priority = os.sched_getscheduler(pid), os.sched_getparam(pid).sched_priority
        treatment.loop.release("test: seen")
        result = await asyncio.wait_for(task, 60)
    scheduling = store.get_session(result.session_id).settings["extra"]["scheduling"]
    if os.geteuid() == 0:  # allowed here
        assert (policy, priority) == (os.SCHED_FIFO, Order.real_time_priority)
    if policy == os.SCHED_FIFO:
        assert scheduling == f"real-time (FIFO {priority})"
    else:  # refused: not an error, and the record says what it got
        assert scheduling.startswith("niceness ")


@contextlib.asynccontextmanager
async def two_holding(
    store: Store, context: SessionContext, clock: ScaledClock, journal_dir: Path
) -> AsyncIterator[
    tuple[list[TableModel], list[Treatment], list[asyncio.Task[TreatmentResult]], int]
]:
    """Two simulated tables, each holding a session, both sessions in one control host: the
    tables' models, the treatments, their tasks and the host's pid."""
    async with (
        open_table("sim://lumbar", clock) as first,
        open_table("sim://lumbar", clock) as second,
    ):
        models = [first.models[1], second.models[1]]
        treatments = [treatment_on(o, store, context, clock, journal_dir) for o in (first, second)]
        tasks = [asyncio.create_task(t.run()) for t in treatments]
        for model, task in zip(models, tasks, strict=True):
            await until(lambda m=model: m.tension_n > 0.9 * HOLD_N, "the hold", treatment=task)
        pid = treatments[0].loop.pid
        assert pid is not None and treatments[1].loop.pid == pid
        yield models, treatments, tasks, pid


async def test_kill_9_of_the_control_host_releases_every_table_and_records_each_interrupted(
    store: Store, context: SessionContext, tmp_path: Path
) -> None:
    """Two sessions share the workstation's control host; killing it takes both, and each table
    releases (its own watchdog) and each session is recorded as interrupted from its journal."""
    clock = ScaledClock(SCALE)
    async with two_holding(store, context, clock, tmp_path) as (models, treatments, tasks, pid):
        await asyncio.sleep(0.6)  # more than two journal flushes into the hold
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        for model in models:
            await until(lambda m=model: truth(m, clock) < 1.0, "a release", WATCHDOG_REAL_S + 1.0)
        released_after = time.monotonic() - killed_at
        results = await asyncio.wait_for(asyncio.gather(*tasks), 60)
    assert released_after < WATCHDOG_REAL_S + 1.0
    for result in results:
        assert result.finished.outcome is Outcome.INTERRUPTED
        assert "killed by signal 9" in result.finished.reason
        row = store.get_session(result.session_id)
        assert row.outcome == Outcome.INTERRUPTED.value and row.sealed_at is not None
        assert row.sample_count > 0 and any(s.phase == "hold" for s in store.iter_samples(row.id))
        assert verify(store, result.session_id).ok
    assert journals(tmp_path) == []


async def test_sigterm_to_the_control_host_releases_every_table_at_once(
    store: Store, context: SessionContext, tmp_path: Path
) -> None:
    """A service manager's SIGTERM to the host: each of its sessions lets go of its table at
    once (no ramp-down), and each is recorded as stopped for that reason, sealed; the host stays
    up."""
    clock = ScaledClock(SCALE)
    async with two_holding(store, context, clock, tmp_path) as (models, treatments, tasks, pid):
        os.kill(pid, signal.SIGTERM)
        for model in models:
            await until(lambda m=model: truth(m, clock) < 1.0, "a release", WATCHDOG_REAL_S)
        results = await asyncio.wait_for(asyncio.gather(*tasks), 60)
        assert not process_ended(pid)
    for result in results:
        assert result.finished.outcome is Outcome.STOPPED
        assert result.finished.reason == "control process terminated (SIGTERM)"
        assert verify(store, result.session_id).ok
    assert journals(tmp_path) == []


def held_by(pid: int) -> list[str]:
    """What the process's descriptors point at, other than its standard ones."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        if int(fd.name) > 2:
            with contextlib.suppress(OSError):
                found.append(os.readlink(fd))
    return found


def pipes(targets: list[str]) -> list[str]:
    return [t for t in targets if t.startswith("pipe:")]


async def test_sessions_in_one_host_end_on_their_own_and_it_lets_go_of_each(
    store: Store, context: SessionContext, tmp_path: Path
) -> None:
    """A session that ends leaves the other one holding its table; the host then holds neither
    the ended session's pipes nor its journal (the lease is the workstation's alone until it
    seals), and once both have ended it holds no pipe and no journal at all."""
    clock = ScaledClock(SCALE)
    async with two_holding(store, context, clock, tmp_path) as (models, treatments, tasks, pid):
        assert len(pipes(held_by(pid))) == 4  # each session's commands and records

        treatments[0].loop.stop("test: the first ends")
        first_result = await asyncio.wait_for(tasks[0], 60)
        assert first_result.finished.outcome is Outcome.STOPPED
        assert models[0].released and not models[1].released
        await asyncio.sleep(0.3)  # the second goes on holding
        assert models[1].tension_n > 0.9 * HOLD_N and not tasks[1].done()
        await until(lambda: len(pipes(held_by(pid))) == 2, "the host to let go of its pipes", 5)
        held = held_by(pid)
        assert not [t for t in held if first_result.session_id in t]
        assert [t for t in held if treatments[1].session_id in t]  # its journal

        treatments[1].loop.stop("test: the second ends")
        second_result = await asyncio.wait_for(tasks[1], 60)
        assert second_result.finished.outcome is Outcome.STOPPED
        await until(lambda: not pipes(held_by(pid)), "the host to let go of the last pipes", 5)
        assert not [t for t in held_by(pid) if str(tmp_path) in t]
        assert treatments[1].loop.pid == pid and process_ended(pid) is False
    for result in (first_result, second_result):
        assert verify(store, result.session_id).ok
    assert journals(tmp_path) == []


async def test_the_treatment_process_stops_and_releases_when_its_workstation_dies(
    db_url: str, store: Store, context: SessionContext, tmp_path: Path
) -> None:
    """The workstation process (tests/treatment_parent.py) is killed mid-hold: its treatment
    process sees the end of its command channel, ramps down, releases and ends; the next start
    records the session from its journal, stopped."""
    clock = ScaledClock(SCALE)
    model = TableModel(sim_spec("lumbar"), now=clock.now())
    data_dir = tmp_path / "ws"
    async with await start_tcp_simulator({1: model}, clock) as simulator:
        command = [sys.executable, str(PARENT), db_url, str(context.patient_id)]
        command += [str(context.treating_clinician_id), context.workstation, str(data_dir)]
        command += [simulator.url(1), str(SCALE)]
        parent = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
        try:
            assert parent.stdout is not None
            line = await asyncio.wait_for(parent.stdout.readline(), 60)
            _, run_id, child = line.decode().split()
            await until(lambda: model.tension_n > 0.9 * HOLD_N, "the hold")
        finally:
            parent.kill()
            await asyncio.wait_for(parent.wait(), 30)
        trace = model.start_trace()
        await until(lambda: process_ended(int(child)), "the treatment process to end", 60)
        assert model.released and truth(model, clock) < 1.0
    # It ramped down rather than dropping the load: the tension fell over a span of time.
    falling = [row.tension_n for row in trace if 10.0 < row.tension_n < 0.9 * HOLD_N]
    assert len(falling) > 10
    assert all(row.tension_n <= HOLD_N + 20.0 for row in trace)

    identity, report = claim_workstation(store, data_dir, context.workstation)
    assert report.ingested == [run_id]
    row = store.get_session(run_id)
    assert row.outcome == Outcome.STOPPED.value
    assert row.outcome_reason == "the workstation process ended: controlled stop"
    assert row.sealed_at is not None and verify(store, run_id).ok
    assert journals(identity.journal_dir) == []


def address_space(pid: int) -> tuple[int, int]:
    """The process's address space now (VmSize) and its limit (bytes)."""
    size = next(
        int(line.split()[1]) * 1024
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmSize:")
    )
    limit = resource.prlimit(pid, resource.RLIMIT_AS)[0]
    return size, limit


async def test_a_treatment_process_out_of_memory_ends_and_the_table_is_released(
    store: Store, context: SessionContext, tmp_path: Path
) -> None:
    """The treatment process runs under its own address-space limit. The test then tightens it to
    what the process holds (as if a leak had grown it that far) and sends a settings change too
    large to fit: the process cannot go on obeying its controls, and the table is released."""
    clock = ScaledClock(SCALE)
    async with open_table("sim://lumbar", clock) as opened:
        model = opened.models[1]
        treatment = treatment_on(opened, store, context, clock, tmp_path, 600 << 20)
        task = asyncio.create_task(treatment.run())
        await until(lambda: model.tension_n > 0.9 * HOLD_N, "the hold", treatment=task)
        pid = treatment.loop.pid
        assert pid is not None
        size, limit = address_space(pid)
        assert limit == 600 << 20 and size < limit
        resource.prlimit(pid, resource.RLIMIT_AS, (size + (1 << 20), size + (1 << 20)))
        treatment.loop.pause("x" * 3_000_000)  # a command line larger than what is left
        await until(lambda: truth(model, clock) < 1.0, "the release", WATCHDOG_REAL_S + 5.0)
        result = await asyncio.wait_for(task, 60)
    assert result.finished.outcome is not Outcome.COMPLETED
    row = store.get_session(result.session_id)
    assert row.outcome == result.finished.outcome.value and row.sealed_at is not None
    assert row.sample_count > 0 and verify(store, result.session_id).ok
    assert journals(tmp_path) == []


async def test_an_unreadable_order_is_answered_with_an_error_and_the_host_goes_on(
    tmp_path: Path,
) -> None:
    """A session handed over with a line that is not an order ends at once with an error and
    its exit status; the host lets go of its journal and stays up for the next session."""
    host = control_host(1 << 30)
    journal = os.open(tmp_path / "j", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    commands_in, commands_out = os.pipe()
    records_in, records_out = os.pipe()
    try:
        host.hand_over(commands_in, records_out, journal)
    finally:
        for fd in (commands_in, records_out, journal):
            os.close(fd)
    os.write(commands_out, b'{"not": "an order"}\n')
    with os.fdopen(records_in, "rb") as records:
        lines = await asyncio.wait_for(asyncio.to_thread(records.readlines), 30)
    os.close(commands_out)
    error, end = (json.loads(line) for line in lines)
    assert error["k"] == "error" and error["message"].startswith("unreadable order: ")
    assert end == {"k": "end", "status": 1}
    assert host.alive() and not [t for t in held_by(host.pid) if str(tmp_path) in t]

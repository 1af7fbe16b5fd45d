"""Treatments in the treatment process: how many tables at 50 Hz, and what a busy workstation costs.

1. Capacity: N tables at 50 Hz with recording on (each a ``session.runner.Treatment``: its control
   loop in the workstation's treatment process, ``session.control_host``, a fresh one for each
   run, journalled there, ingested into SQLite by this process), against a plain asyncio +
   pymodbus loop in one process doing the same traffic per tick (heartbeat write, status read,
   and a target write when the target changed) on deadlines. Both count missed deadlines the same
   way: ticks skipped between consecutive readings (the loops skip late deadlines rather than
   burst). The simulators run in a process of their own, so they load both sides alike. The plain
   loop runs in a fresh process of its own too, scheduled as the treatment process is (real time
   where allowed): this process's heap (the store, earlier runs) and priority would otherwise
   count against it. Each count runs ``REPEATS`` times, alternating the sides, and the median is
   reported: on a shared two-core machine a single run of either side varies by a percent or more.
2. A busy workstation: two sessions at 50 Hz while this (the workstation's) process is kept busy
   (``BUSY_MS`` of CPU-bound work holding the interpreter, every ``BUSY_EVERY_MS``, as a heavy HTTP
   request or a large export does), with the control loop in-process (``ControlLoop`` on this event
   loop, as before) and in the treatment process. It stands in for the issue's 20 HTTP clients; it is
   not that load.

Run from the repository root: ``.venv/bin/python bench/bench_isolation.py [SECONDS] [N ...]``
(``--plain SECONDS URL ...`` is the plain loop's own process, started by the bench).
Prints its tables; it does not write RESULTS.md (a quiet machine's figures go there).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchutil import machine
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from devices.clock import ScaledClock
from devices.limits import PatientFacts, load_limits
from devices.loop import ControlLoop
from devices.modbus import ModbusTable
from devices.opening import open_device
from devices.priority import run_in_real_time
from devices.profiles import ForceProfile
from devices.records import Record, Sample
from devices.stream import Stream
from session.control_hosts import close_control_hosts
from session.db import make_engine, prepare
from session.models import Discipline
from session.runner import Treatment
from session.store import SessionContext, Store

HZ = 50.0
PERIOD = 1.0 / HZ
WARMUP_S = 3.0  # the first seconds (ramp, process start) are not counted
REPEATS = 3
# The plain loop's target: steady, as the sessions' is in their hold (the counted part of a run),
# where the loop's driver writes only a target that changed: two requests a tick on both sides.
TARGET = [0, 0]
BUSY_MS = 120
BUSY_EVERY_MS = 300
PROFILE = ForceProfile.from_dict(
    {
        "name": "bench: lumbar static 30 lbf",
        "mode": "continuous",
        "region": "lumbar",
        "hold_force": "30 lbf",
        "total_s": 2700,
        "ramp_rate": "10 lbf/s",
    }
)

# The simulators stand in for tables, whose firmware has a processor of its own: they answer at a
# table's priority (simulators/priority.py), as the treatment process runs, for both sides alike.
SERVE = """
import asyncio, sys
from simulators.priority import answer_like_a_table
answer_like_a_table(real_time=True)
from devices.clock import ScaledClock
from simulators.modbus_server import start_tcp_simulator
from simulators.physics import TableModel, TableSpec

async def main(n):
    clock = ScaledClock(1.0)
    sims = []
    for i in range(n):
        spec = TableSpec(model=f"SIM bench {i}", serial_number=f"SIM-B-{i:04d}")
        sims.append(await start_tcp_simulator({1: TableModel(spec, now=clock.now())}, clock))
    print(" ".join(s.url(1) for s in sims), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main(int(sys.argv[1])))
"""


class Gaps:
    """Missed deadlines from the times of consecutive readings after ``since``."""

    def __init__(self, since: float) -> None:
        self.since = since
        self.last: float | None = None
        self.ticks = 0
        self.missed = 0

    def reading(self, t: float) -> None:
        if t < self.since:
            return
        if self.last is not None:
            self.missed += max(0, round((t - self.last) / PERIOD) - 1)
        self.last = t
        self.ticks += 1

    def deliver(self, record: Record) -> None:
        if isinstance(record, Sample):
            self.reading(record.t)


def percent(gaps: list[Gaps]) -> float:
    missed = sum(g.missed for g in gaps)
    wanted = missed + sum(g.ticks for g in gaps)
    return 100.0 * missed / wanted if wanted else math.nan


async def simulators(n: int) -> tuple[asyncio.subprocess.Process, list[str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVE, str(n), stdin=-1, stdout=-1
    )
    assert process.stdout is not None
    line = await process.stdout.readline()
    return process, line.decode().split()


async def stop_simulators(process: asyncio.subprocess.Process) -> None:
    assert process.stdin is not None
    process.stdin.close()
    await process.wait()


def new_store(folder: Path) -> tuple[Store, SessionContext]:
    engine = make_engine(f"sqlite:///{folder / 'bench.db'}")
    prepare(engine)
    store = Store(engine)
    patient = store.add_patient(f"B-{time.monotonic_ns()}", 82.0, sex="male")
    clinician = store.add_clinician("Bench PT", "PT", Discipline.PT)
    return store, SessionContext(patient.id or 0, clinician.id or 0, "bench", ("lumbar",))


async def treatments(urls: list[str], seconds: float, folder: Path) -> float:
    """Missed deadlines (%) of one Treatment (in the treatment process, recording on) per table,
    in a treatment process started for this run and ended after it."""
    store, context = new_store(folder)
    clock = ScaledClock(1.0)
    since = clock.now() + WARMUP_S
    treatments: list[Treatment] = []
    gaps: list[Gaps] = []
    for i, url in enumerate(urls):
        table = open_device(url, clock)
        treatment = Treatment(
            store,
            table,
            PROFILE,
            store.get_patient(context.patient_id),
            context,
            load_limits(),
            clock,
            folder / "journals",
            tick_hz=HZ,
            table_label=f"bench {i}",
        )
        gap = Gaps(since)
        treatment.subscribe(gap)
        treatments.append(treatment)
        gaps.append(gap)
    tasks = [asyncio.create_task(t.run()) for t in treatments]
    await asyncio.sleep(WARMUP_S + seconds)
    for treatment in treatments:
        treatment.loop.release("bench over")
    await asyncio.gather(*tasks)
    close_control_hosts()
    store.close()
    store.engine.dispose()
    return percent(gaps)


async def plain_loop(urls: list[str], seconds: float) -> float:
    """Missed deadlines (%) of bare pymodbus clients ticking on deadlines in this one process."""
    clients = []
    for url in urls:
        table = open_device(url, ScaledClock(1.0))
        assert isinstance(table, ModbusTable)
        host, port = url.removeprefix("modbus+tcp://").split("?")[0].split(":")
        client = AsyncModbusTcpClient(
            host, port=int(port), timeout=0.2, retries=0, reconnect_delay=0
        )
        await client.connect()
        clients.append((client, table.register_map))
    start = time.monotonic()
    end = start + WARMUP_S + seconds

    async def tick(client: AsyncModbusTcpClient, span: tuple[int, int], gap: Gaps) -> None:
        k = 0
        written: list[int] | None = None
        while time.monotonic() < end:
            try:  # a reply that never comes is a missed reading, as it is for the loop
                async with asyncio.timeout(1.0):
                    await client.write_register(103, k & 0xFFFF, device_id=1)
                    if written != TARGET:  # only a changed target, as the loop's driver does
                        await client.write_registers(100, TARGET, device_id=1)
                        written = TARGET
                    reply = await client.read_holding_registers(span[0], count=span[1], device_id=1)
                if not reply.isError():
                    gap.reading(time.monotonic() - start)
            except (TimeoutError, ModbusException):
                pass
            k = max(k + 1, math.floor((time.monotonic() - start) / PERIOD) + 1)
            await asyncio.sleep(max(0.0, start + k * PERIOD - time.monotonic()))

    gaps = [Gaps(WARMUP_S) for _ in clients]
    await asyncio.gather(
        *(tick(c, m.status_span, g) for (c, m), g in zip(clients, gaps, strict=True))
    )
    for client, _ in clients:
        client.close()
    return percent(gaps)


async def plain_process(urls: list[str], seconds: float) -> float:
    """:func:`plain_loop` in a fresh process of its own, at a treatment's scheduling."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--plain", str(seconds), *urls, stdout=-1
    )
    out, _ = await process.communicate()
    return float(out.decode().split()[-1])


def runs(missed: list[float]) -> str:
    each = ", ".join(f"{m:.2f}" for m in missed)
    return f"**{statistics.median(missed):.2f}** ({each})"


def busy(stop: threading.Event) -> None:
    """CPU-bound work holding the interpreter, as a heavy request or an export does."""
    while not stop.is_set():
        until = time.perf_counter() + BUSY_MS / 1000
        while time.perf_counter() < until:
            sum(i * i for i in range(2000))
        time.sleep((BUSY_EVERY_MS - BUSY_MS) / 1000)


async def in_process(urls: list[str], seconds: float) -> float:
    """Missed deadlines (%) of ControlLoops on this event loop (the way before the split)."""
    clock = ScaledClock(1.0)
    since = clock.now() + WARMUP_S
    loops, gaps = [], []
    for url in urls:
        table = open_device(url, clock)
        await table.connect()
        stream = Stream()
        gap = Gaps(since)
        stream.subscribe(gap)
        loop = ControlLoop(
            table,
            PROFILE,
            patient=PatientFacts(82.0, "male"),
            limits=load_limits(),
            clock=clock,
            stream=stream,
            tick_hz=HZ,
        )
        loops.append((loop, table))
        gaps.append(gap)
    tasks = [asyncio.create_task(loop.run()) for loop, _ in loops]
    await asyncio.sleep(WARMUP_S + seconds)
    for loop, _ in loops:
        loop.release("bench over")
    await asyncio.gather(*tasks)
    for _, table in loops:
        await table.close()
    return percent(gaps)


async def plain_main() -> None:
    """The plain loop's own process: scheduled as the treatment process on a x1 clock is."""
    run_in_real_time(10)
    print(await plain_loop(sys.argv[3:], float(sys.argv[2])))


async def main() -> None:
    if sys.argv[1:2] == ["--plain"]:
        await plain_main()
        return
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    counts = [int(a) for a in sys.argv[2:]] or [2, 4, 8, 12, 16]
    print(machine())
    print(f"\n### Tables at {HZ:g} Hz, {seconds:g} s each after {WARMUP_S:g} s warm-up\n")
    print(f"Missed deadlines, %: the median of {REPEATS} runs (the runs in brackets)\n")
    print("| tables | treatment process, recording | plain asyncio+pymodbus |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            apart: list[float] = []
            plain: list[float] = []
            sims, urls = await simulators(n)
            try:
                for r in range(REPEATS):
                    apart.append(await treatments(urls, seconds, Path(tmp) / f"n{n}-{r}"))
                    plain.append(await plain_process(urls, seconds))
            finally:
                await stop_simulators(sims)
            print(f"| {n} | {runs(apart)} | {runs(plain)} |", flush=True)

        print(
            f"\n### Two sessions at {HZ:g} Hz while this process is busy "
            f"({BUSY_MS} ms of CPU every {BUSY_EVERY_MS} ms)\n"
        )
        print("| control loop | missed % |")
        print("|---|---|")
        sims, urls = await simulators(2)
        stop = threading.Event()
        worker = threading.Thread(target=busy, args=(stop,), daemon=True)
        worker.start()
        try:
            inside = await in_process(urls, seconds)
            print(f"| in this process (ControlLoop, as before) | {inside:.2f} |", flush=True)
            outside = await treatments(urls, seconds, Path(tmp) / "busy")
            print(f"| in the treatment process | {outside:.2f} |", flush=True)
        finally:
            stop.set()
            worker.join()
            await stop_simulators(sims)


if __name__ == "__main__":
    asyncio.run(main())

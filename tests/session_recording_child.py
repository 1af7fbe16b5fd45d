"""A recording process for the crash test: records one session until it is killed.

Usage: python session_recording_child.py MODE DB_URL PATIENT_ID CLINICIAN_ID WORKSTATION DATA_DIR

The child claims the workstation identity kept in DATA_DIR (label WORKSTATION), as every entry point
does, and journals its session there.

MODE ``loop``: the real control loop runs the lumbar intermittent profile on a simulated table served
over Modbus TCP on loopback (scaled clock), with the recorder subscribed to its stream.
MODE ``records``: real ``Started``/``Sample`` records published through a real ``Stream`` at 100 Hz.

Either way a subscriber prints ``RUN <run_id>`` on ``Started`` and ``P <seq> <monotonic>`` for every
sample as it is published (system-wide monotonic clock, comparable with the parent's). It never
finishes on its own before the parent kills it.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from devices.clock import ScaledClock
from devices.configfiles import config_file
from devices.contract import StopKind
from devices.limits import PatientFacts, load_limits
from devices.loop import ControlLoop
from devices.profiles import load_profile
from devices.records import Phase, Record, Sample, Started
from devices.stream import Stream
from session.db import make_engine
from session.identity import load_identity, register
from session.recorder import Recorder
from session.store import SessionContext, Store
from traction.tables import open_table


class Announcer:
    """Tells the parent what was published, and when."""

    def deliver(self, record: Record) -> None:
        if isinstance(record, Started):
            print(f"RUN {record.run_id}", flush=True)
        elif isinstance(record, Sample):
            print(f"P {record.seq} {time.monotonic()!r}", flush=True)


def report_failure(kind: StopKind, reason: str) -> None:
    print(f"FAILURE {kind} {reason}", flush=True)


SCALE = 10.0  # a 10-minute profile takes a minute: longer than the test waits
_SHIPPED = load_limits()
# A reading may be 0.4 s of real time old before the supervisor trips (the shipped 0.5 s of session
# time is 50 ms real at x10: a busy machine would end the session before the kill it waits for).
LIMITS = replace(_SHIPPED, supervisor=replace(_SHIPPED.supervisor, staleness_s=0.4 * SCALE))


async def with_loop(store: Store, context: SessionContext, journals: Path) -> None:
    clock = ScaledClock(SCALE)
    profile = load_profile(config_file("profiles", "lumbar-intermittent.toml"))
    async with open_table("sim://lumbar", clock) as opened:
        stream = Stream()
        loop = ControlLoop(
            opened.table,
            profile,
            patient=PatientFacts(body_weight_kg=82.0),
            limits=LIMITS,
            clock=clock,
            stream=stream,
            tick_hz=50.0,
            operator_confirmed=True,
        )
        recorder = Recorder(store, context, loop.request_stop, journal_dir=journals)
        stream.subscribe(recorder)
        stream.subscribe(Announcer())
        async with recorder:
            await loop.run()
            await recorder.wait_finished()


async def with_records(store: Store, context: SessionContext, journals: Path) -> None:
    stream = Stream()
    recorder = Recorder(store, context, report_failure, journal_dir=journals)
    stream.subscribe(recorder)
    stream.subscribe(Announcer())
    recorder.start()
    t0 = time.monotonic()
    run = str(uuid.uuid4())
    device = {
        "model": "LT-200",
        "serial_number": "SN-1",
        "firmware": "1",
        "rated_max_force_n": 890.0,
    }
    stream.publish(Started(run, 0.0, datetime.now(UTC), "sim://lumbar", device, {}, {}, 100.0, 1.0))
    seq = 0
    while True:
        deadline = t0 + seq * 0.01
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        stream.publish(Sample(run, seq, time.monotonic() - t0, 200.0, 199.0, Phase.HOLD))
        seq += 1


def main() -> None:
    mode, url, patient, clinician, workstation, data_dir = sys.argv[1:7]
    store = Store(make_engine(url))
    identity = load_identity(Path(data_dir), workstation)
    register(store.engine, identity)
    context = SessionContext(
        int(patient), int(clinician), workstation, ("lumbar",), workstation_id=identity.id
    )
    run = with_loop if mode == "loop" else with_records
    asyncio.run(run(store, context, identity.journal_dir))


if __name__ == "__main__":
    main()

"""A recording process for the crash test: records a session until it is killed.

Usage: python session_recording_child.py DB_URL PATIENT_ID CLINICIAN_ID WORKSTATION RATE_HZ

Publishes real ``Started``/``Sample`` records through a real ``Stream`` to a real ``Recorder`` at a
fixed rate. Prints ``T0 <monotonic>`` once, then ``P <seq> <t>`` for every published sample, where
``T0 + t`` is the system-wide monotonic moment of publication. It never finishes on its own.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime

from devices.contract import StopKind
from devices.records import Phase, Sample, Started
from devices.stream import Stream
from session.db import make_engine
from session.recorder import Recorder
from session.store import SessionContext, Store


def no_overflow(kind: StopKind, reason: str) -> None:
    print(f"OVERFLOW {kind} {reason}", flush=True)


async def main(url: str, patient_id: int, clinician_id: int, workstation: str, rate: float) -> None:
    store = Store(make_engine(url))
    context = SessionContext(patient_id, clinician_id, workstation, ("lumbar",))
    stream = Stream()
    recorder = Recorder(store, context, no_overflow)
    stream.subscribe(recorder)
    recorder.start()
    t0 = time.monotonic()
    run = str(uuid.uuid4())
    device = {
        "model": "LT-200",
        "serial_number": "SN-1",
        "firmware": "1",
        "rated_max_force_n": 890.0,
    }
    stream.publish(Started(run, 0.0, datetime.now(UTC), "sim://lumbar", device, {}, {}, rate, 1.0))
    print(f"T0 {t0!r} {run}", flush=True)
    period = 1.0 / rate
    seq = 0
    while True:
        deadline = t0 + seq * period
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        t = time.monotonic() - t0
        stream.publish(Sample(run, seq, t, 200.0, 199.0 + (seq % 7), Phase.HOLD))
        print(f"P {seq} {t!r}", flush=True)
        seq += 1


if __name__ == "__main__":
    url, patient, clinician, workstation, rate = sys.argv[1:6]
    asyncio.run(main(url, int(patient), int(clinician), workstation, float(rate)))

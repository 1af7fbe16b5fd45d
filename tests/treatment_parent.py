"""A workstation process for the parent-death test: runs one treatment until it is killed.

Usage: python treatment_parent.py DB_URL PATIENT_ID CLINICIAN_ID WORKSTATION DATA_DIR TABLE_URL SCALE

It claims the workstation identity kept in DATA_DIR, as every entry point does, and runs a long
lumbar static session on the table at TABLE_URL (a simulator the test serves over loopback TCP) in
its treatment process. It prints ``RUN <run_id> <treatment pid>`` once the session has started,
then ``S <seq>`` for each sample it receives.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path

from treatment_cases import limits_at, long_static_profile

from devices.clock import ScaledClock
from devices.records import Record, Sample, Started
from session.db import make_engine
from session.runner import Treatment
from session.store import SessionContext, Store
from traction.context import claim_workstation
from traction.tables import open_table


class Announcer:
    def __init__(self, treatment: Treatment) -> None:
        self.treatment = treatment

    def deliver(self, record: Record) -> None:
        if isinstance(record, Started):
            print(f"RUN {record.run_id} {self.treatment.loop.pid}", flush=True)
        elif isinstance(record, Sample):
            print(f"S {record.seq}", flush=True)


async def run(
    store: Store, context: SessionContext, data_dir: Path, url: str, scale: float
) -> None:
    identity, _ = claim_workstation(store, data_dir, context.workstation)
    context = dataclasses.replace(context, workstation_id=identity.id)
    clock = ScaledClock(scale)
    async with open_table(url, clock) as opened:
        treatment = Treatment(
            store,
            opened.table,
            long_static_profile(),
            store.get_patient(context.patient_id),
            context,
            limits_at(scale),
            clock,
            identity.journal_dir,
        )
        treatment.subscribe(Announcer(treatment))
        await treatment.run()


def main() -> None:
    db_url, patient, clinician, workstation, data_dir, url, scale = sys.argv[1:8]
    store = Store(make_engine(db_url))
    context = SessionContext(int(patient), int(clinician), workstation, ("lumbar",))
    asyncio.run(run(store, context, Path(data_dir), url, float(scale)))


if __name__ == "__main__":
    main()

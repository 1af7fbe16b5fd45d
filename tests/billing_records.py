"""Finished, sealed, signed sessions written through the store as the recorder would (for the
billing, ledger and export tests)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from documentation_factory import HOLD_N, intermittent_samples

from devices.records import Finished, Outcome, Phase, Sample, Started
from session.models import Discipline
from session.seal import seal
from session.store import SessionContext, Store


def record(
    store: Store,
    run_id: str,
    patient_id: int,
    clinician_id: int,
    wall: datetime,
    region: str = "lumbar",
    *,
    diagnoses: Sequence[str] | None = None,
    sign: bool = True,
    simulated: bool = False,
    time_scale: float = 1.0,
    decompression_table: bool = False,
    necessity: str | None = "Radiculopathy limits sitting; traction to progress exercise.",
) -> str:
    """A finished, sealed session; signed unless ``sign`` is false."""
    started = Started(
        run_id=run_id,
        t=0.0,
        wall=wall,
        table="lumbar-1",
        device={
            "manufacturer": "Acme",
            "model": "TT-500",
            "serial_number": "SN-9",
            "firmware": "2",
            **({"decompression": True} if decompression_table else {}),
        },
        profile={
            "mode": "intermittent",
            "region": region,
            "hold_force_n": HOLD_N,
            "rest_force_n": HOLD_N / 2,
            "hold_s": 60,
            "rest_s": 20,
            "total_s": 960,
        },
        limits={},
        tick_hz=2.0,
        time_scale=time_scale,
    )
    if diagnoses is None:
        diagnoses = ("M54.16",) if region == "lumbar" else ("M54.12",)
    store.create_session(
        started,
        SessionContext(
            patient_id=patient_id,
            treating_clinician_id=clinician_id,
            workstation="ws",
            regions=(region,),
            diagnosis_codes=tuple(diagnoses),
            medical_necessity=necessity,
            plan_of_care_ref="POC-1",
            simulated=simulated,
        ),
    )
    samples = [
        Sample(run_id, s.seq, s.t, s.target_n, s.measured_n, Phase(s.phase))
        for s in intermittent_samples(run_id)
    ]
    store.add_batch(run_id, samples, ())
    store.finish(
        Finished(
            run_id,
            samples[-1].t,
            wall + timedelta(minutes=16),
            Outcome.COMPLETED,
            "done",
            len(samples),
        )
    )
    seal(store, run_id)
    store.amend(run_id, "patient_response", "Tolerated well.", "clinician 1", "note")
    if sign:
        store.amend(run_id, "signed_by_id", clinician_id, "clinician 1", "signature")
    return run_id


def people(store: Store, reference: str = "P-1", payer: str = "medicare") -> tuple[int, int]:
    """A patient and a PT (created once per store); their ids."""
    patient = store.add_patient(reference, 80.0, payer_id=payer)
    existing = [c for c in store.list_clinicians() if c.npi == "1234567893"]
    pt = (
        existing[0]
        if existing
        else store.add_clinician("Dana Reyes", "PT, DPT", Discipline.PT, npi="1234567893")
    )
    assert patient.id is not None and pt.id is not None
    return patient.id, pt.id

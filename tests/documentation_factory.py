"""Documentation built from plain inputs, for the billing and export tests (no database)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from devices.records import Event, EventKind, Outcome, Phase, Sample
from devices.units import N_PER_LBF
from session.documentation import (
    AbnStatus,
    ClinicalRecord,
    Clinician,
    Discipline,
    Documentation,
    PlanOfCare,
    Region,
    Seal,
    SessionFacts,
    Signature,
    document_session,
)

PT = Clinician(name="Dana Reyes", credentials="PT, DPT", discipline=Discipline.PT, npi="1234567893")
SUPERVISOR = Clinician(
    name="Lee Park", credentials="PT, DPT", discipline=Discipline.PT, npi="1987654320"
)
GOOD_SEAL = Seal(algorithm="sha256", digest="ab" * 32, verified=True)
HOLD_N = 40 * N_PER_LBF
REST_N = 20 * N_PER_LBF


def intermittent_samples(
    run_id: str = "s1",
    minutes: float = 16.0,
    hz: float = 2.0,
    hold_s: float = 60,
    rest_s: float = 20,
) -> Iterator[Sample]:
    """A generator, so the builder is shown to stream: hold/rest cycles with an overshoot peak."""
    n = int(minutes * 60 * hz)
    for seq in range(n):
        t = 100.0 + seq / hz
        into = (seq / hz) % (hold_s + rest_s)
        hold = into < hold_s
        target = HOLD_N if hold else REST_N
        measured = target + (3.0 if seq % 7 == 0 else -1.0)
        if hold and seq == 10:
            measured = HOLD_N + 12.0  # a brief overshoot the statistics must keep
        yield Sample(run_id, seq, t, target, measured, Phase.HOLD if hold else Phase.REST)


def snapshot(mode: str = "intermittent") -> dict[str, Any]:
    return {
        "run_id": "s1",
        "t": 100.0,
        "table": "lumbar-1",
        "device": {
            "manufacturer": "Acme Medical",
            "model": "TT-500",
            "serial": "SN-0042",
            "firmware": "2.3.1",
        },
        "profile": {
            "mode": mode,
            "hold_force_n": HOLD_N,
            "rest_force_n": REST_N,
            "hold_s": 60,
            "rest_s": 20,
            "duration_s": 960,
            "progression_steps": 2,
            "regression_steps": 1,
            "ramp_n_per_s": 20.0,
        },
        "limits": {},
    }


def clinical(**overrides: Any) -> ClinicalRecord:
    base: dict[str, Any] = {
        "treating": PT,
        "supervising": SUPERVISOR,
        "diagnoses": ("M54.16", "M51.16"),
        "medical_necessity": "Lumbar radiculopathy limiting sitting to 10 min; traction to reduce "
        "nerve root compression so the patient can progress active exercise (goal 2).",
        "plan_of_care": PlanOfCare(
            reference="POC-77", discipline=Discipline.PT, goals="Sit 45 min"
        ),
        "patient_response": "Tolerated well; leg pain 6/10 to 3/10.",
        "signature": Signature(
            name=PT.name,
            credentials=PT.credentials,
            signed_at=datetime(2025, 3, 14, 15, 0, tzinfo=UTC),
        ),
        "abn": AbnStatus.NOT_REQUIRED,
        "payer": "medicare",
        "position": "supine, hips and knees flexed",
        "angle_deg": 15.0,
    }
    base.update(overrides)
    return ClinicalRecord(**base)


def make_doc(
    session_id: str = "s1",
    patient_ref: str = "P-100",
    start: datetime = datetime(2025, 3, 14, 14, 0, tzinfo=UTC),
    regions: tuple[Region, ...] = (Region.LUMBAR,),
    outcome: Outcome = Outcome.COMPLETED,
    events: tuple[Event, ...] = (),
    minutes: float = 16.0,
    seal: Seal | None = GOOD_SEAL,
    **clinical_overrides: Any,
) -> Documentation:
    facts = SessionFacts(
        session_id=session_id,
        patient_ref=patient_ref,
        regions=regions,
        started_at=start,
        ended_at=start.replace(minute=start.minute + int(minutes)) if minutes < 40 else None,
        outcome=outcome,
        outcome_reason="" if outcome == Outcome.COMPLETED else "see events",
        seal=seal,
    )
    return document_session(
        facts,
        snapshot(),
        events,
        intermittent_samples(session_id, minutes),
        clinical(**clinical_overrides),
    )


def trip_event(t: float = 400.0) -> Event:
    return Event("s1", t, EventKind.TRIP, "over-force: 58.2 lbf above the 50 lbf limit")

"""A whole treatment: a sim:// table over Modbus TCP, the control loop, the recorder, the seal."""

from pathlib import Path

import pytest

from devices.clock import ScaledClock
from devices.configfiles import config_file
from devices.limits import load_limits
from devices.loop import StartRefused
from devices.profiles import load_profile
from devices.records import Outcome
from session.journal import journals
from session.models import Discipline
from session.runner import Treatment, patient_facts, preflight, prior_sessions
from session.seal import verify
from session.store import SessionContext, Store
from traction.tables import open_table


def demo_profile():  # type: ignore[no-untyped-def]
    return load_profile(str(config_file("profiles", "demo.toml")))


@pytest.mark.backend("sqlite")
async def test_a_demo_session_is_recorded_sealed_and_verifiable(
    store: Store, tmp_path: Path
) -> None:
    patient = store.add_patient("P-100", 82.0, sex="male")
    clinician = store.add_clinician("Dana Reyes", "PT, DPT", Discipline.PT, npi="1234567893")
    # x5: every session-time bound keeps >= 100 ms of real time (the supervisor's 0.5 s
    # staleness is 100 ms real, the over-target tolerance 200 ms), so a loaded machine's stall
    # stays inside the margin (x20 left 25 ms).
    clock = ScaledClock(5.0)
    context = SessionContext(
        patient_id=patient.id or 0,
        treating_clinician_id=clinician.id or 0,
        workstation="room-2",
        regions=("lumbar",),
        diagnosis_codes=("M51.16",),
    )
    async with open_table("sim://lumbar", clock) as opened:
        treatment = Treatment(
            store, opened.table, demo_profile(), patient, context, load_limits(), clock, tmp_path
        )
        result = await treatment.run()
        assert opened.models[1].released
    assert result.finished.outcome is Outcome.COMPLETED, result.finished.reason
    row = store.get_session(result.session_id)
    assert row.outcome == Outcome.COMPLETED.value
    assert store.sample_count(result.session_id) == result.finished.sample_count > 100
    assert verify(store, result.session_id).ok
    assert journals(tmp_path) == []  # sealed, so its journal is gone
    holds = [s for s in store.iter_samples(result.session_id) if s.phase == "hold"]
    assert holds and all(abs(s.measured_n - s.target_n) < 25.0 for s in holds[5:])
    # The next prescription is checked against the first-session cap for session 2.
    assert prior_sessions(store, patient) == {"lumbar": 1}
    assert patient_facts(patient, {"lumbar": 1}).prior_sessions == {"lumbar": 1}
    assert patient_facts(patient).prior_sessions is None


async def test_a_contraindicated_patient_is_refused_before_anything_moves(
    store: Store, tmp_path: Path
) -> None:
    patient = store.add_patient("P-101", 70.0, contraindications=["pregnancy"])
    clinician = store.add_clinician("Sam Lee", "PT", Discipline.PT)
    clock = ScaledClock(20.0)
    context = SessionContext(patient.id or 0, clinician.id or 0, "room-2", ("lumbar",))
    async with open_table("sim://lumbar", clock) as opened:
        _, violations = await preflight(opened.table, demo_profile(), patient, load_limits())
        assert any("Pregnancy" in v.message for v in violations)
        treatment = Treatment(
            store, opened.table, demo_profile(), patient, context, load_limits(), clock, tmp_path
        )
        with pytest.raises(StartRefused):
            await treatment.run()
        assert opened.models[1].tension_n == 0.0 and not opened.models[1].running
    assert store.find_sessions() == []
    assert journals(tmp_path) == []  # nothing started, nothing left behind

"""Cycles are named the same way live and in the note: every hold, full and stepped, by force."""

from __future__ import annotations

from datetime import UTC, datetime

from devices.profiles import ForceProfile, Mode, Region
from devices.records import Phase
from devices.units import N_PER_LBF, ForceUnit
from session.cycles import CycleCount


def stepped_profile() -> ForceProfile:
    """35 lbf hold, 15 lbf rest, one progression and one regression step: three holds."""
    return ForceProfile(
        mode=Mode.INTERMITTENT,
        region=Region.LUMBAR,
        hold_force_n=35 * N_PER_LBF,
        rest_force_n=15 * N_PER_LBF,
        hold_s=30,
        rest_s=10,
        total_s=3 * 40 + 30,
        ramp_n_per_s=20,
        progression_steps=1,
        regression_steps=1,
    )


def test_a_35_over_15_session_with_one_step_each_way_is_three_cycles() -> None:
    profile = stepped_profile()
    count = CycleCount()
    t = 0.0
    while t <= profile.total_s:
        target, phase = profile.target_at(t)
        count.add(phase, target)
        t += 0.1
    assert count.total == profile.cycles == 3
    assert count.describe(ForceUnit.LBF) == "3 cycles: 1 at 35 lbf, 2 stepped at 17.5 lbf"


def test_holds_are_named_by_the_force_they_reached_when_the_target_lags_the_profile() -> None:
    """The commanded target moves at most ramp x nominal tick per tick (a stall-safe ramp), so
    after late ticks it is still climbing when the profile's hold begins: each hold is still
    named by the force it reached, as a recorded session's samples show it."""
    profile = stepped_profile()
    step = profile.ramp_n_per_s * 0.02  # one nominal 50 Hz tick's worth of ramp
    count = CycleCount()
    commanded, t = 0.0, 0.0
    while t <= profile.total_s:
        wanted, phase = profile.target_at(t)
        commanded = min(wanted, commanded + step) if wanted > commanded else wanted
        count.add(phase, commanded)
        t += 0.1  # ticks five times too late: the target lags well into each hold
    assert count.total == 3
    assert count.describe(ForceUnit.LBF) == "3 cycles: 1 at 35 lbf, 2 stepped at 17.5 lbf"


def test_a_hold_cut_short_before_its_force_is_named_by_what_it_reached() -> None:
    count = CycleCount()
    for phase, target in ((Phase.REST, 60.0), (Phase.HOLD, 70.0), (Phase.HOLD, 90.0)):
        count.add(phase, target)
    assert count.full == {90.0: 1} and count.describe(ForceUnit.N) == "1 cycle: 1 at 90 N"
    count.add(Phase.HOLD, 80.0)  # easing off inside the hold keeps the force it reached
    count.add(Phase.REST, 60.0)
    count.add(Phase.HOLD, 90.0)
    assert count.full == {90.0: 2} and count.total == 2


def test_a_pause_inside_a_hold_is_not_a_new_cycle() -> None:
    count = CycleCount()
    for phase in (Phase.RAMP_UP, Phase.HOLD, Phase.PAUSED, Phase.HOLD, Phase.REST, Phase.HOLD):
        count.add(phase, 100.0)
    assert count.total == 2 and count.describe(ForceUnit.N) == "2 cycles: 2 at 100 N"
    assert CycleCount().describe(ForceUnit.LBF) == "0 cycles"


def test_the_live_readout_and_the_note_use_the_same_wording() -> None:
    from documentation_factory import clinical, snapshot
    from rich.console import Console

    from devices.records import Outcome, Sample
    from session.documentation import Region as DocRegion
    from session.documentation import SessionFacts, document_session
    from traction.live import LiveView

    profile = stepped_profile()
    samples = []
    for seq in range(int(profile.total_s * 10)):
        target, phase = profile.target_at(seq / 10)
        samples.append(Sample("s1", seq, 100.0 + seq / 10, target, target, phase))
    view = LiveView(ForceUnit.LBF, profile.total_s, 400.0, "test")
    for sample in samples:
        view.deliver(sample)
    console = Console(width=120, record=True)
    console.print(view)
    live_text = console.export_text()
    facts = SessionFacts(
        session_id="s1",
        patient_ref="P-1",
        regions=(DocRegion.LUMBAR,),
        started_at=datetime(2026, 3, 14, tzinfo=UTC),
        ended_at=None,
        outcome=Outcome.COMPLETED,
    )
    doc = document_session(facts, snapshot(), [], samples, clinical())
    wording = "3 cycles: 1 at 35 lbf, 2 stepped at 17.5 lbf"
    assert doc.delivered.cycles == 3 and doc.delivered.cycles_summary == wording
    assert wording in live_text

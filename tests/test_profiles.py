"""Force profiles: the curve's properties over generated profiles, and loading with clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from devices.errors import ConfigError
from devices.profiles import ForceProfile, Mode, Region, load_profile
from devices.records import Phase
from devices.units import N_PER_LBF

PROFILES = Path(__file__).resolve().parent.parent / "configs" / "profiles"
HOLDS = (Phase.PROGRESSION, Phase.HOLD, Phase.REGRESSION)


@st.composite
def intermittent(draw: st.DrawFn) -> ForceProfile:
    hold = draw(st.floats(20.0, 600.0))
    try:
        return ForceProfile(
            mode=Mode.INTERMITTENT,
            region=draw(st.sampled_from(list(Region))),
            hold_force_n=hold,
            rest_force_n=hold * draw(st.floats(0.0, 0.9)),
            hold_s=draw(st.floats(5.0, 90.0)),
            rest_s=draw(st.floats(5.0, 60.0)),
            total_s=draw(st.floats(300.0, 4000.0)),
            ramp_n_per_s=draw(st.floats(10.0, 50.0)),
            progression_steps=draw(st.integers(0, 3)),
            regression_steps=draw(st.integers(0, 3)),
            step_rest_fraction=draw(st.floats(0.1, 1.0)),
        )
    except ConfigError:
        assume(False)
        raise


@st.composite
def continuous(draw: st.DrawFn) -> ForceProfile:
    hold = draw(st.floats(20.0, 600.0))
    ramp = draw(st.floats(5.0, 50.0))
    return ForceProfile(
        mode=Mode.CONTINUOUS,
        region=Region.LUMBAR,
        hold_force_n=hold,
        total_s=2 * hold / ramp + draw(st.floats(1.0, 3000.0)),
        ramp_n_per_s=ramp,
    )


any_profile = st.one_of(intermittent(), continuous())
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much]
)


def grid(p: ForceProfile, n: int = 1500) -> list[float]:
    points = [p.total_s * i / n for i in range(n + 1)]
    for s in p.segments:
        points += [s.t0, (s.t0 + s.t1) / 2, max(s.t0, s.t1 - 1e-6)]
    return sorted(points)


@SETTINGS
@given(any_profile)
def test_target_stays_between_zero_and_hold_force(p: ForceProfile) -> None:
    for t in grid(p):
        target, _ = p.target_at(t)
        assert -1e-9 <= target <= p.hold_force_n + 1e-9


@SETTINGS
@given(any_profile)
def test_target_never_changes_faster_than_the_ramp_rate(p: ForceProfile) -> None:
    ts = grid(p)
    for a, b in zip(ts, ts[1:], strict=False):
        change = abs(p.target_at(b)[0] - p.target_at(a)[0])
        assert change <= p.ramp_n_per_s * (b - a) + 1e-6


@SETTINGS
@given(any_profile)
def test_curve_is_contiguous_and_ends_at_zero_exactly_at_total_time(p: ForceProfile) -> None:
    segs = p.segments
    assert segs[0].t0 == 0.0 and segs[0].start_n == 0.0
    for a, b in zip(segs, segs[1:], strict=False):
        assert b.t0 == pytest.approx(a.t1, abs=1e-9)
        assert b.start_n == pytest.approx(a.end_n, abs=1e-9)
    assert segs[-1].t1 == p.total_s
    assert segs[-1].end_n == pytest.approx(0.0, abs=1e-9)
    assert p.target_at(p.total_s) == (0.0, Phase.DONE)
    assert p.target_at(p.total_s + 100) == (0.0, Phase.DONE)
    assert p.target_at(p.total_s - 1e-6)[1] is not Phase.DONE


@SETTINGS
@given(intermittent())
def test_intermittent_phases_follow_the_prescribed_order(p: ForceProfile) -> None:
    letters = {
        Phase.RAMP_UP: "u",
        Phase.RAMP_DOWN: "d",
        Phase.PROGRESSION: "P",
        Phase.HOLD: "H",
        Phase.REGRESSION: "G",
        Phase.REST: "r",
    }
    by_cycle: dict[int, str] = {}
    for s in p.segments:
        by_cycle[s.cycle] = by_cycle.get(s.cycle, "") + letters[s.phase]
    n = p.cycles
    assert sorted(by_cycle) == list(range(1, n + 1))
    for cycle, word in by_cycle.items():
        k = cycle - 1
        if k < p.progression_steps:
            hold = "P"
        elif k >= n - p.regression_steps:
            hold = "G"
        else:
            hold = "H"
        # ramp in, the hold, ramp to rest, the rest (a ramp is absent when forces are equal);
        # the last cycle ends with a ramp to zero.
        tail = "d?r?d?" if cycle == n else "d?r"
        assert re.fullmatch(f"[ud]?{hold}{tail}", word), (cycle, word)


@SETTINGS
@given(intermittent())
def test_hold_and_rest_durations_are_honoured(p: ForceProfile) -> None:
    assert p.hold_s is not None and p.rest_s is not None
    holds = [s for s in p.segments if s.phase in HOLDS]
    rests = [s for s in p.segments if s.phase is Phase.REST]
    assert len(holds) == p.cycles
    for s in holds:
        assert s.t1 - s.t0 == pytest.approx(p.hold_s, abs=1e-6)
        assert s.start_n == s.end_n
    for s in rests[:-1]:
        assert s.t1 - s.t0 == pytest.approx(p.rest_s, abs=1e-6)
    # The last rest absorbs what is left, less than one more cycle.
    assert rests[-1].t1 - rests[-1].t0 >= p.rest_s - 1e-6
    longest_cycle = p.hold_s + p.rest_s + 2 * p.hold_force_n / p.ramp_n_per_s
    assert rests[-1].t1 - rests[-1].t0 < p.rest_s + longest_cycle + 1e-6


@SETTINGS
@given(intermittent())
def test_steps_climb_then_descend_monotonically(p: ForceProfile) -> None:
    holds = [s for s in p.segments if s.phase in HOLDS]
    forces = [s.start_n for s in holds]
    pro = [f for s, f in zip(holds, forces, strict=True) if s.phase is Phase.PROGRESSION]
    reg = [f for s, f in zip(holds, forces, strict=True) if s.phase is Phase.REGRESSION]
    full = [f for s, f in zip(holds, forces, strict=True) if s.phase is Phase.HOLD]
    assert len(pro) == p.progression_steps and len(reg) == p.regression_steps
    assert full and all(f == p.hold_force_n for f in full)
    climb, descent = [*pro, p.hold_force_n], [p.hold_force_n, *reg]
    assert all(a < b for a, b in zip(climb, climb[1:], strict=False))
    assert all(a > b for a, b in zip(descent, descent[1:], strict=False))
    assert forces == pro + full + reg  # progression first, regression last
    for s in p.segments:
        if s.phase is Phase.REST and (s.cycle <= p.progression_steps):
            step = forces[s.cycle - 1]
            assert s.start_n == pytest.approx(min(p.rest_force_n, p.step_rest_fraction * step))


@SETTINGS
@given(continuous())
def test_continuous_ramps_up_holds_and_ramps_down(p: ForceProfile) -> None:
    assert [s.phase for s in p.segments] == [Phase.RAMP_UP, Phase.HOLD, Phase.RAMP_DOWN]
    hold = p.segments[1]
    assert hold.start_n == hold.end_n == p.hold_force_n
    assert p.cycles == 1 and p.cycle_at(hold.t0) == 1


def test_cycle_at_counts_cycles_and_stays_on_the_last_when_done() -> None:
    p = load_profile(PROFILES / "demo.toml")
    holds = [s for s in p.segments if s.phase in HOLDS]
    assert [p.cycle_at((s.t0 + s.t1) / 2) for s in holds] == list(range(1, p.cycles + 1))
    assert p.cycle_at(p.total_s + 5) == p.cycles


def test_shipped_profiles_load_with_their_units() -> None:
    cervical = load_profile(PROFILES / "cervical-intermittent.toml")
    assert cervical.region is Region.CERVICAL and cervical.mode is Mode.INTERMITTENT
    assert cervical.hold_force_n == pytest.approx(25 * N_PER_LBF)
    assert cervical.total_s == 900 and cervical.hold_s == 60 and cervical.rest_s == 20
    static = load_profile(PROFILES / "lumbar-static.toml")
    assert static.mode is Mode.CONTINUOUS and static.rest_s is None
    for path in PROFILES.glob("*.toml"):
        assert load_profile(path).segments


def test_round_trip_through_the_settings_snapshot() -> None:
    p = load_profile(PROFILES / "lumbar-intermittent.toml")
    assert ForceProfile.from_dict(p.to_dict()) == p
    assert p.to_dict()["hold_force_n"] == pytest.approx(80 * N_PER_LBF)


def test_kgf_and_newtons_are_accepted_and_static_means_continuous() -> None:
    p = ForceProfile.from_dict(
        {
            "mode": "static",
            "region": "lumbar",
            "hold_force": "20 kgf",
            "total_s": 300,
            "ramp_rate": "20 N/s",
        }
    )
    assert p.mode is Mode.CONTINUOUS and p.unit.value == "kgf"
    assert p.hold_force_n == pytest.approx(196.133)


BASE = {
    "mode": "intermittent",
    "region": "cervical",
    "hold_force": "20 lbf",
    "rest_force": "10 lbf",
    "hold_s": 60,
    "rest_s": 20,
    "total_min": 15,
    "ramp_rate": "2 lbf/s",
}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"hold_force": 20}, "hold_force", "has no unit"),
        ({"hold_force": "20 stone"}, "hold_force", "unknown force unit"),
        ({"rest_force": "25 lbf"}, "rest_force", "below the hold force"),
        ({"mode": "wavy"}, "mode", "is not one of"),
        ({"region": "thoracic"}, "region", "is not one of"),
        ({"ramp_rate": "2 lbf"}, "ramp_rate", "must be written like"),
        ({"hold_s": "60"}, "hold_s", "is not a number"),
        ({"total_min": 1}, "total_s", "too short"),
        ({"progression_steps": 1.5}, "progression_steps", "whole number"),
        ({"hold_time": 60}, "hold_time", "unknown setting"),
        ({"rest_s": None}, "rest_s", "needs rest_s > 0"),
        ({"hold_s": float("nan")}, "hold_s", "nan is not a finite number"),  # TOML allows nan
        ({"total_min": float("inf")}, "total_min", "inf is not a finite number"),
        ({"angle_deg": float("nan")}, "angle_deg", "nan is not a finite number"),
    ],
)
def test_bad_values_name_file_and_field(
    tmp_path: Path, change: dict[str, object], field: str, message: str
) -> None:
    data = {**BASE, **change}
    lines = []
    for key, value in data.items():
        if value is None:
            continue
        lines.append(f"{key} = {value!r}" if isinstance(value, str) else f"{key} = {value}")
    path = tmp_path / "bad.toml"
    path.write_text("\n".join(lines).replace("'", '"'))
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert info.value.where == f"{path}: {field}"
    assert message in info.value.message


def test_unreadable_and_invalid_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read profile"):
        load_profile(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("mode = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profile(broken)


def test_continuous_profile_refuses_steps_and_rest_settings() -> None:
    base = {
        "mode": "continuous",
        "region": "lumbar",
        "hold_force": "40 lbf",
        "total_s": 600,
        "ramp_rate": "5 lbf/s",
    }
    with pytest.raises(ConfigError, match="intermittent profiles only"):
        ForceProfile.from_dict({**base, "progression_steps": 2}, where="api")
    with pytest.raises(ConfigError, match="remove rest_force"):
        ForceProfile.from_dict({**base, "rest_s": 20}, where="api")

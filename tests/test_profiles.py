"""Force profiles: the curve's properties over generated profiles, and loading with clear errors."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from devices.errors import ConfigError
from devices.profiles import (
    BOUNDS,
    Bound,
    ForceProfile,
    Mode,
    ProfileError,
    Region,
    check_fields,
    load_profile,
)
from devices.records import Phase
from devices.units import N_PER_LBF, ForceUnit

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
    for s in list(p.segments()):
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
    segs = list(p.segments())
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
    for s in list(p.segments()):
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
    holds = [s for s in list(p.segments()) if s.phase in HOLDS]
    rests = [s for s in list(p.segments()) if s.phase is Phase.REST]
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
    holds = [s for s in list(p.segments()) if s.phase in HOLDS]
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
    for s in list(p.segments()):
        if s.phase is Phase.REST and (s.cycle <= p.progression_steps):
            step = forces[s.cycle - 1]
            assert s.start_n == pytest.approx(min(p.rest_force_n, p.step_rest_fraction * step))


@SETTINGS
@given(continuous())
def test_continuous_ramps_up_holds_and_ramps_down(p: ForceProfile) -> None:
    assert [s.phase for s in list(p.segments())] == [Phase.RAMP_UP, Phase.HOLD, Phase.RAMP_DOWN]
    hold = list(p.segments())[1]
    assert hold.start_n == hold.end_n == p.hold_force_n
    assert p.cycles == 1 and p.cycle_at(hold.t0) == 1


def test_cycle_at_counts_cycles_and_stays_on_the_last_when_done() -> None:
    p = load_profile(PROFILES / "demo.toml")
    holds = [s for s in list(p.segments()) if s.phase in HOLDS]
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
        assert list(load_profile(path).segments())


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
    with pytest.raises(ConfigError, match="remove rest_s "):
        ForceProfile.from_dict({**base, "rest_s": 20}, where="api")


# ----- the arithmetic curve against a plain cycle-by-cycle reference --------------------------
def reference_segments(p: ForceProfile) -> list[tuple[float, float, Phase, float, float, int]]:
    """The curve built the slow, obvious way: try n = 1, 2, ... cycles until the next one would
    not fit, then lay every cycle out in order (what the profile used to store)."""
    assert p.hold_s is not None and p.rest_s is not None
    hold_s, rest_s = p.hold_s, p.rest_s

    def forces(n: int) -> list[tuple[float, float, Phase]]:
        out = []
        for k in range(n):
            if k < p.progression_steps:
                h = p.hold_force_n * (k + 1) / (p.progression_steps + 1)
                out.append((h, min(p.rest_force_n, p.step_rest_fraction * h), Phase.PROGRESSION))
            elif k >= n - p.regression_steps:
                h = p.hold_force_n * (n - k) / (p.regression_steps + 1)
                out.append((h, min(p.rest_force_n, p.step_rest_fraction * h), Phase.REGRESSION))
            else:
                out.append((p.hold_force_n, p.rest_force_n, Phase.HOLD))
        return out

    def build(n: int, last_rest: float) -> list[tuple[float, float, Phase, float, float, int]]:
        segs = []
        t, f = 0.0, 0.0
        for k, (h, rest, phase) in enumerate(forces(n)):
            pieces = [
                (abs(h - f) / p.ramp_n_per_s, Phase.RAMP_UP if h > f else Phase.RAMP_DOWN, f, h),
                (hold_s, phase, h, h),
                ((h - rest) / p.ramp_n_per_s, Phase.RAMP_DOWN, h, rest),
                (last_rest if k == n - 1 else rest_s, Phase.REST, rest, rest),
            ]
            for length, ph, f0, f1 in pieces:
                if length > 1e-9:
                    segs.append((t, t + length, ph, f0, f1, k + 1))
                    t += length
            f = rest
        if f > 0:
            segs.append((t, t + f / p.ramp_n_per_s, Phase.RAMP_DOWN, f, 0.0, n))
        return segs

    n = p.progression_steps + p.regression_steps + 1
    while build(n + 1, rest_s)[-1][1] <= p.total_s + 1e-9:
        n += 1
    slack = p.total_s - build(n, rest_s)[-1][1]
    return build(n, rest_s + slack)


@SETTINGS
@given(intermittent())
def test_intermittent_curve_matches_the_cycle_by_cycle_reference(p: ForceProfile) -> None:
    expected = reference_segments(p)
    got = list(p.segments())
    assert p.cycles == expected[-1][5]
    assert len(got) == len(expected)
    for s, (t0, t1, phase, f0, f1, cycle) in zip(got, expected, strict=True):
        assert (s.phase, s.cycle) == (phase, cycle)
        assert s.t0 == pytest.approx(t0, abs=1e-6) and s.t1 == pytest.approx(t1, abs=1e-6)
        assert s.start_n == pytest.approx(f0) and s.end_n == pytest.approx(f1)


@SETTINGS
@given(any_profile)
def test_target_at_agrees_with_every_segment(p: ForceProfile) -> None:
    for s in p.segments():
        if s.t1 - s.t0 <= 1e-9:
            continue  # a ramp too short to hold any moment (a rest force of a few nanonewtons)
        for t in (s.t0 + (s.t1 - s.t0) * 0.25, (s.t0 + s.t1) / 2, s.t0 + (s.t1 - s.t0) * 0.75):
            target, phase = p.target_at(t)
            assert phase is s.phase
            assert target == pytest.approx(s.force_at(t), abs=1e-9)
            assert p.cycle_at(t) == s.cycle


def test_a_profile_holds_the_same_few_numbers_whatever_its_duration() -> None:
    def plan_size(total_s: float) -> tuple[int, int]:
        p = ForceProfile(
            Mode.INTERMITTENT,
            Region.LUMBAR,
            hold_force_n=200.0,
            rest_force_n=60.0,
            hold_s=5.0,
            rest_s=5.0,
            total_s=total_s,
            ramp_n_per_s=100.0,
            progression_steps=3,
            regression_steps=2,
        )
        p.target_at(total_s / 2)
        plan = p._plan
        return len(plan.progression), len(plan.regression)

    assert plan_size(300.0) == plan_size(4 * 3600.0) == (3, 2)


# ----- every problem at once -----------------------------------------------------------------
def test_every_bad_value_is_reported_with_field_value_and_rule() -> None:
    with pytest.raises(ProfileError) as info:
        ForceProfile.from_dict(
            {**BASE, "hold_s": "60", "angle_deg": 400, "rest_force": "25 lbf", "colour": "red"},
            where="api",
        )
    problems = {p.field: p for p in info.value.problems}
    assert set(problems) == {"hold_s", "angle_deg", "rest_force", "colour"}
    assert problems["angle_deg"].value == "400 deg"
    assert problems["angle_deg"].rule == "400 deg must be at least 0 deg and at most 90 deg"
    assert problems["rest_force"].value == "25 lbf"
    assert "below the hold force 20 lbf" in problems["rest_force"].rule
    assert problems["hold_s"].value == "'60'" and "is not a number" in problems["hold_s"].rule
    assert info.value.where == "api"
    assert info.value.message.startswith("4 problems:")


def test_one_bad_field_does_not_hide_a_cross_field_rule() -> None:
    with pytest.raises(ProfileError) as info:
        ForceProfile.from_dict({**BASE, "hold_force": "20 stone", "rest_s": -1, "total_min": "x"})
    assert [p.field for p in info.value.problems] == ["hold_force", "total_min", "rest_s"]


# ----- bounds: just below, at and just above each end -----------------------------------------
def _edges(bound: Bound, whole: bool) -> list[tuple[float, bool]]:
    """(value, accepted) just below, at and just above both ends of ``bound``."""
    if whole:
        lo, hi = int(bound.low), int(bound.high)
        return [(lo - 1, False), (lo, True), (lo + 1, True), (hi - 1, True), (hi, True), (hi + 1, False)]  # fmt: skip
    down, up = -math.inf, math.inf
    return [
        (math.nextafter(bound.low, down), False),
        (bound.low, not bound.low_open),
        (math.nextafter(bound.low, up), True),
        (math.nextafter(bound.high, down), True),
        (bound.high, True),
        (math.nextafter(bound.high, up), False),
    ]


EDGE_CASES = [
    (name, value, accepted)
    for name, bound in BOUNDS.items()
    for value, accepted in _edges(bound, name.endswith("_steps"))
]
WRITTEN = {"hold_force_n": "hold_force", "ramp_n_per_s": "ramp_rate"}


@pytest.mark.parametrize(("name", "value", "accepted"), EDGE_CASES)
def test_each_bound_is_inclusive_or_exclusive_as_documented(
    name: str, value: float, accepted: bool
) -> None:
    problems = check_fields({name: value}, ForceUnit.N, None)
    assert (problems == []) is accepted, problems
    if not accepted:
        [problem] = problems
        assert problem.field == WRITTEN.get(name, name)
        assert "at most" in problem.rule


def test_the_documented_bounds() -> None:
    assert BOUNDS["hold_force_n"] == Bound(0.0, 2000.0, low_open=True)
    assert BOUNDS["total_s"] == Bound(0.0, 14400.0, low_open=True)
    assert BOUNDS["hold_s"] == BOUNDS["rest_s"] == Bound(1.0, 3600.0)
    assert BOUNDS["progression_steps"] == BOUNDS["regression_steps"] == Bound(0, 20)
    assert BOUNDS["angle_deg"] == Bound(0.0, 90.0)
    assert BOUNDS["step_rest_fraction"] == Bound(0.0, 1.0, low_open=True)
    assert BOUNDS["ramp_n_per_s"] == Bound(0.0, 500.0, low_open=True)


@pytest.mark.parametrize(
    ("field", "length", "accepted"),
    [("name", 199, True), ("name", 200, True), ("name", 201, False),
     ("position", 63, True), ("position", 64, True), ("position", 65, False)],
)  # fmt: skip
def test_text_fields_are_bounded(field: str, length: int, accepted: bool) -> None:
    problems = check_fields({field: "x" * length}, ForceUnit.N, None)
    assert (problems == []) is accepted
    if not accepted:
        assert problems[0].field == field and f"at most {length - 1}" in problems[0].rule


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"total_s": 1e300, "total_min": None}, "total_s"),
        ({"progression_steps": 1_000_000_000}, "progression_steps"),
        ({"regression_steps": 10**5000}, "regression_steps"),
        ({"hold_s": 10**400}, "hold_s"),
        ({"rest_s": 1e308}, "rest_s"),
        ({"hold_force": "1e9 lbf"}, "hold_force"),
        ({"hold_force": "99999999999999 lbf"}, "hold_force"),
        ({"ramp_rate": "100000 lbf/s"}, "ramp_rate"),
        ({"angle_deg": 400}, "angle_deg"),
        ({"angle_deg": -5}, "angle_deg"),
        ({"step_rest_fraction": 7}, "step_rest_fraction"),
        ({"position": "p" * 100_000}, "position"),
    ],
)
def test_absurd_values_are_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    data = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(ProfileError) as info:
        ForceProfile.from_dict(data, where="api")
    assert [p.field for p in info.value.problems] == [field]
    assert len(info.value.message) < 400  # the value is shown cut short, never echoed whole


@pytest.mark.parametrize(("count", "refused_whole"), [(39, False), (40, False), (41, True)])
def test_the_number_of_settings_is_bounded_before_any_is_read(
    count: int, refused_whole: bool
) -> None:
    """40 settings in all is the most a profile may have; above it nothing else is looked at."""
    data: dict[str, Any] = {**BASE, "angle_deg": 400}
    data.update({f"x{i}": i for i in range(count - len(data))})
    assert len(data) == count
    with pytest.raises(ProfileError) as info:
        ForceProfile.from_dict(data)
    fields = [p.field for p in info.value.problems]
    if refused_whole:
        assert fields == ["profile"] and "at most 40" in info.value.problems[0].rule
    else:
        assert "profile" not in fields and "angle_deg" in fields and "x0" in fields


def test_a_continuous_profile_too_short_for_its_ramps_is_refused() -> None:
    base = {
        "mode": "continuous",
        "region": "lumbar",
        "hold_force": "40 lbf",
        "ramp_rate": "4 lbf/s",
    }
    assert ForceProfile.from_dict({**base, "total_s": 20}).cycles == 1  # 10 s up, 10 s down
    with pytest.raises(ProfileError, match="shorter than the ramps"):
        ForceProfile.from_dict({**base, "total_s": 19.999})


def one_cycle_40_s(total_s: float, **changes: Any) -> ForceProfile:
    """Ramp 10 s to 100 N, hold 10 s, ramp 5 s to 50 N, rest 10 s, ramp 5 s to zero: one cycle
    takes 40 s, and each further one 30 s (ramp 5 s up, hold 10, ramp 5 down, rest 10)."""
    args: dict[str, Any] = {
        "hold_force_n": 100.0,
        "rest_force_n": 50.0,
        "hold_s": 10.0,
        "rest_s": 10.0,
        "ramp_n_per_s": 10.0,
        **changes,
    }
    return ForceProfile(Mode.INTERMITTENT, Region.LUMBAR, total_s=total_s, **args)


@pytest.mark.parametrize(
    ("total_s", "cycles"), [(40.0, 1), (69.999, 1), (70.0, 2), (99.999, 2), (100.0, 3)]
)
def test_a_cycle_is_added_exactly_when_it_fits(total_s: float, cycles: int) -> None:
    p = one_cycle_40_s(total_s)
    assert p.cycles == cycles
    assert p.target_at(total_s - 1e-6)[1] is Phase.RAMP_DOWN
    assert p.target_at(total_s) == (0.0, Phase.DONE)


def test_a_session_shorter_than_one_cycle_is_refused() -> None:
    with pytest.raises(ProfileError, match="too short for 0 progression and 0 regression steps"):
        one_cycle_40_s(39.999)


@pytest.mark.parametrize(
    ("rest_n", "accepted"),
    [(-1e-9, False), (0.0, True), (99.999, True), (100.0, False), (100.001, False)],
)
def test_rest_force_is_at_least_zero_and_below_the_hold_force(
    rest_n: float, accepted: bool
) -> None:
    problems = check_fields(
        {"hold_force_n": 100.0, "rest_force_n": rest_n}, ForceUnit.N, Mode.INTERMITTENT
    )
    rest = [p for p in problems if p.field == "rest_force"]
    assert (rest == []) is accepted, problems

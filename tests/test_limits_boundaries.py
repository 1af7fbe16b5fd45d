"""Every check of ``validate`` at its exact limit: at the limit passes, the next float beyond it is a
violation naming the field, the value, the limit and the rule; and the limits file's own bounds.

The limits here are built in code with round numbers (newtons), so "at the limit" is exact.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from devices.contract import DeviceInfo
from devices.errors import ConfigError
from devices.limits import (
    Bounds,
    FirstSessionCaps,
    Flag,
    PatientFacts,
    RegionLimits,
    SafetyLimits,
    Severity,
    SupervisorLimits,
    Violation,
    blocking,
    load_limits,
    validate,
    warnings,
)
from devices.profiles import ForceProfile, Mode, Region
from devices.units import N_PER_KGF, ForceUnit


def above(x: float) -> float:
    return math.nextafter(x, math.inf)


def below(x: float) -> float:
    return math.nextafter(x, -math.inf)


CAPS = FirstSessionCaps(
    female_n=200.0, male_n=250.0, step_per_session_n=25.0, severity=Severity.WARN
)
LIMITS = SafetyLimits(
    regions={
        Region.LUMBAR: RegionLimits(
            400.0, 0.5, 0.0, 30.0, min_cord_tension_n=50.0, first_session=CAPS
        ),
        Region.CERVICAL: RegionLimits(200.0, 0.25, 15.0, 35.0, min_cord_tension_n=20.0),
    },
    max_ramp_n_per_s=20.0,
    min_hold_rest_gap_n=50.0,
    hold_s=Bounds(10.0, 120.0),
    rest_s=Bounds(5.0, 60.0),
    total_s=Bounds(60.0, 1800.0),
    operator_confirm_force_n=350.0,
    supervisor=SupervisorLimits(20.0, 40.0, 40.0, 2.0, 0.5, 1.0),
    contraindications={
        "osteoporosis": Flag("osteoporosis", "Osteoporosis"),
        "pregnancy": Flag("pregnancy", "Pregnancy", frozenset({Region.LUMBAR})),
    },
    precautions={"claustrophobia": Flag("claustrophobia", "Claustrophobia")},
)
DEVICE = DeviceInfo("LT-200", "SN-4711", "2.3.1", 900.0, "Tractek")
PATIENT = PatientFacts(body_weight_kg=100.0, sex="male")  # 490 N by weight: never the limit here


def profile(**changes: Any) -> ForceProfile:
    base: dict[str, Any] = {
        "mode": Mode.INTERMITTENT,
        "region": Region.LUMBAR,
        "hold_force_n": 300.0,
        "rest_force_n": 100.0,
        "hold_s": 60.0,
        "rest_s": 30.0,
        "total_s": 600.0,
        "ramp_n_per_s": 20.0,
        "unit": ForceUnit.N,
    }
    return ForceProfile(**{**base, **changes})


def check(
    p: ForceProfile,
    patient: PatientFacts = PATIENT,
    limits: SafetyLimits = LIMITS,
    device: DeviceInfo = DEVICE,
    confirmed: bool = True,
) -> list[Violation]:
    return validate(p, patient, limits, device, operator_confirmed=confirmed)


def test_the_baseline_prescription_has_no_violation() -> None:
    assert check(profile()) == []


# --- forces ---------------------------------------------------------------------------------------


def test_hold_force_at_the_device_rating_passes_and_above_it_is_refused_naming_the_table() -> None:
    assert check(profile(), device=replace(DEVICE, rated_max_force_n=300.0)) == []
    [v] = check(profile(), device=replace(DEVICE, rated_max_force_n=below(300.0)))
    assert (v.field, v.value, v.limit, v.severity) == ("hold_force", "300.0 N", "300.0 N", "block")
    assert v.message == "hold_force 300.0 N is above the rated force 300.0 N of LT-200 SN-4711"


def test_hold_force_at_the_region_maximum_passes_and_above_it_is_refused() -> None:
    assert check(profile(hold_force_n=400.0)) == []
    [v] = check(profile(hold_force_n=above(400.0)))
    assert (v.field, v.limit) == ("hold_force", "400.0 N")
    assert v.message == "hold_force 400.0 N is above the lumbar maximum 400.0 N"


def test_hold_force_at_the_body_weight_fraction_passes_and_above_it_is_refused() -> None:
    light = replace(PATIENT, body_weight_kg=60.0)
    by_weight = 0.5 * 60.0 * N_PER_KGF
    assert check(profile(hold_force_n=by_weight), light) == []
    [v] = check(profile(hold_force_n=above(by_weight)), light)
    assert v.field == "hold_force" and v.limit == "294.2 N" and v.blocking
    assert "above 50% of the patient's body weight (60 kg): at most 294.2 N" in v.message


@pytest.mark.parametrize("weight", [0.0, -1.0, math.nan])
def test_a_missing_body_weight_blocks_because_the_limit_cannot_be_checked(weight: float) -> None:
    [v] = check(profile(), replace(PATIENT, body_weight_kg=weight))
    assert (v.field, v.limit, v.severity) == ("patient.body_weight_kg", "> 0 kg", Severity.BLOCK)
    assert "the body-weight limit cannot be checked" in v.message


def test_the_smallest_positive_body_weight_is_checked_not_refused_as_missing() -> None:
    tiny = replace(PATIENT, body_weight_kg=math.ulp(0.0))
    [v] = check(profile(), tiny)
    assert v.field == "hold_force" and "body weight" in v.message


@pytest.mark.parametrize(
    ("sex", "prior", "cap"),
    [
        ("female", 0, 200.0),
        ("male", 0, 250.0),
        ("unknown", 0, 200.0),
        ("female", 2, 250.0),
        ("male", 3, 325.0),
    ],
)
def test_first_session_cap_for_sex_and_sessions_given(sex: str, prior: int, cap: float) -> None:
    patient = replace(PATIENT, sex=sex, prior_sessions={"lumbar": prior})
    assert check(profile(hold_force_n=cap, rest_force_n=100.0), patient) == []
    [v] = check(profile(hold_force_n=above(cap), rest_force_n=100.0), patient)
    assert (v.field, v.limit, v.severity) == ("hold_force", f"{cap:.1f} N", Severity.WARN)
    assert f"the usual cap for lumbar session {prior + 1} of a " in v.message


def test_no_prior_sessions_of_the_region_means_the_first_session_cap() -> None:
    patient = replace(PATIENT, sex="female", prior_sessions={"cervical": 4})
    [v] = check(profile(hold_force_n=above(200.0)), patient)
    assert "lumbar session 1 of a female or unrecorded-sex patient" in v.message
    assert "(200.0 N at first, +25.0 N per session)" in v.message


def test_unknown_history_skips_the_cap_and_a_blocking_cap_blocks() -> None:
    assert check(profile(hold_force_n=350.0), replace(PATIENT, prior_sessions=None)) == []
    strict = replace(
        LIMITS,
        regions={
            **LIMITS.regions,
            Region.LUMBAR: replace(
                LIMITS.regions[Region.LUMBAR], first_session=replace(CAPS, severity=Severity.BLOCK)
            ),
        },
    )
    [v] = check(profile(hold_force_n=above(250.0)), replace(PATIENT, prior_sessions={}), strict)
    assert v.blocking


def test_hold_force_at_the_confirmation_force_needs_no_confirmation_and_above_it_does() -> None:
    assert check(profile(hold_force_n=350.0), confirmed=False) == []
    [v] = check(profile(hold_force_n=above(350.0)), confirmed=False)
    assert (v.field, v.limit) == ("hold_force", "350.0 N") and v.blocking
    assert "an operator must confirm it (operator_confirmed) before it is applied" in v.message
    assert check(profile(hold_force_n=above(350.0)), confirmed=True) == []


def test_ramp_at_the_maximum_passes_and_faster_is_refused() -> None:
    assert check(profile(ramp_n_per_s=20.0)) == []
    [v] = check(profile(ramp_n_per_s=above(20.0)))
    assert (v.field, v.value, v.limit) == ("ramp_rate", "20.0 N/s", "20.0 N/s")
    assert v.message == "ramp_rate 20.0 N/s is faster than the maximum 20.0 N/s"


def test_rest_exactly_the_minimum_gap_below_hold_passes_and_closer_is_refused() -> None:
    assert check(profile(rest_force_n=250.0)) == []
    [v] = check(profile(rest_force_n=above(250.0)))
    assert (v.field, v.limit) == ("rest_force", "250.0 N (hold minus 50.0 N)")
    assert "the gap must be at least 50.0 N" in v.message


# --- durations ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "low", "high"), [("hold_s", 10.0, 120.0), ("rest_s", 5.0, 60.0)])
def test_hold_and_rest_bounds_are_inclusive(name: str, low: float, high: float) -> None:
    for inside in (low, high):
        assert check(profile(**{name: inside})) == [], inside
    for outside in (below(low), above(high)):
        [v] = check(profile(**{name: outside}))
        assert (v.field, v.value, v.limit) == (name, f"{outside:g} s", f"{low:g}..{high:g} s")
        assert v.message == f"{name} {outside:g} s is outside {low:g}..{high:g} s"


def test_total_duration_bounds_are_inclusive() -> None:
    for inside in (60.0, 1800.0):
        assert check(profile(total_s=inside, hold_s=10.0, rest_s=5.0)) == [], inside
    for outside in (below(60.0), above(1800.0)):
        [v] = check(profile(total_s=outside, hold_s=10.0, rest_s=5.0))
        assert (v.field, v.limit) == ("total_s", "60..1800 s")


def test_a_continuous_profile_is_not_held_to_the_intermittent_rules() -> None:
    continuous = profile(
        mode=Mode.CONTINUOUS, rest_force_n=0.0, hold_s=None, rest_s=None, hold_force_n=300.0
    )
    assert check(continuous, limits=replace(LIMITS, min_hold_rest_gap_n=400.0)) == []


# --- the patient's flags and the angle ------------------------------------------------------------


def test_contraindications_block_where_they_apply_precautions_warn_unknown_flags_block() -> None:
    patient = replace(
        PATIENT, contraindications=frozenset({"osteoporosis", "claustrophobia", "gout"})
    )
    found = check(profile(), patient)
    assert [(v.field, v.value, v.limit, v.severity) for v in found] == [
        ("patient.contraindications", "gout", "a known flag", Severity.BLOCK),
        ("patient.contraindications", "osteoporosis", "none", Severity.BLOCK),
        ("patient.contraindications", "claustrophobia", "precaution", Severity.WARN),
    ]
    assert (
        found[1].message
        == "contraindication: Osteoporosis (osteoporosis) rules out lumbar traction"
    )
    assert "['claustrophobia', 'osteoporosis', 'pregnancy']" in found[0].message


def test_a_flag_for_another_region_does_not_apply() -> None:
    pregnant = replace(PATIENT, contraindications=frozenset({"pregnancy"}))
    assert [v.value for v in check(profile(), pregnant)] == ["pregnancy"]
    cervical = profile(
        region=Region.CERVICAL, hold_force_n=150.0, rest_force_n=50.0, angle_deg=20.0
    )
    assert check(cervical, pregnant) == []


def test_angle_bounds_are_inclusive_and_outside_them_is_a_warning() -> None:
    for inside in (0.0, 30.0):
        assert check(profile(angle_deg=inside)) == []
    for outside in (above(30.0),):  # a negative angle is no profile at all (ProfileError)
        [v] = check(profile(angle_deg=outside))
        assert (v.field, v.limit, v.severity) == ("angle_deg", "0..30 deg", Severity.WARN)
    assert check(profile(angle_deg=None)) == []


def test_every_violation_is_returned_blocking_first() -> None:
    patient = replace(PATIENT, contraindications=frozenset({"claustrophobia"}))
    found = check(profile(angle_deg=45.0, ramp_n_per_s=25.0, hold_s=5.0), patient)
    assert [v.field for v in found] == [
        "ramp_rate",
        "hold_s",
        "patient.contraindications",
        "angle_deg",
    ]
    assert blocking(found) == found[:2] and warnings(found) == found[2:]
    assert [v.blocking for v in found] == [True, True, False, False]
    assert found[0].to_dict()["severity"] == "block" and str(found[0]) == found[0].message


# --- derived limits and the limits file -----------------------------------------------------------


def test_the_hard_limit_is_the_profile_maximum_plus_margin_capped_by_the_rating() -> None:
    assert LIMITS.hard_limit_n(profile(), DEVICE) == 340.0
    assert LIMITS.hard_limit_n(profile(), replace(DEVICE, rated_max_force_n=330.0)) == 330.0


def test_bounds_include_both_ends() -> None:
    b = Bounds(5.0, 10.0)
    assert 5.0 in b and 10.0 in b and below(5.0) not in b and above(10.0) not in b
    assert b.text() == "5..10 s"


def test_cap_grows_by_the_step_per_session_given() -> None:
    assert CAPS.cap_n("male", 0) == 250.0 and CAPS.cap_n("female", 0) == 200.0
    assert CAPS.cap_n("other", 1) == 225.0 and CAPS.cap_n("male", 2) == 300.0


def shipped_with(section: str, key: str, value: object) -> dict[str, Any]:
    import tomllib

    from devices.configfiles import config_file

    data: dict[str, Any] = tomllib.loads(config_file("safety.toml").read_text())
    node = data
    for part in section.split("."):
        node = node[part]
    node[key] = value
    return data


@pytest.mark.parametrize(
    ("section", "key", "value", "ok"),
    [
        ("regions.lumbar", "max_body_weight_fraction", 1.0, True),
        ("regions.lumbar", "max_body_weight_fraction", above(1.0), False),
        ("regions.lumbar", "max_body_weight_fraction", 0.0, True),
        ("regions.lumbar", "max_body_weight_fraction", -0.0001, False),
        ("regions.lumbar", "angle_max_deg", 90.0, True),
        ("regions.lumbar", "angle_max_deg", above(90.0), False),
        ("supervisor", "staleness_s", 0.0, False),
        ("supervisor", "staleness_s", math.ulp(0.0), True),
        ("supervisor", "tracking_time_s", math.inf, False),
        ("supervisor", "heartbeat_timeout_s", True, False),
        ("duration", "total_s", {"min": 60, "max": 60}, True),
        ("duration", "total_s", {"min": 61, "max": 60}, False),
    ],
)
def test_the_limits_file_bounds_its_own_numbers(
    section: str, key: str, value: object, ok: bool
) -> None:
    data = shipped_with(section, key, value)
    if ok:
        SafetyLimits.from_dict(data, "safety.toml")
        return
    with pytest.raises(ConfigError) as info:
        SafetyLimits.from_dict(data, "safety.toml")
    assert f"safety.toml: {section}.{key}" in str(info.value)


def test_the_shipped_limits_load() -> None:
    shipped = load_limits()
    assert shipped.regions[Region.LUMBAR].first_session is not None
    assert shipped.source == "configs/safety.toml"


def test_rest_at_the_minimum_cord_tension_passes_and_below_it_is_refused() -> None:
    assert check(profile(rest_force_n=50.0)) == []
    [v] = check(profile(rest_force_n=below(50.0)))
    assert (v.field, v.limit) == ("rest_force", "at least 50.0 N") and v.blocking
    assert "below the minimum cord tension 50.0 N for lumbar traction" in v.message


def test_a_continuous_hold_at_the_minimum_cord_tension_passes_and_below_it_is_refused() -> None:
    continuous = {"mode": Mode.CONTINUOUS, "rest_force_n": 0.0, "hold_s": None, "rest_s": None}
    assert check(profile(**continuous, hold_force_n=50.0)) == []
    [v] = check(profile(**continuous, hold_force_n=below(50.0)))
    assert (v.field, v.limit) == ("hold_force", "at least 50.0 N")


# --- the limits file's reader: each rule names the field and says what is wrong --------------------


def refused(data: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        SafetyLimits.from_dict(data, "safety.toml")
    return info.value


def test_the_shipped_limits_allow_no_model_and_a_listed_model_is_exempt() -> None:
    assert load_limits().single_fault_exempt_models == frozenset()
    names = ["SIM-TX1", "x" * 64, "X", *(f"M{i}" for i in range(97))]
    loaded = SafetyLimits.from_dict(shipped_with("single_fault", "allow_models", names))
    assert loaded.single_fault_exempt_models == frozenset(names) and len(names) == 100


def test_a_limits_file_without_the_single_fault_section_exempts_no_model() -> None:
    data = shipped_with("single_fault", "allow_models", ["SIM-TX1"])
    del data["single_fault"]
    assert SafetyLimits.from_dict(data).single_fault_exempt_models == frozenset()
    data["single_fault"] = {}
    assert SafetyLimits.from_dict(data).single_fault_exempt_models == frozenset()


@pytest.mark.parametrize(
    "names",
    [
        "SIM-TX1",
        ["SIM-TX1", 7],
        [""],
        ["x" * 65],
        [f"M{i}" for i in range(101)],
    ],
)
def test_allow_models_must_be_a_list_of_up_to_100_names_of_1_to_64_characters(
    names: object,
) -> None:
    error = refused(shipped_with("single_fault", "allow_models", names))
    assert error.where == "safety.toml: single_fault.allow_models"
    assert error.message == f"{names!r} must be a list of up to 100 model names"


def test_a_single_fault_entry_that_is_not_a_table_is_refused() -> None:
    data = shipped_with("single_fault", "allow_models", [])
    data["single_fault"] = ["SIM-TX1"]
    error = refused(data)
    assert (error.where, error.message) == ("safety.toml: single_fault", "must be a table")


def test_a_missing_key_is_required_and_a_missing_section_is_named() -> None:
    data = shipped_with("ramp", "max_rate", "10 lbf/s")
    del data["ramp"]["max_rate"]
    error = refused(data)
    assert (error.where, error.message) == ("safety.toml: ramp.max_rate", "is required")
    data = shipped_with("ramp", "max_rate", "10 lbf/s")
    data["regions"]["lumbar"] = "60 kgf"
    error = refused(data)
    assert (error.where, error.message) == ("safety.toml: regions.lumbar", "section is missing")
    data = shipped_with("ramp", "max_rate", "10 lbf/s")
    data["regions"] = 5
    assert refused(data).where == "safety.toml: regions.cervical"


def test_a_force_above_2000_n_says_so_with_the_value_and_the_limit() -> None:
    error = refused(shipped_with("regions.lumbar", "max_force", "2000.5 N"))
    assert error.where == "safety.toml: regions.lumbar.max_force"
    assert error.message == "2000.5 N is above 2000 N, more than any table"
    error = refused(shipped_with("ramp", "max_rate", "10 lbf"))
    assert error.where == "safety.toml: ramp.max_rate"


@pytest.mark.parametrize(("value", "shown"), [("0.5", "'0.5'"), (True, "True"), ([1], "[1]")])
def test_a_number_that_is_not_a_number_is_refused_naming_the_value(
    value: object, shown: str
) -> None:
    error = refused(shipped_with("regions.lumbar", "angle_max_deg", value))
    assert error.where == "safety.toml: regions.lumbar.angle_max_deg"
    assert error.message == f"{shown} is not a number"


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("regions.lumbar", "angle_max_deg", math.inf, "inf is not a finite number"),
        ("regions.lumbar", "angle_max_deg", -0.5, "-0.5 is outside 0..90"),
        ("regions.lumbar", "angle_max_deg", 90.5, "90.5 is outside 0..90"),
        ("regions.cervical", "angle_min_deg", 90.5, "90.5 is outside 0..90"),
        ("supervisor", "staleness_s", 0, "0 is outside above 0..10"),
        ("supervisor", "max_stall_s", 10.5, "10.5 is outside above 0..10"),
        ("supervisor", "max_stall_s", -1, "-1 is outside above 0..10"),
    ],
)
def test_a_number_outside_its_range_names_the_rule(
    section: str, key: str, value: object, message: str
) -> None:
    error = refused(shipped_with(section, key, value))
    assert error.where == f"safety.toml: {section}.{key}"
    assert error.message == message


def test_a_number_without_an_upper_bound_says_its_rule() -> None:
    from devices.limits import _Reader

    reader = _Reader("safety.toml")
    with pytest.raises(ConfigError) as info:
        reader.number({"x": -1}, "a.x")
    assert info.value.message == "-1 is outside >= 0"
    with pytest.raises(ConfigError) as info:
        reader.number({"x": 0}, "a.x", positive=True)
    assert info.value.message == "0 is outside > 0"
    assert reader.number({"x": 0}, "a.x") == 0.0 and reader.number({"x": 7}, "a.x") == 7.0
    assert isinstance(reader.number({"x": 7}, "a.x"), float)


def test_bounds_must_be_a_table_of_min_and_max() -> None:
    error = refused(shipped_with("intermittent", "hold_s", 60))
    assert error.where == "safety.toml: intermittent.hold_s"
    assert error.message == "60 must be a table like { min = 5, max = 300 }"
    error = refused(shipped_with("intermittent", "rest_s", {"min": 5}))
    assert (error.where, error.message) == ("safety.toml: intermittent.rest_s.max", "is required")
    error = refused(shipped_with("duration", "total_s", {"min": 61.5, "max": 60}))
    assert error.message == "min 61.5 is above max 60"
    loaded = SafetyLimits.from_dict(shipped_with("intermittent", "hold_s", {"min": 7, "max": 9}))
    assert loaded.hold_s == Bounds(7.0, 9.0) and loaded.rest_s == Bounds(5.0, 300.0)


def test_each_section_of_the_file_lands_in_its_own_limit() -> None:
    data = shipped_with("ramp", "max_rate", "3 N/s")
    data["intermittent"]["min_hold_rest_gap"] = "11 N"
    data["operator"]["confirm_force"] = "123 N"
    sup = data["supervisor"]
    for i, key in enumerate(
        (
            "over_target_tolerance",
            "hard_limit_margin",
            "tracking_band",
            "channel_disagreement",
            "force_rate_allowance",
            "stuck_target_change",
        )
    ):
        sup[key] = f"{i + 1} N"
    sup.update(tracking_time_s=1.5, staleness_s=0.25, heartbeat_timeout_s=2.5, max_stall_s=0.75)
    sup["max_force_rate"] = "40 N/s"
    loaded = SafetyLimits.from_dict(data, "clinic.toml")
    assert (loaded.max_ramp_n_per_s, loaded.min_hold_rest_gap_n) == (3.0, 11.0)
    assert loaded.operator_confirm_force_n == 123.0 and loaded.source == "clinic.toml"
    assert loaded.supervisor == SupervisorLimits(
        over_target_tolerance_n=1.0,
        hard_limit_margin_n=2.0,
        tracking_band_n=3.0,
        tracking_time_s=1.5,
        staleness_s=0.25,
        heartbeat_timeout_s=2.5,
        channel_disagreement_n=4.0,
        max_force_rate_n_per_s=40.0,
        force_rate_allowance_n=5.0,
        stuck_target_change_n=6.0,
        max_stall_s=0.75,
    )


def test_each_region_reads_its_own_table() -> None:
    data = shipped_with("regions.cervical", "min_cord_tension", "7 N")
    data["regions"]["cervical"].update(
        max_force="150 N",
        max_body_weight_fraction=0.2,
        angle_min_deg=12,
        angle_max_deg=33,
        confirm_force="90 N",
    )
    cervical = SafetyLimits.from_dict(data).regions[Region.CERVICAL]
    assert cervical == RegionLimits(150.0, 0.2, 12.0, 33.0, 7.0, None, confirm_force_n=90.0)
    lumbar = SafetyLimits.from_dict(data).regions[Region.LUMBAR]
    assert lumbar.first_session is not None and lumbar.first_session.severity is Severity.BLOCK


def test_the_first_session_table_is_optional_and_its_severity_defaults_to_block() -> None:
    data = shipped_with("regions.lumbar.first_session", "cap_male", "222 N")
    data["regions"]["lumbar"]["first_session"].update(cap_female="111 N", step_per_session="3 N")
    del data["regions"]["lumbar"]["first_session"]["severity"]
    caps = SafetyLimits.from_dict(data).regions[Region.LUMBAR].first_session
    assert caps == FirstSessionCaps(111.0, 222.0, 3.0, Severity.BLOCK)
    data["regions"]["lumbar"]["first_session"]["severity"] = "warn"
    caps = SafetyLimits.from_dict(data).regions[Region.LUMBAR].first_session
    assert caps is not None and caps.severity is Severity.WARN
    data["regions"]["lumbar"]["first_session"]["severity"] = "Block"
    error = refused(data)
    assert error.where == "safety.toml: regions.lumbar.first_session.severity"
    assert error.message == "'Block' must be warn or block"
    data["regions"]["lumbar"]["first_session"] = "40 lbf"
    assert refused(data).where == "safety.toml: first_session"
    del data["regions"]["lumbar"]["first_session"]
    assert SafetyLimits.from_dict(data).regions[Region.LUMBAR].first_session is None


def test_flags_read_label_and_regions_and_refuse_anything_else() -> None:
    data = shipped_with("contraindications", "gout", {"label": "Gout", "regions": ["cervical"]})
    loaded = SafetyLimits.from_dict(data)
    assert loaded.contraindications["gout"] == Flag("gout", "Gout", frozenset({Region.CERVICAL}))
    data = shipped_with("precautions", "anxiety", {"label": "Anxiety"})
    assert SafetyLimits.from_dict(data).precautions["anxiety"].regions == frozenset()
    for entry in ("Gout", {"label": 5}, {"regions": ["lumbar"]}):
        error = refused(shipped_with("contraindications", "gout", entry))
        assert error.where == "safety.toml: contraindications.gout"
        assert error.message == 'must be a table like { label = "..." }'
    for regions in (["pelvis"], 5):
        error = refused(shipped_with("precautions", "gout", {"label": "G", "regions": regions}))
        assert error.where == "safety.toml: precautions.gout.regions"
        assert error.message == f"{regions!r} must list regions from ['cervical', 'lumbar']"


def test_an_unreadable_or_broken_limits_file_is_a_config_error(tmp_path: Any) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError) as info:
        load_limits(missing)
    assert info.value.where == str(missing)
    assert info.value.message == "cannot read safety limits: No such file or directory"
    broken = tmp_path / "broken.toml"
    broken.write_text("[ramp\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_limits(broken)
    assert info.value.where == str(broken) and info.value.message.startswith("not valid TOML: ")


def test_a_limits_file_in_utf8_with_a_non_ascii_label_loads(tmp_path: Any) -> None:
    from devices.configfiles import config_file

    text = config_file("safety.toml").read_text(encoding="utf-8")
    text += '\n[precautions.vertigo]\nlabel = "Schwindel (Gleichgewichtsstörung)"\n'
    path = tmp_path / "safety.toml"
    path.write_bytes(text.encode("utf-8"))
    loaded = load_limits(path)
    assert loaded.precautions["vertigo"].label == "Schwindel (Gleichgewichtsstörung)"
    assert loaded.source == str(path)


# --- the snapshots recorded with each session -----------------------------------------------------


def test_the_limits_snapshot_is_plain_newtons_seconds_and_sorted_lists() -> None:
    limits = replace(LIMITS, single_fault_exempt_models=frozenset({"ZX-9", "AB-1"}))
    d = limits.to_dict()
    assert d["regions"] == {
        "lumbar": {
            "max_force_n": 400.0,
            "max_body_weight_fraction": 0.5,
            "angle_min_deg": 0.0,
            "angle_max_deg": 30.0,
            "min_cord_tension_n": 50.0,
            "first_session": {
                "female_n": 200.0,
                "male_n": 250.0,
                "step_per_session_n": 25.0,
                "severity": Severity.WARN,
            },
            "confirm_force_n": None,
        },
        "cervical": {
            "max_force_n": 200.0,
            "max_body_weight_fraction": 0.25,
            "angle_min_deg": 15.0,
            "angle_max_deg": 35.0,
            "min_cord_tension_n": 20.0,
            "first_session": None,
            "confirm_force_n": None,
        },
    }
    assert d["single_fault_exempt_models"] == ["AB-1", "ZX-9"]
    assert d["contraindications"] == {
        "osteoporosis": {"label": "Osteoporosis", "regions": []},
        "pregnancy": {"label": "Pregnancy", "regions": ["lumbar"]},
    }
    assert d["precautions"] == {"claustrophobia": {"label": "Claustrophobia", "regions": []}}
    assert d["hold_s"] == {"min": 10.0, "max": 120.0} and d["operator_confirm_force_n"] == 350.0
    assert set(d) == {
        "regions",
        "max_ramp_n_per_s",
        "min_hold_rest_gap_n",
        "hold_s",
        "rest_s",
        "total_s",
        "operator_confirm_force_n",
        "supervisor",
        "contraindications",
        "precautions",
        "source",
        "single_fault_exempt_models",
    }


def test_the_patient_facts_snapshot_keeps_what_the_limits_used() -> None:
    facts = PatientFacts(
        82.5, "female", frozenset({"pregnancy", "claustrophobia"}), {"lumbar": 2, "cervical": 0}
    )
    assert facts.to_dict() == {
        "body_weight_kg": 82.5,
        "sex": "female",
        "contraindications": ["claustrophobia", "pregnancy"],
        "prior_sessions": {"lumbar": 2, "cervical": 0},
    }
    assert PatientFacts(70.0).to_dict() == {
        "body_weight_kg": 70.0,
        "sex": "unknown",
        "contraindications": [],
        "prior_sessions": None,
    }


# --- each violation exactly: field, value, limit, the sentence and its severity ------------------

W = Severity.WARN
B = Severity.BLOCK
EXACT = [
    (
        {"hold_force_n": 300.5},
        replace(PATIENT, body_weight_kg=60.0),
        ("hold_force", "300.5 N", "294.2 N", B),
        "hold_force 300.5 N is above 50% of the patient's body weight (60 kg): at most 294.2 N "
        "for lumbar traction",
    ),
    (
        {},
        replace(PATIENT, body_weight_kg=0.0),
        ("patient.body_weight_kg", "0 kg", "> 0 kg", B),
        "patient body weight 0 kg is missing or invalid; the body-weight limit cannot be checked",
    ),
    (
        {"hold_force_n": 330.0},
        replace(PATIENT, sex="male", prior_sessions={"lumbar": 3}),
        ("hold_force", "330.0 N", "325.0 N", W),
        "hold_force 330.0 N is above 325.0 N, the usual cap for lumbar session 4 of a male patient "
        "(250.0 N at first, +25.0 N per session)",
    ),
    (
        {"hold_force_n": 330.0},
        replace(PATIENT, sex="other", prior_sessions={"lumbar": 2}),
        ("hold_force", "330.0 N", "250.0 N", W),
        "hold_force 330.0 N is above 250.0 N, the usual cap for lumbar session 3 of a female or "
        "unrecorded-sex patient (200.0 N at first, +25.0 N per session)",
    ),
    (
        {"rest_force_n": 49.5},
        PATIENT,
        ("rest_force", "49.5 N", "at least 50.0 N", B),
        "rest_force 49.5 N is below the minimum cord tension 50.0 N for lumbar traction: the cord "
        "must stay taut between pulls",
    ),
    (
        {
            "mode": Mode.CONTINUOUS,
            "rest_force_n": 0.0,
            "hold_s": None,
            "rest_s": None,
            "hold_force_n": 49.5,
        },
        PATIENT,
        ("hold_force", "49.5 N", "at least 50.0 N", B),
        "hold_force 49.5 N is below the minimum cord tension 50.0 N for lumbar traction",
    ),
    (
        {"rest_force_n": 260.0},
        PATIENT,
        ("rest_force", "260.0 N", "250.0 N (hold minus 50.0 N)", B),
        "rest_force 260.0 N is only 40.0 N below hold_force 300.0 N; the gap must be at least "
        "50.0 N",
    ),
    (
        {"total_s": 1801.5, "hold_s": 10.0, "rest_s": 5.0},
        PATIENT,
        ("total_s", "1801.5 s", "60..1800 s", B),
        "total_s 1801.5 s is outside 60..1800 s",
    ),
    (
        {"angle_deg": 31.5},
        PATIENT,
        ("angle_deg", "31.5 deg", "0..30 deg", W),
        "angle_deg 31.5 deg is outside the usual lumbar range 0..30 deg",
    ),
    (
        {},
        replace(PATIENT, contraindications=frozenset({"claustrophobia"})),
        ("patient.contraindications", "claustrophobia", "precaution", W),
        "precaution: Claustrophobia (claustrophobia); monitor the patient closely during lumbar "
        "traction",
    ),
]


@pytest.mark.parametrize(
    ("changes", "patient", "expected", "message"),
    EXACT,
    ids=[
        "weight",
        "no-weight",
        "cap-male",
        "cap-other",
        "rest",
        "continuous",
        "gap",
        "total",
        "angle",
        "precaution",
    ],
)
def test_each_violation_names_field_value_limit_and_rule_exactly(
    changes: dict[str, Any],
    patient: PatientFacts,
    expected: tuple[str, str, str, Severity],
    message: str,
) -> None:
    [v] = check(profile(**changes), patient)
    assert (v.field, v.value, v.limit, v.severity) == expected
    assert v.message == message
    assert v.to_dict() == {
        "field": expected[0],
        "value": expected[1],
        "limit": expected[2],
        "message": message,
        "severity": expected[3],
    }


def test_a_stepped_rest_below_the_cord_tension_names_the_fraction() -> None:
    stepped = profile(hold_force_n=300.0, progression_steps=3, step_rest_fraction=0.4)
    [v] = check(stepped)
    assert (v.field, v.value, v.limit) == (
        "step_rest_fraction",
        "0.4",
        "stepped rests of at least 50.0 N",
    )
    assert v.message == (
        "the stepped cycles rest at 30.0 N (0.4 of the smallest step), below the minimum cord "
        "tension 50.0 N for lumbar traction; raise step_rest_fraction or use fewer steps"
    )


def test_without_saying_so_no_operator_has_confirmed_a_high_force() -> None:
    high = profile(hold_force_n=360.0)
    [v] = validate(high, PATIENT, LIMITS, DEVICE)
    assert (v.field, v.value, v.limit) == ("hold_force", "360.0 N", "350.0 N")
    assert v.message == (
        "hold_force 360.0 N is above 350.0 N: an operator must confirm it (operator_confirmed) "
        "before it is applied"
    )
    assert validate(high, PATIENT, LIMITS, DEVICE, operator_confirmed=True) == []


def test_limits_built_from_a_mapping_without_a_name_say_safety_limits() -> None:
    data = shipped_with("ramp", "max_rate", "fast")
    with pytest.raises(ConfigError) as info:
        SafetyLimits.from_dict(data)
    assert info.value.where == "safety limits: ramp.max_rate"
    assert SafetyLimits.from_dict(shipped_with("ramp", "max_rate", "10 lbf/s")).source == (
        "safety limits"
    )

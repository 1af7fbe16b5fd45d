"""Pre-start validation: one test per limit and per contraindication, each asserting the message."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from devices.contract import DeviceInfo
from devices.errors import ConfigError
from devices.limits import (
    PatientFacts,
    SafetyLimits,
    Severity,
    Violation,
    blocking,
    load_limits,
    validate,
    warnings,
)
from devices.profiles import ForceProfile, Region
from devices.units import N_PER_LBF

LIMITS = load_limits()
DEVICE = DeviceInfo("SIM-TX1", "SIM-0001", "1.4.2", rated_max_force_n=900.0)
PATIENT = PatientFacts(body_weight_kg=80.0, sex="female")

LUMBAR: dict[str, Any] = {
    "mode": "intermittent",
    "region": "lumbar",
    "hold_force": "35 lbf",
    "rest_force": "15 lbf",
    "hold_s": 60,
    "rest_s": 20,
    "total_min": 10,
    "ramp_rate": "5 lbf/s",
    "angle_deg": 10,
}
CERVICAL: dict[str, Any] = {
    **LUMBAR,
    "region": "cervical",
    "hold_force": "20 lbf",
    "rest_force": "8 lbf",
    "angle_deg": 25,
}


def check(
    changes: dict[str, Any] | None = None,
    base: dict[str, Any] = LUMBAR,
    patient: PatientFacts = PATIENT,
    device: DeviceInfo = DEVICE,
    confirmed: bool = False,
) -> list[Violation]:
    profile = ForceProfile.from_dict({**base, **(changes or {})})
    return validate(profile, patient, LIMITS, device, operator_confirmed=confirmed)


def only(violations: list[Violation]) -> Violation:
    assert len(violations) == 1, [str(v) for v in violations]
    return violations[0]


def test_sensible_profiles_pass() -> None:
    assert check() == []
    assert check(base=CERVICAL) == []


def test_above_device_rating() -> None:
    small = replace(DEVICE, rated_max_force_n=100.0)
    v = only(check(device=small))
    assert v.field == "hold_force" and v.value == "35.0 lbf" and v.limit == "22.5 lbf"
    assert v.message == "hold_force 35.0 lbf is above the rated force 22.5 lbf of SIM-TX1 SIM-0001"


def test_above_region_maximum() -> None:
    v = only(
        check(
            {"hold_force": "50 lbf", "rest_force": "20 lbf"},
            base=CERVICAL,
            patient=PatientFacts(120.0),
            confirmed=True,
        )
    )
    assert v.message == "hold_force 50.0 lbf is above the cervical maximum 40.0 lbf"
    assert (v.value, v.limit) == ("50.0 lbf", "40.0 lbf")


def test_above_body_weight_fraction() -> None:
    v = only(check(base=CERVICAL, patient=PatientFacts(30.0)))
    assert v.message == (
        "hold_force 20.0 lbf is above 25% of the patient's body weight (30 kg): at most "
        "16.5 lbf for cervical traction"
    )


def test_missing_body_weight_blocks() -> None:
    v = only(check(patient=PatientFacts(0.0)))
    assert v.field == "patient.body_weight_kg"
    assert "body-weight limit cannot be checked" in v.message


def test_ramp_too_fast() -> None:
    v = only(check({"ramp_rate": "12 lbf/s"}))
    assert v.message == "ramp_rate 12.0 lbf/s is faster than the maximum 10.0 lbf/s"


def test_rest_too_close_to_hold() -> None:
    v = only(check({"rest_force": "30 lbf"}))
    assert v.field == "rest_force"
    assert v.message == (
        "rest_force 30.0 lbf is only 5.0 lbf below hold_force 35.0 lbf; the gap must be at least "
        "10.0 lbf"
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("hold_s", 400, "hold_s 400 s is outside 5..300 s"),
        ("hold_s", 2, "hold_s 2 s is outside 5..300 s"),
        ("rest_s", 301, "rest_s 301 s is outside 5..300 s"),
    ],
)
def test_hold_and_rest_bounds(field: str, value: int, message: str) -> None:
    changes: dict[str, Any] = {field: value, "total_min": 30}
    assert only(check(changes)).message == message


@pytest.mark.parametrize(
    ("total_min", "message"),
    [(0.5, "total_s 30 s is outside 60..2700 s"), (50, "total_s 3000 s is outside 60..2700 s")],
)
def test_total_duration_bounds(total_min: float, message: str) -> None:
    changes = {"total_min": total_min, "hold_s": 10, "rest_s": 5}
    assert only(check(changes)).message == message


def test_operator_must_confirm_high_force() -> None:
    changes = {"hold_force": "65 lbf", "rest_force": "30 lbf"}
    v = only(check(changes))
    assert v.message == (
        "hold_force 65.0 lbf is above 60.0 lbf: an operator must confirm it (operator_confirmed) "
        "before it is applied"
    )
    assert check(changes, confirmed=True) == []


def test_every_violation_is_reported_at_once() -> None:
    patient = PatientFacts(20.0, contraindications=frozenset({"osteoporosis", "pregnancy"}))
    found = check(
        {
            "hold_force": "150 lbf",
            "rest_force": "145 lbf",
            "ramp_rate": "20 lbf/s",
            "total_min": 50,
        },
        patient=patient,
        device=replace(DEVICE, rated_max_force_n=500.0),
    )
    fields = [v.field for v in found]
    assert fields.count("hold_force") == 4  # rating, region, body weight, confirmation
    assert {"ramp_rate", "rest_force", "total_s", "patient.contraindications"} <= set(fields)
    assert len([v for v in found if v.field == "patient.contraindications"]) == 2


CONTRAINDICATIONS = {
    "spinal_malignancy": "Spinal malignancy",
    "cord_compression": "Spinal cord compression",
    "spinal_infection": "Spinal infection",
    "osteoporosis": "Osteoporosis",
    "acute_fracture_or_instability": "Acute fracture or spinal instability",
    "aortic_iliac_aneurysm": "Aortic or iliac aneurysm",
    "abdominal_hernia": "Abdominal hernia",
    "uncontrolled_hypertension": "Uncontrolled hypertension",
    "recent_spinal_surgery": "Recent spinal surgery",
    "acute_injury_72h": "Acute injury under 72 hours",
    "hypermobility": "Hypermobility",
    "spondylolisthesis_grade_2_plus": "Spondylolisthesis grade 2 or more",
    "vascular_compromise": "Vascular compromise",
}


@pytest.mark.parametrize(("flag", "label"), sorted(CONTRAINDICATIONS.items()))
@pytest.mark.parametrize("base", [LUMBAR, CERVICAL], ids=["lumbar", "cervical"])
def test_contraindication_blocks(flag: str, label: str, base: dict[str, Any]) -> None:
    v = only(check(base=base, patient=replace(PATIENT, contraindications=frozenset({flag}))))
    assert v.severity is Severity.BLOCK and v.field == "patient.contraindications"
    assert v.message == f"contraindication: {label} ({flag}) rules out {base['region']} traction"


def test_pregnancy_blocks_lumbar_only() -> None:
    patient = replace(PATIENT, contraindications=frozenset({"pregnancy"}))
    assert only(check(patient=patient)).message == (
        "contraindication: Pregnancy (pregnancy) rules out lumbar traction"
    )
    assert check(base=CERVICAL, patient=patient) == []


def test_inflammatory_arthritis_blocks_cervical_only() -> None:
    patient = replace(PATIENT, contraindications=frozenset({"inflammatory_arthritis"}))
    assert only(check(base=CERVICAL, patient=patient)).message == (
        "contraindication: Inflammatory spondyloarthritis or rheumatoid arthritis (upper "
        "cervical) (inflammatory_arthritis) rules out cervical traction"
    )
    assert check(patient=patient) == []


def test_shipped_list_holds_every_domain_contraindication() -> None:
    assert set(LIMITS.contraindications) == {
        *CONTRAINDICATIONS,
        "pregnancy",
        "inflammatory_arthritis",
    }


@pytest.mark.parametrize(
    ("flag", "label"),
    [
        ("claustrophobia", "Claustrophobia"),
        ("cardiac_insufficiency", "Cardiac insufficiency"),
        ("pulmonary_insufficiency", "Pulmonary insufficiency"),
        ("long_term_steroids", "Long-term steroid use"),
        ("tmj_or_dentures", "TMJ problems or dentures (cervical halter)"),
    ],
)
def test_precaution_warns_without_blocking(flag: str, label: str) -> None:
    v = only(check(base=CERVICAL, patient=replace(PATIENT, contraindications=frozenset({flag}))))
    assert v.severity is Severity.WARN and not v.blocking
    assert v.message == (
        f"precaution: {label} ({flag}); monitor the patient closely during cervical traction"
    )


def test_unknown_flag_blocks() -> None:
    v = only(check(patient=replace(PATIENT, contraindications=frozenset({"osteoporsis"}))))
    assert v.blocking and "unknown contraindication flag 'osteoporsis'" in v.message


def test_unusual_angle_warns() -> None:
    found = check({"angle_deg": 5}, base=CERVICAL)
    assert blocking(found) == []
    assert only(warnings(found)).message == (
        "angle_deg 5 deg is outside the usual cervical range 15..35 deg"
    )


def test_blocking_violations_come_before_warnings() -> None:
    patient = replace(PATIENT, contraindications=frozenset({"claustrophobia", "osteoporosis"}))
    found = check(patient=patient)
    assert [v.severity for v in found] == [Severity.BLOCK, Severity.WARN]


def test_limits_snapshot_and_hard_limit() -> None:
    snapshot = LIMITS.to_dict()
    assert snapshot["regions"]["lumbar"]["max_body_weight_fraction"] == 0.5
    assert snapshot["contraindications"]["pregnancy"]["regions"] == ["lumbar"]
    profile = ForceProfile.from_dict(LUMBAR)
    margin = LIMITS.supervisor.hard_limit_margin_n
    assert LIMITS.hard_limit_n(profile, DEVICE) == pytest.approx(profile.hold_force_n + margin)
    tiny = replace(DEVICE, rated_max_force_n=160.0)
    assert LIMITS.hard_limit_n(profile, tiny) == 160.0


def write_limits(tmp_path: Path, old: str, new: str) -> Path:
    shipped = Path(__file__).resolve().parent.parent / "configs" / "safety.toml"
    text = shipped.read_text()
    assert old in text
    path = tmp_path / "safety.toml"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ('max_force = "40 lbf"', "max_force = 40", "regions.cervical.max_force", "has no unit"),
        (
            'max_force = "40 lbf"',
            'max_force = "2000.001 N"',
            "regions.cervical.max_force",
            "above 2000 N",
        ),
        (
            'min_cord_tension = "3 lbf"',
            "min_cord_tension = 3",
            "regions.cervical.min_cord_tension",
            "has no unit",
        ),
        ('max_rate = "10 lbf/s"', 'max_rate = "10 lbf"', "ramp.max_rate", "must be written like"),
        (
            "max_body_weight_fraction = 0.25",
            "max_body_weight_fraction = 2.5",
            "regions.cervical.max_body_weight_fraction",
            "outside 0..1",
        ),
        (
            "total_s = { min = 60, max = 2700 }",
            "total_s = { min = 600, max = 60 }",
            "duration.total_s",
            "min 600 is above max 60",
        ),
        ("staleness_s = 0.5", "staleness_s = 0", "supervisor.staleness_s", "outside above 0..10"),
        (
            "tracking_time_s = 2.0",
            "tracking_time_s = nan",  # TOML allows nan; a NaN limit would never trip
            "supervisor.tracking_time_s",
            "is not a finite number",
        ),
        (
            'regions = ["lumbar"] }',
            'regions = ["pelvis"] }',
            "contraindications.pregnancy.regions",
            "must list regions",
        ),
        ("[operator]", "[operatr]", "operator", "section is missing"),
    ],
)
def test_bad_limits_file_names_the_field(
    tmp_path: Path, old: str, new: str, where: str, message: str
) -> None:
    path = write_limits(tmp_path, old, new)
    with pytest.raises(ConfigError) as info:
        load_limits(path)
    assert info.value.where == f"{path}: {where}"
    assert message in info.value.message


def test_limits_from_dict_matches_the_file() -> None:
    import tomllib

    from devices.configfiles import config_file

    data = tomllib.loads(config_file("safety.toml").read_text(encoding="utf-8"))
    assert SafetyLimits.from_dict(data) == LIMITS


# ----- first-session caps (DOMAIN.md: lumbar 40 lb women / 50 lb men, +5 lb per session [K]) ----
def facts(sex: str, prior: int | None) -> PatientFacts:
    return PatientFacts(80.0, sex, prior_sessions=None if prior is None else {"lumbar": prior})


def test_first_lumbar_session_above_the_cap_blocks_by_sex() -> None:
    v = only(
        check(
            {"hold_force": "45 lbf", "rest_force": "20 lbf"},
            patient=facts("female", 0),
            confirmed=True,
        )
    )
    assert v.severity is Severity.BLOCK and v.field == "hold_force"
    assert v.message == (
        "hold_force 45.0 lbf is above 40.0 lbf, the usual cap for lumbar session 1 of a female or "
        "unrecorded-sex patient (40.0 lbf at first, +5.0 lbf per session)"
    )
    assert (
        check(
            {"hold_force": "45 lbf", "rest_force": "20 lbf"},
            patient=facts("male", 0),
            confirmed=True,
        )
        == []
    )
    assert only(
        check({"hold_force": "55 lbf"}, patient=facts("male", 0), confirmed=True)
    ).limit == ("50.0 lbf")


def test_the_cap_rises_with_each_session_and_is_skipped_when_history_is_unknown() -> None:
    assert check({"hold_force": "55 lbf"}, patient=facts("female", 3), confirmed=True) == []
    v = only(check({"hold_force": "56 lbf"}, patient=facts("female", 3), confirmed=True))
    assert "lumbar session 4" in v.message and v.limit == "55.0 lbf"
    assert check({"hold_force": "60 lbf"}, patient=facts("female", None), confirmed=True) == []
    assert check({"hold_force": "20 lbf"}, base=CERVICAL, patient=facts("female", 0)) == []


def test_a_clinic_can_make_the_cap_a_warning() -> None:
    text = (Path(__file__).parent.parent / "configs" / "safety.toml").read_text()
    lenient = load_limits_text(text.replace('severity = "block"', 'severity = "warn"'))
    profile = ForceProfile.from_dict({**LUMBAR, "hold_force": "45 lbf", "rest_force": "20 lbf"})
    [v] = validate(profile, facts("female", 0), lenient, DEVICE, operator_confirmed=True)
    assert not v.blocking and v.severity is Severity.WARN


def test_the_cap_blocks_when_the_clinic_does_not_say() -> None:
    text = (Path(__file__).parent.parent / "configs" / "safety.toml").read_text()
    unsaid = load_limits_text(text.replace('severity = "block"', ""))
    assert unsaid.regions[Region.LUMBAR].first_session is not None
    assert unsaid.regions[Region.LUMBAR].first_session.severity is Severity.BLOCK


def test_a_bad_cap_severity_names_the_field() -> None:
    text = (Path(__file__).parent.parent / "configs" / "safety.toml").read_text()
    with pytest.raises(ConfigError, match="regions.lumbar.first_session.severity"):
        load_limits_text(text.replace('severity = "block"', 'severity = "maybe"'))


def load_limits_text(text: str) -> SafetyLimits:
    import tomllib

    return SafetyLimits.from_dict(tomllib.loads(text), "test safety.toml")


# ----- boundaries: just below, at and just above each limit ------------------------------------
def lbf(x: float) -> str:
    return f"{x!r} lbf"


@pytest.mark.parametrize(
    ("hold", "blocked"),
    [(38.0, False), (39.999, False), (40.0, False), (40.001, True)],
)
def test_cervical_maximum_is_40_lbf_inclusive(hold: float, blocked: bool) -> None:
    changes = {"hold_force": lbf(hold), "rest_force": "10 lbf"}
    found = check(changes, base=CERVICAL, patient=PatientFacts(120.0), confirmed=True)
    assert any(v.limit == "40.0 lbf" and v.blocking for v in found) is blocked, found


def test_the_cervical_maximum_is_40_lbf_in_the_shipped_limits() -> None:
    assert LIMITS.regions[Region.CERVICAL].max_force_n == pytest.approx(40 * N_PER_LBF)


@pytest.mark.parametrize(
    ("sex", "prior", "hold", "blocked"),
    [
        ("female", 0, 39.99, False),
        ("female", 0, 40.0, False),
        ("female", 0, 40.01, True),
        ("unknown", 0, 40.01, True),
        ("male", 0, 49.99, False),
        ("male", 0, 50.0, False),
        ("male", 0, 50.01, True),
        ("female", 2, 50.0, False),
        ("female", 2, 50.01, True),
    ],
)
def test_first_session_cap_blocks_just_above_and_not_at_it(
    sex: str, prior: int, hold: float, blocked: bool
) -> None:
    found = check(
        {"hold_force": lbf(hold), "rest_force": "20 lbf"},
        patient=facts(sex, prior),
        confirmed=True,
    )
    caps = [v for v in found if "usual cap" in v.message]
    assert bool(caps) is blocked, found
    assert all(v.blocking for v in caps)


@pytest.mark.parametrize(
    ("rest", "blocked"), [(0.0, True), (4.999, True), (5.0, False), (5.001, False)]
)
def test_lumbar_rest_force_keeps_the_minimum_cord_tension(rest: float, blocked: bool) -> None:
    found = check({"rest_force": lbf(rest)})
    hits = [v for v in found if "minimum cord tension" in v.message]
    assert bool(hits) is blocked, found
    if blocked:
        [v] = hits
        assert v.field == "rest_force" and v.limit == "at least 5.0 lbf" and v.blocking
        assert v.message == (
            f"rest_force {rest:.1f} lbf is below the minimum cord tension 5.0 lbf for lumbar "
            "traction: the cord must stay taut between pulls"
        )


@pytest.mark.parametrize(("rest", "blocked"), [(2.999, True), (3.0, False), (3.001, False)])
def test_cervical_rest_force_keeps_its_own_minimum_cord_tension(rest: float, blocked: bool) -> None:
    found = check({"rest_force": lbf(rest)}, base=CERVICAL)
    assert any("minimum cord tension 3.0 lbf" in v.message for v in found) is blocked, found


@pytest.mark.parametrize(
    ("fraction", "blocked"),
    # 40 lbf in 3 steps: the smallest step is 10 lbf, so half of it is exactly 5 lbf.
    [(math.nextafter(0.5, 0.0), True), (0.5, False), (math.nextafter(0.5, 1.0), False)],
)
def test_stepped_rests_keep_the_minimum_cord_tension(fraction: float, blocked: bool) -> None:
    changes = {
        "hold_force": "40 lbf",
        "progression_steps": 3,
        "step_rest_fraction": fraction,
        "total_min": 20,
    }
    found = check(changes, confirmed=True)
    hits = [v for v in found if v.field == "step_rest_fraction"]
    assert bool(hits) is blocked, found
    assert [v for v in found if v.field != "step_rest_fraction"] == []
    if blocked:
        assert "raise step_rest_fraction or use fewer steps" in hits[0].message


@pytest.mark.parametrize(("hold", "blocked"), [(4.999, True), (5.0, False)])
def test_a_continuous_hold_keeps_the_minimum_cord_tension(hold: float, blocked: bool) -> None:
    base = {
        "mode": "continuous",
        "region": "lumbar",
        "hold_force": lbf(hold),
        "total_min": 10,
        "ramp_rate": "5 lbf/s",
    }
    found = check(base=base)
    assert any("minimum cord tension" in v.message for v in found) is blocked, found


def test_rest_force_zero_is_refused_with_the_rest_of_the_violations() -> None:
    found = check({"rest_force": "0 lbf", "ramp_rate": "12 lbf/s"})
    assert [v.field for v in blocking(found)] == ["rest_force", "ramp_rate"]


def test_a_limit_force_of_exactly_2000_n_is_accepted(tmp_path: Path) -> None:
    path = write_limits(tmp_path, 'max_force = "40 lbf"', 'max_force = "2000 N"')
    assert load_limits(path).regions[Region.CERVICAL].max_force_n == 2000.0


@pytest.mark.parametrize("key", ["tracking_time_s", "staleness_s", "heartbeat_timeout_s"])
@pytest.mark.parametrize(("value", "accepted"), [(9.999, True), (10.0, True), (10.001, False)])
def test_supervisor_time_limits_are_at_most_10_s(
    tmp_path: Path, key: str, value: float, accepted: bool
) -> None:
    text = (Path(__file__).parent.parent / "configs" / "safety.toml").read_text()
    line = next(x for x in text.splitlines() if x.startswith(f"{key} = "))
    path = tmp_path / "safety.toml"
    path.write_text(text.replace(line, f"{key} = {value}"))
    if accepted:
        assert getattr(load_limits(path).supervisor, key) == value
    else:
        with pytest.raises(ConfigError, match=f"supervisor.{key}.*outside above 0..10"):
            load_limits(path)

"""The confirmation force per region (configs/safety.toml): below, at and above each region's
figure, the clinic-wide figure for a region without its own, and a refusal that names the option
that confirms and the region's threshold in the clinic's unit."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from bounds_support import steady_command_line
from cli_support import cli
from conftest_db import dispose_engines

from devices.configfiles import config_file
from devices.contract import DeviceInfo
from devices.errors import ConfigError
from devices.limits import PatientFacts, SafetyLimits, Violation, load_limits, validate
from devices.profiles import ForceProfile, Mode, Region
from devices.units import N_PER_KGF, N_PER_LBF, ForceUnit
from traction.exitcodes import Exit

LIMITS = load_limits()
DEVICE = DeviceInfo("SIM-TX1", "SIM-0001", "1.4.2", rated_max_force_n=900.0)
PATIENT = PatientFacts(body_weight_kg=120.0, sex="male")  # weight and caps never the limit here
CERVICAL_N = 25 * N_PER_LBF
LUMBAR_N = 60 * N_PER_LBF


def profile(region: Region, hold_n: float) -> ForceProfile:
    return ForceProfile(
        mode=Mode.CONTINUOUS,
        region=region,
        hold_force_n=hold_n,
        total_s=600.0,
        ramp_n_per_s=5 * N_PER_LBF,
        unit=ForceUnit.LBF,
    )


def confirmations(region: Region, hold_n: float, limits: SafetyLimits = LIMITS) -> list[Violation]:
    found = validate(profile(region, hold_n), PATIENT, limits, DEVICE, operator_confirmed=False)
    return [v for v in found if "must confirm" in v.message]


def test_the_shipped_limits_confirm_cervical_lower_than_lumbar() -> None:
    assert LIMITS.confirm_force_n(Region.CERVICAL) == pytest.approx(CERVICAL_N)
    assert LIMITS.confirm_force_n(Region.LUMBAR) == pytest.approx(LUMBAR_N)
    assert LIMITS.confirm_force_n(Region.CERVICAL) < LIMITS.confirm_force_n(Region.LUMBAR)


@pytest.mark.parametrize(
    ("region", "threshold", "shown"),
    [(Region.CERVICAL, CERVICAL_N, "25.0 lbf"), (Region.LUMBAR, LUMBAR_N, "60.0 lbf")],
)
def test_below_and_at_the_regions_figure_pass_and_above_it_needs_confirming(
    region: Region, threshold: float, shown: str
) -> None:
    assert confirmations(region, math.nextafter(threshold, 0.0)) == []
    assert confirmations(region, threshold) == []
    [v] = confirmations(region, math.nextafter(threshold, math.inf))
    assert v.blocking and (v.field, v.limit) == ("hold_force", shown)
    assert v.message.endswith(
        f"is above {shown}: an operator must confirm it (operator_confirmed) before it is applied"
    )
    confirmed = validate(
        profile(region, math.nextafter(threshold, math.inf)), PATIENT, LIMITS, DEVICE, True
    )
    assert [v for v in confirmed if "must confirm" in v.message] == []


def test_a_cervical_pull_between_the_two_figures_needs_confirming_only_for_cervical() -> None:
    between = 30 * N_PER_LBF
    assert len(confirmations(Region.CERVICAL, between)) == 1
    assert confirmations(Region.LUMBAR, between) == []


def test_a_region_without_its_own_figure_uses_the_clinic_wide_one() -> None:
    regions = {r: replace(v, confirm_force_n=None) for r, v in LIMITS.regions.items()}
    shared = replace(LIMITS, regions=regions, operator_confirm_force_n=100.0)
    assert shared.confirm_force_n(Region.CERVICAL) == 100.0
    assert confirmations(Region.CERVICAL, 100.0, shared) == []
    assert len(confirmations(Region.CERVICAL, math.nextafter(100.0, math.inf), shared)) == 1


def shipped() -> dict[str, Any]:
    return tomllib.loads(config_file("safety.toml").read_text(encoding="utf-8"))


def test_the_figure_is_optional_in_the_file_and_read_with_its_unit() -> None:
    data = shipped()
    del data["regions"]["cervical"]["confirm_force"]
    assert SafetyLimits.from_dict(data).confirm_force_n(Region.CERVICAL) == pytest.approx(
        LIMITS.operator_confirm_force_n
    )
    data["regions"]["cervical"]["confirm_force"] = "12 kgf"
    assert SafetyLimits.from_dict(data).confirm_force_n(Region.CERVICAL) == pytest.approx(
        12 * N_PER_KGF
    )


@pytest.mark.parametrize(
    ("value", "words"),
    [(25, "has no unit"), ("2000.001 N", "above 2000 N"), ("-1 lbf", "negative")],
)
def test_a_bad_figure_is_refused_naming_it(value: object, words: str) -> None:
    data = shipped()
    data["regions"]["cervical"]["confirm_force"] = value
    with pytest.raises(ConfigError) as info:
        SafetyLimits.from_dict(data, "safety.toml")
    assert "safety.toml: regions.cervical.confirm_force" in str(info.value)
    assert words in str(info.value)


# ----- the refusal at the command line ------------------------------------------------------------
@pytest.fixture
def data_dir(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("TRACTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRACTION_DATABASE_URL", db_url)
    steady_command_line(monkeypatch)
    monkeypatch.setenv("TRACTION_DISPLAY_UNIT", "kgf")  # the clinic works in kilograms
    monkeypatch.setenv("COLUMNS", "200")
    yield tmp_path
    dispose_engines()


@pytest.mark.backend("sqlite")
def test_the_refusal_names_the_option_and_the_regions_threshold_in_the_clinics_unit(
    data_dir: Path,
) -> None:
    assert cli("patients", "add", "MRN-1", "--weight", "90 kg", "--sex", "male")[0] == 0
    assert cli("clinicians", "add", "A B", "--credentials", "PT", "--discipline", "PT")[0] == 0
    run = (
        "run", "cervical-intermittent", "--patient", "MRN-1", "--clinician", "1",
        "--hold-force", "26 lbf", "--time-scale", "5",
    )  # fmt: skip
    code, out = cli(*run)
    assert code == Exit.REFUSED, out
    assert "above the cervical confirmation force 11.3 kgf" in out, out
    assert "confirm it with --confirm-force" in out and "nothing was started" in out
    at = ("--hold-force", "25 lbf", "--hold-s", "5", "--rest-s", "5", "--minutes", "2")
    code, out = cli(*run[:-4], *at, "--time-scale", "5")  # at the figure: it runs unconfirmed
    assert code == Exit.OK, out
    assert "confirmation force" not in out and "hold force 11.3 kgf" in out

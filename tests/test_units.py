import pytest

from devices.errors import ConfigError
from devices.units import ForceUnit, format_force, from_newtons, parse_force


def test_forces_parse_in_each_unit() -> None:
    assert parse_force("40 lbf") == pytest.approx(177.929, abs=1e-3)
    assert parse_force("18kgf") == pytest.approx(176.5197)
    assert parse_force("178 N") == 178.0
    assert parse_force("10 LB") == pytest.approx(44.482, abs=1e-3)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (40, "has no unit"),
        ("40", "cannot read"),
        ("40 stone", "unknown force unit"),
        ("-5 N", "negative"),
    ],
)
def test_bad_forces_name_the_field_and_rule(text: object, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_force(text, where="profile.hold_force")  # type: ignore[arg-type]
    assert "profile.hold_force" in str(info.value)
    assert fragment in str(info.value)


def test_round_trip_and_format() -> None:
    assert from_newtons(parse_force("50 lbf"), ForceUnit.LBF) == pytest.approx(50.0)
    assert format_force(parse_force("50 lbf"), ForceUnit.LBF) == "50.0 lbf"

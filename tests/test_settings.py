from pathlib import Path

import pytest

from devices.errors import ConfigError
from devices.units import ForceUnit
from traction.settings import load_settings

EXAMPLE = Path(__file__).parent.parent / "configs" / "traction.example.toml"


def test_example_settings_load() -> None:
    settings = load_settings(EXAMPLE)
    assert [t.name for t in settings.tables] == ["lumbar-1", "cervical-1", "legacy"]
    assert settings.display_unit is ForceUnit.LBF
    assert settings.bind_host == "127.0.0.1"
    assert settings.zone.key == "America/Chicago"
    assert settings.export_options().time_zone == settings.zone


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACTION_BIND_PORT", "9001")
    monkeypatch.setenv("TRACTION_DATABASE_URL", "postgresql+psycopg://db/traction")
    settings = load_settings(EXAMPLE)
    assert settings.bind_port == 9001
    assert settings.effective_database_url == "postgresql+psycopg://db/traction"


def test_defaults_run_one_simulated_table_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACTION_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert [t.url for t in settings.tables] == ["sim://lumbar"]
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'traction.db'}"


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("bind_port = 70000", ["'bind_port'", "less than or equal to 65535"]),
        ("display_unit = 'stone'", ["'display_unit'", "'stone'"]),
        ("colour = 'red'", ["'colour'", "unknown setting"]),
        (
            "[[tables]]\nname = 'a'\nurl = 'modbus+tcp://h:502?unit=999'",
            ["tables.0.url", "unit=999"],
        ),
        ("bind_port = ", ["not valid TOML"]),
        ("time_zone = 'Mars/Olympus'", ["'time_zone'", "unknown time zone 'Mars/Olympus'"]),
    ],
)
def test_bad_settings_name_the_setting_and_the_rule(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACTION_BIND_PORT", "abc")
    with pytest.raises(ConfigError, match="TRACTION_BIND_PORT"):
        load_settings(EXAMPLE)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="settings file not found"):
        load_settings(tmp_path / "nope.toml")

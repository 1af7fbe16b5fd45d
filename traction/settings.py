"""The workstation's settings: one model read from a TOML file and ``TRACTION_*`` variables.

Environment variables override the file (``TRACTION_DATABASE_URL``, ``TRACTION_BIND_PORT``, ...), so a
service manager can point one installed file at another database. Everything is checked at start-up,
and every error names the setting, where it came from, and the rule. The variables are read here
(a few lines) rather than by pydantic-settings, whose import cost more than a listing command's
query and table together.
"""

from __future__ import annotations

import json
import os
import socket
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from devices.errors import ConfigError
from devices.units import ForceUnit
from devices.urls import parse_table_url

if TYPE_CHECKING:
    from session.exports import ExportOptions

ENV_PREFIX = "TRACTION_"


class TableSetting(BaseModel):
    """One table wired to this workstation."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str

    @field_validator("url")
    @classmethod
    def _url_parses(cls, value: str) -> str:
        try:
            parse_table_url(value)
        except ConfigError as exc:
            raise ValueError(exc.message) from None
        return value


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("traction", appauthor=False))


class Settings(BaseModel):
    """Everything a workstation needs to know; the defaults run one simulated table on SQLite.

    :func:`load_settings` builds it from the file and the environment; built directly (tests),
    it takes only the values given."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; empty means SQLite in data_dir/traction.db"
    )
    display_unit: ForceUnit = ForceUnit.LBF
    workstation: str = Field(default_factory=socket.gethostname, min_length=1)
    bind_host: str = "127.0.0.1"
    bind_port: int = Field(default=8750, ge=1, le=65535)
    tls_certfile: Path | None = Field(
        default=None,
        description="PEM certificate (chain) `traction serve` presents; with tls_keyfile",
    )
    tls_keyfile: Path | None = Field(default=None, description="PEM private key of tls_certfile")
    behind_tls_proxy: bool = Field(
        default=False,
        description="Plain HTTP on a non-loopback address is allowed only when a TLS proxy on "
        "this machine is the one that listens on the network",
    )
    max_request_bytes: int = Field(
        default=1_048_576, ge=1024, le=64 * 1_048_576, description="Larger bodies get 413"
    )
    tables: list[TableSetting] = Field(
        default_factory=lambda: [TableSetting(name="table-1", url="sim://lumbar")]
    )
    token_ttl_hours: float = Field(default=12.0, gt=0, le=24 * 90)
    sim_time_scale: float = Field(
        default=1.0,
        gt=0,
        le=20,
        description="sim:// tables served by `traction serve` only; at most 20x so the table's "
        "heartbeat watchdog (10 s at most) still allows half a real second",
    )
    treatment_memory_mb: int = Field(
        default=1024,
        ge=256,
        le=65536,
        description="Address-space limit of the treatment process (the control loops of every "
        "running session); over it, a session's control loop can no longer obey its controls "
        "and releases its table, and the workstation is untouched",
    )
    place_of_service: str = Field(default="11", pattern=r"^\d{2}$")
    clinic_file: Path | None = Field(
        default=None,
        description="The clinic's 837P identifiers (billing provider NPI and EIN, submitter, "
        "receiver, payer ids); empty means the shipped example configs/clinic.toml",
    )
    time_zone: str = Field(
        default="UTC", description="IANA time zone of the clinic; it decides dates of service"
    )

    @field_validator("time_zone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as America/New_York"
            ) from None
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            given = "tls_certfile" if self.tls_certfile is not None else "tls_keyfile"
            raise ValueError(
                f"{given} is set without its pair: give both tls_certfile and tls_keyfile "
                "(`traction tls self-signed` makes a pair)"
            )
        return self

    @property
    def tls(self) -> bool:
        return self.tls_certfile is not None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def export_options(
        self, payer_key: str | None = None, year_to_date_spend: Decimal = Decimal(0)
    ) -> ExportOptions:
        """How this clinic's documents and billing lines are written."""
        from session.exports import ExportOptions  # the export stack loads only when exporting

        return ExportOptions(
            unit=self.display_unit,
            place_of_service=self.place_of_service,
            time_zone=self.zone,
            payer_key=payer_key,
            year_to_date_spend=year_to_date_spend,
            clinic_file=self.clinic_file,
        )

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'traction.db'}"

    @property
    def export_dir(self) -> Path:
        return self.data_dir / "exports"

    def table(self, name: str) -> TableSetting:
        for table in self.tables:
            if table.name == name:
                return table
        known = ", ".join(t.name for t in self.tables) or "none"
        raise ConfigError("tables", f"no table named {name!r}; configured tables: {known}")


def _describe(error: dict[str, Any], source: str) -> str:
    field = ".".join(str(part) for part in error["loc"])
    env_name = ENV_PREFIX + field.upper().replace(".", "__")
    origin = f"{env_name}" if env_name in os.environ else source
    if error["type"] == "extra_forbidden":
        return f"setting {field!r} ({origin}): unknown setting; see configs/traction.example.toml"
    return f"setting {field!r} ({origin}): {error['msg']} (got {error.get('input')!r})"


def load_settings(path: Path | None = None) -> Settings:
    """Read settings from ``path`` (or ``TRACTION_CONFIG``), then the environment.

    Raises ConfigError listing every bad setting.
    """
    if path is None and os.environ.get(ENV_PREFIX + "CONFIG"):
        path = Path(os.environ[ENV_PREFIX + "CONFIG"])
    data: dict[str, Any] = {}
    source = "default"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(str(path), "settings file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    try:
        return Settings(**{**data, **_from_environment()})
    except ValidationError as exc:
        lines = [_describe(dict(e), source) for e in exc.errors()]
        raise ConfigError("settings", "\n  " + "\n  ".join(lines)) from None


def _from_environment() -> dict[str, Any]:
    """The settings given as ``TRACTION_<NAME>`` variables (any case); a list's value is JSON."""
    given = {key.upper(): value for key, value in os.environ.items()}
    values: dict[str, Any] = {}
    for name, field in Settings.model_fields.items():
        variable = ENV_PREFIX + name.upper()
        if variable not in given:
            continue
        if get_origin(field.annotation) in (list, dict):
            try:
                values[name] = json.loads(given[variable])
            except json.JSONDecodeError as exc:
                raise ConfigError(variable, f"not valid JSON: {exc}") from None
        else:
            values[name] = given[variable]
    return values

"""Table addresses as URLs, the way SQLAlchemy opens a database.

    modbus+tcp://127.0.0.1:5020?unit=1&map=generic-v1
    modbus+rtu:///dev/ttyUSB0?baud=19200&unit=1&map=generic-v1
    line:///dev/ttyUSB1?baud=9600
    sim://lumbar            (an in-process simulator; opened by the application layer)

Parsing checks everything it can without touching a device and says which part is wrong and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from devices.errors import ConfigError

STANDARD_BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)

_ALLOWED_PARAMS: dict[str, set[str]] = {
    "modbus+tcp": {"unit", "map", "timeout", "retries"},
    "modbus+rtu": {"unit", "map", "timeout", "retries", "baud", "parity", "stopbits"},
    "line": {"baud", "timeout", "protocol"},
    "sim": {"map", "transport", "unit", "baud", "protocol", "seed"},
}


@dataclass(frozen=True)
class TableAddress:
    """A parsed table URL. ``path`` is the serial device for RTU and line tables."""

    url: str
    scheme: str
    host: str = ""
    port: int = 0
    path: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Short name for errors and logs."""
        if self.scheme == "modbus+tcp":
            return f"{self.host}:{self.port}/unit{self.params.get('unit', '1')}"
        if self.scheme == "sim":
            return f"sim:{self.host}"
        return self.path

    def int_param(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.params.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(
                f"table URL {self.url!r}", f"{name}={raw!r} is not a whole number"
            ) from None
        if not low <= value <= high:
            raise ConfigError(f"table URL {self.url!r}", f"{name}={value} is outside {low}..{high}")
        return value

    def float_param(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.params.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(
                f"table URL {self.url!r}", f"{name}={raw!r} is not a number"
            ) from None
        if not low <= value <= high:
            raise ConfigError(f"table URL {self.url!r}", f"{name}={value} is outside {low}..{high}")
        return value

    def unit(self) -> int:
        """The Modbus unit id: 1..247, and on TCP also 255 (the guide's "this device")."""
        value = self.int_param("unit", 1, -(2**31), 2**31)
        if self.scheme == "modbus+tcp" and value == 255:
            return value
        if not 1 <= value <= 247:
            also = " or 255" if self.scheme == "modbus+tcp" else " (255 only on modbus+tcp)"
            raise ConfigError(f"table URL {self.url!r}", f"unit={value} is outside 1..247{also}")
        return value

    def baud(self, default: int) -> int:
        value = self.int_param("baud", default, 1, 10_000_000)
        if value not in STANDARD_BAUDS:
            raise ConfigError(
                f"table URL {self.url!r}",
                f"baud={value} is not a standard rate; use one of {', '.join(map(str, STANDARD_BAUDS))}",
            )
        return value


def parse_table_url(url: str) -> TableAddress:
    """Parse and check a table URL; raises :class:`ConfigError` naming the part that is wrong."""
    where = f"table URL {url!r}"
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(where, "expected scheme://..., e.g. modbus+tcp://127.0.0.1:5020?unit=1")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _ALLOWED_PARAMS:
        known = ", ".join(sorted(_ALLOWED_PARAMS))
        raise ConfigError(where, f"unknown scheme {parts.scheme!r}; known schemes: {known}")
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ConfigError(
            where, f"cannot read the query {parts.query!r}; use key=value&key=value"
        ) from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key not in _ALLOWED_PARAMS[scheme]:
            allowed = ", ".join(sorted(_ALLOWED_PARAMS[scheme]))
            raise ConfigError(where, f"unknown parameter {key!r} for {scheme}; allowed: {allowed}")
        if key in params:
            raise ConfigError(where, f"parameter {key!r} given twice")
        if value == "":
            raise ConfigError(where, f"parameter {key!r} has no value")
        params[key] = value

    if scheme == "modbus+tcp":
        if not parts.hostname:
            raise ConfigError(where, "modbus+tcp needs a host, e.g. modbus+tcp://127.0.0.1:502")
        try:
            port = parts.port or 502
        except ValueError:
            raise ConfigError(where, "port must be a number in 1..65535") from None
        if parts.path not in ("", "/"):
            raise ConfigError(where, f"modbus+tcp takes no path, got {parts.path!r}")
        address = TableAddress(url, scheme, host=parts.hostname, port=port, params=params)
    elif scheme in ("modbus+rtu", "line"):
        if parts.netloc:
            raise ConfigError(
                where,
                f"{scheme} takes a serial device path after three slashes, e.g. {scheme}:///dev/ttyUSB0",
            )
        if not parts.path or parts.path == "/":
            raise ConfigError(
                where, f"{scheme} needs a serial device path, e.g. {scheme}:///dev/ttyUSB0"
            )
        address = TableAddress(url, scheme, path=parts.path, params=params)
    else:  # sim
        if not parts.hostname:
            raise ConfigError(where, "sim needs a name, e.g. sim://lumbar")
        address = TableAddress(url, scheme, host=parts.hostname, params=params)

    # Check the common numeric parameters now, so a bad URL fails before any I/O.
    if "unit" in params:
        address.unit()
    if "baud" in params:
        address.baud(19200)
    if "timeout" in params:
        address.float_param("timeout", 0.2, 0.01, 10.0)
    if "retries" in params:
        address.int_param("retries", 1, 0, 5)
    if "parity" in params and params["parity"] not in ("N", "E", "O"):
        raise ConfigError(where, f"parity={params['parity']!r} must be N, E or O")
    if "stopbits" in params and params["stopbits"] not in ("1", "2"):
        raise ConfigError(where, f"stopbits={params['stopbits']!r} must be 1 or 2")
    return address

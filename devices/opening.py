"""Open any table from its URL: the scheme picks the driver family; nothing else differs."""

from __future__ import annotations

from devices.clock import Clock
from devices.contract import Table
from devices.errors import ConfigError
from devices.urls import TableAddress, parse_table_url


def open_device(url: str | TableAddress, clock: Clock) -> Table:
    """A driver for a wired table (not yet connected). ``sim://`` is the application's to open."""
    address = parse_table_url(url) if isinstance(url, str) else url
    if address.scheme in ("modbus+tcp", "modbus+rtu"):
        from devices.modbus import open_modbus_table

        return open_modbus_table(address, clock)
    if address.scheme == "line":
        from devices.line import open_line_table

        return open_line_table(address, clock)
    raise ConfigError(
        f"table URL {address.url!r}",
        f"{address.scheme}:// names a simulator; start it with `traction simulate` or run through "
        "the traction application, which starts in-process simulators",
    )


def url_of(table: Table) -> str:
    """The URL a table opened by :func:`open_device` came from, for another process to open it
    again (a treatment process owns its table's connection)."""
    url = getattr(table, "url", "")
    if not isinstance(url, str) or not url:
        raise ConfigError(f"table {table.name}", "was not opened from a URL; pass its URL")
    return url

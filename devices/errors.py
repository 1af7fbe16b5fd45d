"""Typed errors for everything that can go wrong between the host and a table.

Every error names the table it concerns so that a log line or an event reason is enough to find the
device. Configuration errors (maps, URLs, profiles, limits) name the file or field and the rule.
"""

from __future__ import annotations


class TractionError(Exception):
    """Base of every error this product raises on purpose."""


class ConfigError(TractionError, ValueError):
    """Bad input in a config file, URL or request: says where (file/field), what, and the rule."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}")


class TableError(TractionError):
    """A failure talking to one table."""

    def __init__(self, table: str, message: str) -> None:
        self.table = table
        self.message = message
        super().__init__(f"table {table}: {message}")


class LinkLost(TableError):
    """The transport to the table is gone (socket closed, serial port vanished)."""


class TableTimeout(TableError):
    """The table did not answer within the driver's timeout."""


class DeviceRejected(TableError):
    """The table answered with an error: a Modbus exception or a line-protocol error reply."""

    def __init__(self, table: str, message: str, code: int) -> None:
        self.code = code
        super().__init__(table, f"{message} (device error code {code})")


class ProtocolError(TableError):
    """The table answered with something that is not a valid reply (bad frame, checksum, garbage)."""

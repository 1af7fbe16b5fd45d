"""Errors of the session layer: raised by several of its rooms, and caught by callers without
loading what raises them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from devices.errors import TractionError

if TYPE_CHECKING:
    from session.lockouts import TableLockout


class StoreError(Exception):
    """A request the store refuses; the message names the record, the field and the rule."""


class DocumentationError(TractionError):
    """A stored session that cannot be documented yet; the message says which and why."""


class SchemaError(Exception):
    """The database's schema does not match this version of the software; the message says what
    to do."""


class IdentityError(TractionError):
    """This process cannot claim the workstation identity; the message says what to do."""


class TableLocked(TractionError):
    """A start refused because the table is locked; the message says how to acknowledge it."""

    def __init__(self, name: str, lockouts: list[TableLockout]) -> None:
        self.name = name
        self.lockouts = lockouts
        super().__init__(self.explain(f"traction tables ack {name}"))

    def explain(self, ack_command: str) -> str:
        """The refusal in words, naming ``ack_command`` as the way to acknowledge."""
        first = self.lockouts[0]
        when = first.locked_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        session = f" in session {first.session_id}" if first.session_id else ""
        more = f" (and {len(self.lockouts) - 1} more)" if len(self.lockouts) > 1 else ""
        return (
            f"table {self.name} is locked since {when} by a {first.fault} trip{session}: "
            f"{first.reason}{more}. Nothing was started. A clinician checks the patient and "
            f'the table, then acknowledges: {ack_command} --reason "what was checked"'
            f" (or POST /tables/{self.name}/ack)"
        )

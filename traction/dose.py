"""Changing a dose's forces and times at the command line, for a plan of care or one session.

The changed dose is rebuilt as a :class:`ForceProfile`, so its structural checks run again (a rest
force above the hold is refused here), and it goes through the same safety check as any profile
before a table moves. Forces must name their unit: a lbf/N mix-up is a 4.4x over-pull.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated

import typer

from devices.profiles import ForceProfile, Problem, ProfileError
from devices.units import ForceUnit, parse_force

# typer options shared by `traction run` and `traction plans set`
HoldForce = Annotated[
    str | None, typer.Option("--hold-force", help="Hold force with its unit, e.g. '45 lbf'.")
]
RestForce = Annotated[
    str | None, typer.Option("--rest-force", help="Rest force with its unit, e.g. '20 lbf'.")
]
HoldSeconds = Annotated[
    float | None, typer.Option("--hold-s", min=0, help="Seconds of each hold (intermittent).")
]
RestSeconds = Annotated[
    float | None, typer.Option("--rest-s", min=0, help="Seconds of each rest (intermittent).")
]
Minutes = Annotated[float | None, typer.Option("--minutes", min=0, help="Total minutes.")]

_OPTION = {
    "hold_force": "--hold-force",
    "rest_force": "--rest-force",
    "hold_s": "--hold-s",
    "rest_s": "--rest-s",
    "total_s": "--minutes",
}


@dataclass(frozen=True)
class DoseChange:
    """The forces and times given on the command line (None: keep the dose's own)."""

    hold_force: str | None = None
    rest_force: str | None = None
    hold_s: float | None = None
    rest_s: float | None = None
    minutes: float | None = None

    def is_empty(self) -> bool:
        return self == DoseChange()

    def apply(self, dose: ForceProfile, unit: ForceUnit | None = None) -> ForceProfile:
        """``dose`` with these changes (shown in ``unit`` if given); every structural problem is
        a ProfileError naming the option, checked before anything is computed from it."""
        changes: dict[str, object] = {}
        if self.hold_force is not None:
            changes["hold_force_n"] = parse_force(self.hold_force, "--hold-force")
        if self.rest_force is not None:
            changes["rest_force_n"] = parse_force(self.rest_force, "--rest-force")
        if self.hold_s is not None:
            changes["hold_s"] = self.hold_s
        if self.rest_s is not None:
            changes["rest_s"] = self.rest_s
        if self.minutes is not None:
            changes["total_s"] = self.minutes * 60.0
        if unit is not None:
            changes["unit"] = unit
        if not changes:
            return dose
        try:
            return replace(dose, where="the changed dose", **changes)  # type: ignore[arg-type]
        except ProfileError as error:
            problems = [
                Problem(_OPTION[p.field], p.value, p.rule) if self._gave(p.field) else p
                for p in error.problems
            ]
            raise ProfileError("the changed dose", problems) from None

    def _gave(self, field: str) -> bool:
        """Whether the problem's field is one of the options given."""
        attribute = "minutes" if field == "total_s" else field
        return field in _OPTION and getattr(self, attribute) is not None

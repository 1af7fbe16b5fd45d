"""Counting and naming the hold cycles of an intermittent session, one wording for the live readout
and the note.

A cycle is one hold: at the full hold force, or a stepped hold of a progression or regression.
"3 cycles: 1 at 35 lbf, 2 stepped at 17.5 lbf" says both how many holds the patient had and how
many reached the prescribed force, so a reviewer never reads "1 cycle" for a session of three.
"""

from __future__ import annotations

from devices.records import Phase
from devices.units import ForceUnit, from_newtons

HOLD_PHASES = frozenset({Phase.HOLD, Phase.PROGRESSION, Phase.REGRESSION})


class CycleCount:
    """Fed every sample's phase and commanded target in order; memory is one counter per distinct
    force.

    A hold is counted at the highest target it reached, not at its first sample's: the commanded
    target moves at most the ramp rate per tick, so when ticks run late it is still climbing as
    the profile's hold begins, and the first sample would name a force the hold went on to pass.
    """

    def __init__(self) -> None:
        self.full: dict[float, int] = {}
        self.stepped: dict[float, int] = {}
        self._in_hold = False
        self._counts = self.full  # the kind of the hold in progress
        self._force = 0.0  # the force it is counted at so far

    def add(self, phase: str, target_n: float) -> None:
        if phase == Phase.PAUSED:
            return  # a pause inside a hold does not start a new cycle
        holding = phase in HOLD_PHASES
        force = round(target_n, 3)
        if holding and not self._in_hold:
            self._counts = self.full if phase == Phase.HOLD else self.stepped
            self._force = force
            self._counts[force] = self._counts.get(force, 0) + 1
        elif holding and force > self._force:
            self._move_current_hold(force)
        self._in_hold = holding

    def _move_current_hold(self, force: float) -> None:
        left = self._counts[self._force] - 1
        if left:
            self._counts[self._force] = left
        else:
            del self._counts[self._force]
        self._counts[force] = self._counts.get(force, 0) + 1
        self._force = force

    @property
    def total(self) -> int:
        return sum(self.full.values()) + sum(self.stepped.values())

    def describe(self, unit: ForceUnit) -> str:
        """E.g. "3 cycles: 1 at 35 lbf, 2 stepped at 17.5 lbf"; "0 cycles" before the first hold."""
        total = self.total
        noun = "cycle" if total == 1 else "cycles"
        parts = [
            f"{n} at {_force(f, unit)}" for f, n in sorted(self.full.items(), reverse=True)
        ] + [
            f"{n} stepped at {_force(f, unit)}"
            for f, n in sorted(self.stepped.items(), reverse=True)
        ]
        return f"{total} {noun}" + (f": {', '.join(parts)}" if parts else "")


def _force(newtons: float, unit: ForceUnit) -> str:
    return f"{round(from_newtons(newtons, unit), 1):g} {unit.value}"

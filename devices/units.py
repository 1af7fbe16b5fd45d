"""Force units: newtons inside, pounds-force or kilograms-force at the edges.

Conversions use the exact definitions (1 lbf = 4.4482216152605 N, 1 kgf = 9.80665 N).
"""

from __future__ import annotations

import enum
import re

from devices.errors import ConfigError

N_PER_LBF = 4.4482216152605
N_PER_KGF = 9.80665


class ForceUnit(enum.StrEnum):
    N = "N"
    LBF = "lbf"
    KGF = "kgf"

    @property
    def newtons(self) -> float:
        """Newtons in one of this unit."""
        return {ForceUnit.N: 1.0, ForceUnit.LBF: N_PER_LBF, ForceUnit.KGF: N_PER_KGF}[self]

    @property
    def ucum(self) -> str:
        """The UCUM code used in FHIR quantities."""
        return {ForceUnit.N: "N", ForceUnit.LBF: "[lbf_av]", ForceUnit.KGF: "kgf"}[self]


def parse_unit(text: str, where: str = "unit") -> ForceUnit:
    """Read a unit name; accepts N, lbf, lb, kgf, kg in any case."""
    key = text.strip().lower()
    aliases = {
        "n": ForceUnit.N,
        "newton": ForceUnit.N,
        "newtons": ForceUnit.N,
        "lbf": ForceUnit.LBF,
        "lb": ForceUnit.LBF,
        "lbs": ForceUnit.LBF,
        "kgf": ForceUnit.KGF,
        "kg": ForceUnit.KGF,
    }
    try:
        return aliases[key]
    except KeyError:
        raise ConfigError(where, f"unknown force unit {text!r}; use N, lbf or kgf") from None


def to_newtons(value: float, unit: ForceUnit) -> float:
    return value * unit.newtons


def from_newtons(value_n: float, unit: ForceUnit) -> float:
    return value_n / unit.newtons


_FORCE_RE = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$")


def parse_force(text: str | float | int, where: str = "force") -> float:
    """Parse ``"40 lbf"``, ``"18kgf"`` or ``"178 N"`` into newtons. A bare number is refused: the
    unit must be stated, because a lbf/N mix-up is a 4.4x over-pull."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise ConfigError(
            where, f"force {text!r} has no unit; write it like '40 lbf', '18 kgf' or '178 N'"
        )
    match = _FORCE_RE.match(text)
    if not match:
        raise ConfigError(
            where, f"cannot read force {text!r}; write it like '40 lbf', '18 kgf' or '178 N'"
        )
    value = float(match.group(1))
    if value < 0:
        raise ConfigError(where, f"force {text!r} is negative; forces are pulls and must be >= 0")
    return to_newtons(value, parse_unit(match.group(2), where))


def format_force(value_n: float, unit: ForceUnit, digits: int = 1) -> str:
    return f"{from_newtons(value_n, unit):.{digits}f} {unit.value}"

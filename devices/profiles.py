"""Force profiles: what a clinician prescribes, as data, and the target curve it implies.

A :class:`ForceProfile` is continuous (static: pull to the hold force and keep it) or intermittent
(alternate a hold at the hold force with a rest at the rest force). Intermittent profiles may climb to
the hold force in progression steps over the first cycles and descend in regression steps over the
last ones, resting at ``step_rest_fraction`` of the step's force during stepped cycles (the Triton
convention: 50%). Every change of force is a ramp at ``ramp_n_per_s``; the session ends with a ramp to
zero, and ``target_at`` is a pure function of session time, so the whole curve can be checked without
a table.

Timing rules a caller may rely on: every hold (and every stepped hold) lasts exactly ``hold_s``;
every rest lasts exactly ``rest_s`` except the last, which absorbs what is left so that the session
ends, at zero force, exactly at ``total_s``.
"""

from __future__ import annotations

import bisect
import enum
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from devices.errors import ConfigError
from devices.records import Phase
from devices.units import ForceUnit, from_newtons, parse_force, parse_unit

_EPS = 1e-9


class Mode(enum.StrEnum):
    CONTINUOUS = "continuous"
    INTERMITTENT = "intermittent"


class Region(enum.StrEnum):
    CERVICAL = "cervical"
    LUMBAR = "lumbar"


@dataclass(frozen=True)
class Segment:
    """One piece of the curve: the target moves linearly from ``start_n`` to ``end_n``."""

    t0: float
    t1: float
    phase: Phase
    start_n: float
    end_n: float
    cycle: int

    def force_at(self, t: float) -> float:
        if self.t1 - self.t0 <= _EPS:
            return self.end_n
        frac = min(1.0, max(0.0, (t - self.t0) / (self.t1 - self.t0)))
        return self.start_n + (self.end_n - self.start_n) * frac


@dataclass(frozen=True)
class ForceProfile:
    """A prescription. Forces are newtons; ``unit`` is how people want to see them."""

    mode: Mode
    region: Region
    hold_force_n: float
    total_s: float
    ramp_n_per_s: float
    rest_force_n: float = 0.0
    hold_s: float | None = None
    rest_s: float | None = None
    progression_steps: int = 0
    regression_steps: int = 0
    step_rest_fraction: float = 0.5
    angle_deg: float | None = None
    position: str | None = None
    unit: ForceUnit = ForceUnit.LBF
    name: str = ""
    where: str = field(default="profile", compare=False, repr=False)

    def __post_init__(self) -> None:
        self._check()
        _ = self.segments  # an impossible schedule is a ConfigError now, not mid-session

    # ----- the curve ------------------------------------------------------------------------
    @cached_property
    def segments(self) -> tuple[Segment, ...]:
        """The whole curve, from 0 to ``total_s``, ending at zero force."""
        if self.mode is Mode.CONTINUOUS:
            return self._continuous()
        return self._intermittent()

    @cached_property
    def _starts(self) -> list[float]:
        return [s.t0 for s in self.segments]

    def target_at(self, t: float) -> tuple[float, Phase]:
        """Target force (N) and phase at session time ``t`` (seconds since start; pure)."""
        seg = self._segment_at(t)
        if seg is None:
            return 0.0, Phase.DONE
        return seg.force_at(t), seg.phase

    def cycle_at(self, t: float) -> int:
        """The cycle (1-based) running at ``t``; the last cycle once the session is done."""
        seg = self._segment_at(t)
        return self.segments[-1].cycle if seg is None else seg.cycle

    @property
    def cycles(self) -> int:
        return self.segments[-1].cycle

    @property
    def max_force_n(self) -> float:
        return self.hold_force_n

    def _segment_at(self, t: float) -> Segment | None:
        if t >= self.total_s:
            return None
        i = bisect.bisect_right(self._starts, max(0.0, t)) - 1
        return self.segments[max(0, i)]

    def _ramp(self, t: float, f0: float, f1: float, cycle: int) -> Segment:
        phase = Phase.RAMP_UP if f1 > f0 else Phase.RAMP_DOWN
        return Segment(t, t + abs(f1 - f0) / self.ramp_n_per_s, phase, f0, f1, cycle)

    def _continuous(self) -> tuple[Segment, ...]:
        up = self._ramp(0.0, 0.0, self.hold_force_n, 1)
        down_s = self.hold_force_n / self.ramp_n_per_s
        hold_end = self.total_s - down_s
        if hold_end < up.t1:
            raise ConfigError(
                f"{self.where}: total_s",
                f"{self.total_s:g} s is shorter than the ramps to and from the hold force "
                f"({up.t1 + down_s:.1f} s at {self._rate_text()})",
            )
        hold = Segment(up.t1, hold_end, Phase.HOLD, self.hold_force_n, self.hold_force_n, 1)
        down = Segment(hold_end, self.total_s, Phase.RAMP_DOWN, self.hold_force_n, 0.0, 1)
        return (up, hold, down)

    def _cycle_forces(self, n: int) -> list[tuple[float, float, Phase]]:
        """(hold, rest, hold phase) of each of ``n`` cycles."""
        p, r, hold = self.progression_steps, self.regression_steps, self.hold_force_n
        out = []
        for k in range(n):
            if k < p:
                h = hold * (k + 1) / (p + 1)
                out.append(
                    (h, min(self.rest_force_n, self.step_rest_fraction * h), Phase.PROGRESSION)
                )
            elif k >= n - r:
                h = hold * (n - k) / (r + 1)
                out.append(
                    (h, min(self.rest_force_n, self.step_rest_fraction * h), Phase.REGRESSION)
                )
            else:
                out.append((hold, self.rest_force_n, Phase.HOLD))
        return out

    def _build(self, n: int, last_rest_s: float) -> list[Segment]:
        assert self.hold_s is not None and self.rest_s is not None
        segs: list[Segment] = []
        t, f = 0.0, 0.0
        for k, (h, rest, phase) in enumerate(self._cycle_forces(n)):
            cycle = k + 1
            for seg in (
                self._ramp(t, f, h, cycle),
                Segment(0, self.hold_s, phase, h, h, cycle),
                self._ramp(0, h, rest, cycle),
                Segment(
                    0, last_rest_s if k == n - 1 else self.rest_s, Phase.REST, rest, rest, cycle
                ),
            ):
                length = seg.t1 - seg.t0
                if length > _EPS:
                    segs.append(Segment(t, t + length, seg.phase, seg.start_n, seg.end_n, cycle))
                    t += length
            f = rest
        if f > 0.0:
            segs.append(self._ramp(t, f, 0.0, n))
        return segs

    def _length(self, n: int) -> float:
        assert self.rest_s is not None
        return self._build(n, self.rest_s)[-1].t1

    def _intermittent(self) -> tuple[Segment, ...]:
        assert self.rest_s is not None
        n_min = self.progression_steps + self.regression_steps + 1
        shortest = self._length(n_min)
        if shortest > self.total_s + _EPS:
            raise ConfigError(
                f"{self.where}: total_s",
                f"{self.total_s:g} s is too short for {self.progression_steps} progression and "
                f"{self.regression_steps} regression steps plus one full cycle: needs at least "
                f"{shortest:.1f} s",
            )
        n = n_min
        period = max(_EPS, self._length(n_min + 1) - shortest)
        n = max(n_min, n_min + int((self.total_s - shortest) / period) - 1)
        while n > n_min and self._length(n) > self.total_s + _EPS:
            n -= 1
        while self._length(n + 1) <= self.total_s + _EPS:
            n += 1
        slack = max(0.0, self.total_s - self._length(n))
        segs = self._build(n, self.rest_s + slack)
        # Float sums can leave the end a hair off total_s; the last segment ends exactly on it.
        last = segs[-1]
        segs[-1] = Segment(last.t0, self.total_s, last.phase, last.start_n, last.end_n, last.cycle)
        return tuple(segs)

    # ----- consistency (not safety: that is devices.limits) ----------------------------------
    def _rate_text(self) -> str:
        return f"{from_newtons(self.ramp_n_per_s, self.unit):g} {self.unit.value}/s"

    def _check(self) -> None:
        w = self.where

        def bad(name: str, message: str) -> ConfigError:
            return ConfigError(f"{w}: {name}", message)

        if not self.hold_force_n > 0:
            raise bad("hold_force", "must be above zero")
        if not self.ramp_n_per_s > 0:
            raise bad("ramp_rate", "must be above zero")
        if not self.total_s > 0:
            raise bad("total_s", "must be above zero")
        if not 0 < self.step_rest_fraction <= 1:
            raise bad("step_rest_fraction", f"{self.step_rest_fraction} must be in (0, 1]")
        if self.progression_steps < 0 or self.regression_steps < 0:
            raise bad("progression_steps", "steps cannot be negative")
        if self.mode is Mode.CONTINUOUS:
            if self.progression_steps or self.regression_steps:
                raise bad(
                    "progression_steps",
                    "progression and regression steps apply to intermittent profiles only",
                )
            if self.rest_force_n or self.rest_s is not None or self.hold_s is not None:
                raise bad(
                    "mode",
                    "a continuous profile holds one force for the whole session; remove "
                    "rest_force, hold_s and rest_s (or use mode = 'intermittent')",
                )
            return
        if self.hold_s is None or not self.hold_s > 0:
            raise bad("hold_s", f"an intermittent profile needs hold_s > 0, got {self.hold_s}")
        if self.rest_s is None or not self.rest_s > 0:
            raise bad("rest_s", f"an intermittent profile needs rest_s > 0, got {self.rest_s}")
        if self.rest_force_n < 0 or self.rest_force_n >= self.hold_force_n:
            raise bad(
                "rest_force",
                f"{from_newtons(self.rest_force_n, self.unit):g} {self.unit.value} must be at "
                f"least 0 and below the hold force "
                f"{from_newtons(self.hold_force_n, self.unit):g} {self.unit.value}",
            )

    # ----- data in and out ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The settings snapshot (newtons, seconds), readable back with :meth:`from_dict`."""
        return {
            "name": self.name,
            "mode": self.mode.value,
            "region": self.region.value,
            "hold_force_n": self.hold_force_n,
            "rest_force_n": self.rest_force_n,
            "hold_s": self.hold_s,
            "rest_s": self.rest_s,
            "total_s": self.total_s,
            "progression_steps": self.progression_steps,
            "regression_steps": self.regression_steps,
            "step_rest_fraction": self.step_rest_fraction,
            "ramp_n_per_s": self.ramp_n_per_s,
            "angle_deg": self.angle_deg,
            "position": self.position,
            "unit": self.unit.value,
            "cycles": self.cycles,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "profile") -> ForceProfile:
        """Build from TOML or API data. Forces are strings with a unit (``"60 lbf"``) or numbers
        under the ``*_n`` keys of :meth:`to_dict`; durations are seconds (``total_min`` also works).
        """
        return _Reader(d, where).profile()


def load_profile(path: str | Path) -> ForceProfile:
    """Read a profile from a TOML file; every bad value is a ConfigError naming file and field."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(str(path), f"cannot read profile: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(str(path), f"not valid TOML: {error}") from None
    return ForceProfile.from_dict(data, where=str(path))


_KNOWN = {
    "name",
    "mode",
    "region",
    "hold_force",
    "hold_force_n",
    "rest_force",
    "rest_force_n",
    "hold_s",
    "rest_s",
    "total_s",
    "total_min",
    "progression_steps",
    "regression_steps",
    "step_rest_fraction",
    "ramp_rate",
    "ramp_n_per_s",
    "angle_deg",
    "position",
    "unit",
    "cycles",  # written by to_dict; derived, so ignored on the way in
}


def parse_rate(text: Any, where: str) -> float:
    """``"5 lbf/s"`` -> N/s. The unit and the ``/s`` are required."""
    if not isinstance(text, str) or not text.strip().endswith("/s"):
        raise ConfigError(where, f"ramp rate {text!r} must be written like '5 lbf/s' or '20 N/s'")
    return parse_force(text.strip()[:-2], where)


class _Reader:
    """Reads one profile mapping, naming the field in every error."""

    def __init__(self, d: Mapping[str, Any], where: str) -> None:
        if not isinstance(d, Mapping):
            raise ConfigError(where, f"a profile is a table of settings, got {type(d).__name__}")
        self.d = d
        self.where = where

    def at(self, key: str) -> str:
        return f"{self.where}: {key}"

    def profile(self) -> ForceProfile:
        unknown = sorted(set(self.d) - _KNOWN)
        if unknown:
            raise ConfigError(
                self.at(unknown[0]), f"unknown setting; known settings are {sorted(_KNOWN)}"
            )
        mode = self.choice("mode", Mode)
        region = self.choice("region", Region)
        hold_n, hold_unit = self.force("hold_force", required=True)
        rest_n, _ = self.force("rest_force", required=False)
        unit = parse_unit(str(self.d["unit"]), self.at("unit")) if "unit" in self.d else hold_unit
        return ForceProfile(
            mode=mode,
            region=region,
            hold_force_n=hold_n,
            rest_force_n=rest_n,
            hold_s=self.number("hold_s", required=False),
            rest_s=self.number("rest_s", required=False),
            total_s=self.total(),
            progression_steps=self.integer("progression_steps"),
            regression_steps=self.integer("regression_steps"),
            step_rest_fraction=self.number("step_rest_fraction", required=False) or 0.5,
            ramp_n_per_s=self.rate(),
            angle_deg=self.number("angle_deg", required=False),
            position=self.text("position"),
            unit=unit,
            name=self.text("name") or "",
            where=self.where,
        )

    def choice(self, key: str, enum_type: type[Mode] | type[Region]) -> Any:
        value = self.d.get(key)
        allowed = [m.value for m in enum_type]
        if value is None:
            raise ConfigError(self.at(key), f"is required; one of {allowed}")
        try:
            return enum_type(str(value).lower())
        except ValueError:
            if key == "mode" and str(value).lower() == "static":
                return Mode.CONTINUOUS
            raise ConfigError(self.at(key), f"{value!r} is not one of {allowed}") from None

    def force(self, key: str, required: bool) -> tuple[float, ForceUnit]:
        text, newtons = self.d.get(key), self.d.get(f"{key}_n")
        if text is not None and newtons is not None:
            raise ConfigError(self.at(key), f"give {key} or {key}_n, not both")
        if text is not None:
            value = parse_force(text, self.at(key))
            unit_name = re.search(r"[A-Za-z]+", str(text))
            return value, parse_unit(unit_name.group() if unit_name else "", self.at(key))
        if newtons is not None:
            return self.number(f"{key}_n", required=True) or 0.0, ForceUnit.N
        if required:
            raise ConfigError(self.at(key), "is required, with its unit, like '60 lbf'")
        return 0.0, ForceUnit.N

    def rate(self) -> float:
        text, newtons = self.d.get("ramp_rate"), self.d.get("ramp_n_per_s")
        if text is not None and newtons is not None:
            raise ConfigError(self.at("ramp_rate"), "give ramp_rate or ramp_n_per_s, not both")
        if text is not None:
            return parse_rate(text, self.at("ramp_rate"))
        if newtons is not None:
            return self.number("ramp_n_per_s", required=True) or 0.0
        raise ConfigError(self.at("ramp_rate"), "is required, like '5 lbf/s'")

    def total(self) -> float:
        seconds, minutes = self.d.get("total_s"), self.d.get("total_min")
        if seconds is not None and minutes is not None:
            raise ConfigError(self.at("total_s"), "give total_s or total_min, not both")
        if minutes is not None:
            return (self.number("total_min", required=True) or 0.0) * 60.0
        return self.number("total_s", required=True) or 0.0

    def number(self, key: str, required: bool) -> float | None:
        value = self.d.get(key)
        if value is None:
            if required:
                raise ConfigError(self.at(key), "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(self.at(key), f"{value!r} is not a number")
        if not math.isfinite(value):
            raise ConfigError(self.at(key), f"{value!r} is not a finite number")
        if value < 0:
            raise ConfigError(self.at(key), f"{value!r} is negative")
        return float(value)

    def integer(self, key: str) -> int:
        value = self.d.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(self.at(key), f"{value!r} is not a whole number >= 0")
        return value

    def text(self, key: str) -> str | None:
        value = self.d.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ConfigError(self.at(key), f"{value!r} is not text")
        return value

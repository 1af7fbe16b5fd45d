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

Bounded work: every field has an upper bound (:data:`BOUNDS`) checked before anything is computed,
and the curve is never materialised. The full cycles between the steps are identical, so
``target_at`` finds the cycle at time t by arithmetic; a profile holds a handful of numbers whatever
its duration, and building or checking one costs the same for 1 minute as for 4 hours.
"""

from __future__ import annotations

import enum
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
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
class Bound:
    """The structural range of one field: what any profile may hold, before clinical limits
    (``configs/safety.toml``) narrow it. ``low_open`` makes the low end exclusive (``> low``)."""

    low: float
    high: float
    low_open: bool = False

    def holds(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high

    def text(self, unit: str = "") -> str:
        u = f" {unit}" if unit else ""
        low = f"above {self.low:g}{u}" if self.low_open else f"at least {self.low:g}{u}"
        return f"must be {low} and at most {self.high:g}{u}"


MAX_FORCE_N = 2000.0  # about 450 lbf: well above any traction table's rating
BOUNDS: Mapping[str, Bound] = {
    "hold_force_n": Bound(0.0, MAX_FORCE_N, low_open=True),
    "ramp_n_per_s": Bound(0.0, 500.0, low_open=True),
    "total_s": Bound(0.0, 4 * 3600.0, low_open=True),  # four hours
    "hold_s": Bound(1.0, 3600.0),  # a floor bounds the number of cycles in total_s
    "rest_s": Bound(1.0, 3600.0),
    "progression_steps": Bound(0, 20),
    "regression_steps": Bound(0, 20),
    "step_rest_fraction": Bound(0.0, 1.0, low_open=True),
    "angle_deg": Bound(0.0, 90.0),
}
"""Every numeric field's structural range, in newtons, seconds and degrees."""

MAX_SETTINGS = 40  # twice the settings a profile knows: more is not a profile
MAX_NAME_CHARS = 200
MAX_POSITION_CHARS = 64  # the session record's column


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a profile: the field as written, its value, and the rule it breaks
    (a sentence that makes sense on its own)."""

    field: str
    value: str
    rule: str

    def __str__(self) -> str:
        return f"{self.field}: {self.rule}"

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "value": self.value, "rule": self.rule}


class ProfileError(ConfigError):
    """A profile with one or more problems; ``problems`` lists every one, in field order."""

    def __init__(self, where: str, problems: list[Problem]) -> None:
        assert problems, "a ProfileError needs at least one problem"
        self.problems = problems
        if len(problems) == 1:
            super().__init__(f"{where}: {problems[0].field}", problems[0].rule)
        else:
            lines = "".join(f"\n  - {p}" for p in problems)
            super().__init__(where, f"{len(problems)} problems:{lines}")


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
class _Cycle:
    """One intermittent cycle: ramp in from ``from_n``, hold ``hold_n``, ramp to ``rest_n``, rest."""

    index: int  # 0-based
    t0: float
    from_n: float
    hold_n: float
    rest_n: float
    phase: Phase
    rest_s: float


@dataclass(frozen=True)
class _Plan:
    """The intermittent schedule as a few numbers: explicit stepped cycles around ``full``
    identical ones of length ``period`` (the first of them ramps in from ``full_from_n`` and lasts
    ``first_full_s``). The last cycle rests ``slack`` seconds longer, to end on ``total_s``."""

    n: int
    progression: tuple[_Cycle, ...]
    full: int
    full_t0: float
    full_from_n: float
    first_full_s: float
    period: float
    regression: tuple[_Cycle, ...]
    slack: float


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
        problems = check_fields(
            {name: getattr(self, name) for name in _FIELDS}, self.unit, self.mode
        )
        if problems:
            raise ProfileError(self.where, problems)
        if self.mode is Mode.INTERMITTENT:
            _ = self._plan  # an impossible schedule is refused now, not mid-session
        elif 2 * self.hold_force_n / self.ramp_n_per_s > self.total_s:
            ramps = 2 * self.hold_force_n / self.ramp_n_per_s
            rate = f"{from_newtons(self.ramp_n_per_s, self.unit):g} {self.unit.value}/s"
            raise ProfileError(
                self.where,
                [
                    Problem(
                        "total_s",
                        f"{self.total_s:g} s",
                        f"{self.total_s:g} s is shorter than the ramps to and from the hold "
                        f"force ({ramps:.1f} s at {rate})",
                    )
                ],
            )

    # ----- the curve ------------------------------------------------------------------------
    def target_at(self, t: float) -> tuple[float, Phase]:
        """Target force (N) and phase at session time ``t`` (seconds since start; pure)."""
        seg = self._segment_at(t)
        if seg is None:
            return 0.0, Phase.DONE
        return seg.force_at(t), seg.phase

    def cycle_at(self, t: float) -> int:
        """The cycle (1-based) running at ``t``; the last cycle once the session is done."""
        seg = self._segment_at(t)
        return self.cycles if seg is None else seg.cycle

    @property
    def cycles(self) -> int:
        return 1 if self.mode is Mode.CONTINUOUS else self._plan.n

    @property
    def max_force_n(self) -> float:
        return self.hold_force_n

    def lowest_rest_n(self) -> float | None:
        """The lowest force a rest holds (stepped rests included); None for continuous profiles.
        This is the least cord tension the profile keeps between its start and its end."""
        if self.mode is Mode.CONTINUOUS:
            return None
        steps = max(self.progression_steps, self.regression_steps)
        if steps == 0:
            return self.rest_force_n
        smallest_step = self.hold_force_n / (steps + 1)
        return min(self.rest_force_n, self.step_rest_fraction * smallest_step)

    def segments(self) -> Iterator[Segment]:
        """The whole curve, from 0 to ``total_s``, ending at zero force, piece by piece (for
        plots and tests: generated as it is read, never held)."""
        if self.mode is Mode.CONTINUOUS:
            yield from self._continuous()
            return
        plan = self._plan
        for k in range(plan.n):
            yield from self._pieces(self._cycle(k))

    def _segment_at(self, t: float) -> Segment | None:
        if t >= self.total_s:
            return None
        t = max(0.0, t)
        if self.mode is Mode.CONTINUOUS:
            pieces: tuple[Segment, ...] = self._continuous()
        else:
            pieces = self._pieces(self._cycle(self._cycle_index_at(t)))
        for seg in pieces:
            if t < seg.t1:
                return seg
        return pieces[-1]

    def _continuous(self) -> tuple[Segment, ...]:
        up_s = self.hold_force_n / self.ramp_n_per_s
        hold_end = self.total_s - up_s
        return (
            Segment(0.0, up_s, Phase.RAMP_UP, 0.0, self.hold_force_n, 1),
            Segment(up_s, hold_end, Phase.HOLD, self.hold_force_n, self.hold_force_n, 1),
            Segment(hold_end, self.total_s, Phase.RAMP_DOWN, self.hold_force_n, 0.0, 1),
        )

    # ----- the intermittent schedule, by arithmetic ----------------------------------------------
    def _step(self, k: int, n: int) -> tuple[float, float, Phase]:
        """(hold, rest, hold phase) of cycle ``k`` (0-based) of ``n``."""
        p, r, hold = self.progression_steps, self.regression_steps, self.hold_force_n
        if k < p:
            h = hold * (k + 1) / (p + 1)
            return h, min(self.rest_force_n, self.step_rest_fraction * h), Phase.PROGRESSION
        if k >= n - r:
            h = hold * (n - k) / (r + 1)
            return h, min(self.rest_force_n, self.step_rest_fraction * h), Phase.REGRESSION
        return hold, self.rest_force_n, Phase.HOLD

    def _length(self, c: _Cycle) -> float:
        """Seconds from the cycle's start to the end of its rest."""
        assert self.hold_s is not None
        ramps = abs(c.hold_n - c.from_n) + (c.hold_n - c.rest_n)
        return ramps / self.ramp_n_per_s + self.hold_s + c.rest_s

    def _chain(self, first: int, count: int, n: int, t0: float, from_n: float) -> list[_Cycle]:
        """``count`` consecutive cycles from index ``first``, each resting ``rest_s``."""
        assert self.rest_s is not None
        out = []
        for k in range(first, first + count):
            h, rest, phase = self._step(k, n)
            c = _Cycle(k, t0, from_n, h, rest, phase, self.rest_s)
            out.append(c)
            t0, from_n = t0 + self._length(c), rest
        return out

    @cached_property
    def _plan(self) -> _Plan:
        assert self.hold_s is not None and self.rest_s is not None
        p, r = self.progression_steps, self.regression_steps
        hold, rest, rate = self.hold_force_n, self.rest_force_n, self.ramp_n_per_s
        # Stepped cycles depend only on their index from either end: progression cycles are laid
        # out once; the full cycles between them are identical (the first ramps in from the last
        # step's rest), so the count that fits total_s is a division, not a search.
        progression = self._chain(0, p, p + r + 1, 0.0, 0.0)
        full_t0 = progression[-1].t0 + self._length(progression[-1]) if progression else 0.0
        full_from = progression[-1].rest_n if progression else 0.0
        period = 2 * (hold - rest) / rate + self.hold_s + self.rest_s
        first_full_s = (2 * hold - full_from - rest) / rate + self.hold_s + self.rest_s

        def length(full: int) -> float:
            """Session length with ``full`` full cycles, up to the end of the final ramp."""
            regression = self._chain(p + full, r, p + r + full, 0.0, rest)
            tail = sum(self._length(c) for c in regression)
            last_rest = regression[-1].rest_n if regression else rest
            return full_t0 + first_full_s + (full - 1) * period + tail + last_rest / rate

        shortest = length(1)
        if shortest > self.total_s + _EPS:
            raise ProfileError(
                self.where,
                [
                    Problem(
                        "total_s",
                        f"{self.total_s:g} s",
                        f"{self.total_s:g} s is too short for {p} progression and {r} regression "
                        f"steps plus one full cycle: needs at least {shortest:.1f} s",
                    )
                ],
            )
        # hold_s and rest_s are at least BOUNDS' minimum, so this is a few thousand at most.
        full = 1 + int((self.total_s - shortest) / period)
        while full > 1 and length(full) > self.total_s + _EPS:
            full -= 1
        while length(full + 1) <= self.total_s + _EPS:
            full += 1
        n = p + r + full
        middle_end = full_t0 + first_full_s + (full - 1) * period
        return _Plan(
            n=n,
            progression=tuple(progression),
            full=full,
            full_t0=full_t0,
            full_from_n=full_from,
            first_full_s=first_full_s,
            period=period,
            regression=tuple(self._chain(p + full, r, n, middle_end, rest)),
            slack=max(0.0, self.total_s - length(full)),
        )

    def _cycle(self, k: int) -> _Cycle:
        """Cycle ``k`` (0-based), computed from the plan in constant time."""
        assert self.rest_s is not None
        plan, p = self._plan, self.progression_steps
        if k < p:
            c = plan.progression[k]
        elif k >= p + plan.full:
            c = plan.regression[k - p - plan.full]
        elif k == p:
            c = _Cycle(k, plan.full_t0, plan.full_from_n, self.hold_force_n, self.rest_force_n,
                       Phase.HOLD, self.rest_s)  # fmt: skip
        else:
            t0 = plan.full_t0 + plan.first_full_s + (k - p - 1) * plan.period
            c = _Cycle(k, t0, self.rest_force_n, self.hold_force_n, self.rest_force_n,
                       Phase.HOLD, self.rest_s)  # fmt: skip
        if k == plan.n - 1:
            c = _Cycle(c.index, c.t0, c.from_n, c.hold_n, c.rest_n, c.phase, c.rest_s + plan.slack)
        return c

    def _cycle_index_at(self, t: float) -> int:
        plan, p = self._plan, self.progression_steps
        for c in plan.progression:
            if t < c.t0 + self._length(c):
                return c.index
        for c in reversed(plan.regression):
            if t >= c.t0:
                return c.index
        first_end = plan.full_t0 + plan.first_full_s
        if t < first_end:
            return p
        k = p + 1 + int((t - first_end) / plan.period)
        return min(k, p + plan.full - 1)

    def _pieces(self, c: _Cycle) -> tuple[Segment, ...]:
        """The cycle's ramp in, hold, ramp to rest and rest (zero-length ramps left out), and
        for the last cycle the final ramp to zero, which ends exactly at ``total_s``."""
        assert self.hold_s is not None
        rate, cycle = self.ramp_n_per_s, c.index + 1
        out: list[Segment] = []
        t = c.t0
        for length, phase, f0, f1 in (
            (
                abs(c.hold_n - c.from_n) / rate,
                Phase.RAMP_UP if c.hold_n > c.from_n else Phase.RAMP_DOWN,
                c.from_n,
                c.hold_n,
            ),
            (self.hold_s, c.phase, c.hold_n, c.hold_n),
            ((c.hold_n - c.rest_n) / rate, Phase.RAMP_DOWN, c.hold_n, c.rest_n),
            (c.rest_s, Phase.REST, c.rest_n, c.rest_n),
        ):
            if length > _EPS:
                out.append(Segment(t, t + length, phase, f0, f1, cycle))
                t += length
        if c.index == self._plan.n - 1:
            if c.rest_n > 0.0:  # however short, the curve ends at zero
                out.append(Segment(t, self.total_s, Phase.RAMP_DOWN, c.rest_n, 0.0, cycle))
            else:
                last = out[-1]
                out[-1] = Segment(
                    last.t0, self.total_s, last.phase, last.start_n, last.end_n, cycle
                )
        return tuple(out)

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
        Raises :class:`ProfileError` listing every problem, not just the first."""
        return _Reader(d, where).profile()


_FIELDS = (
    "hold_force_n",
    "rest_force_n",
    "ramp_n_per_s",
    "hold_s",
    "rest_s",
    "total_s",
    "progression_steps",
    "regression_steps",
    "step_rest_fraction",
    "angle_deg",
    "position",
    "name",
)
_WRITTEN = {  # the field as people write it, for messages
    "hold_force_n": "hold_force",
    "rest_force_n": "rest_force",
    "ramp_n_per_s": "ramp_rate",
}
_MISSING: Any = object()  # a field that could not be read (its problem is already listed)


def check_fields(values: Mapping[str, Any], unit: ForceUnit, mode: Mode | None) -> list[Problem]:
    """Every structural problem with these field values (newtons, seconds, degrees).

    A value that is ``_MISSING`` (unreadable, already reported) skips the rules that need it, so
    one bad field never hides another. Bounds come first: nothing is computed from a value until
    it is known to be in range.
    """
    out: list[Problem] = []

    def v(name: str) -> Any:
        return values.get(name, _MISSING)

    def shown(name: str, value: Any) -> str:
        if name in ("hold_force_n", "rest_force_n"):
            return f"{from_newtons(value, unit):g} {unit.value}"
        if name == "ramp_n_per_s":
            return f"{from_newtons(value, unit):g} {unit.value}/s"
        if name.endswith("_s"):
            return f"{value:g} s"
        if name == "angle_deg":
            return f"{value:g} deg"
        return _short(value)  # whole numbers of any size

    def bound_text(name: str, bound: Bound) -> str:
        if name in ("hold_force_n", "ramp_n_per_s"):
            per = "/s" if name == "ramp_n_per_s" else ""
            low = f"{from_newtons(bound.low, unit):g} {unit.value}{per}"
            high = f"{from_newtons(bound.high, unit):g} {unit.value}{per}"
            return f"must be above {low} and at most {high}"
        return bound.text("s" if name.endswith("_s") else "deg" if name == "angle_deg" else "")

    ok: dict[str, bool] = {}
    for name, bound in BOUNDS.items():
        value = v(name)
        ok[name] = value is not _MISSING and value is not None
        if not ok[name]:
            continue
        if not bound.holds(value):
            ok[name] = False
            written = _WRITTEN.get(name, name)
            text = shown(name, value)
            out.append(Problem(written, text, f"{text} {bound_text(name, bound)}"))
    for name, limit in (("name", MAX_NAME_CHARS), ("position", MAX_POSITION_CHARS)):
        text = v(name)
        if isinstance(text, str) and len(text) > limit:
            out.append(
                Problem(
                    name, f"{len(text)} characters", f"is {len(text)} characters; at most {limit}"
                )
            )

    if mode is Mode.CONTINUOUS:
        for steps in ("progression_steps", "regression_steps"):
            if ok[steps] and v(steps):
                out.append(
                    Problem(
                        steps,
                        f"{v(steps)}",
                        "progression and regression steps apply to intermittent profiles only",
                    )
                )
        given = [
            name
            for name in ("rest_force_n", "hold_s", "rest_s")
            if v(name) not in (None, _MISSING, 0.0)
        ]
        if given:
            out.append(
                Problem(
                    "mode",
                    "continuous",
                    "a continuous profile holds one force for the whole session; remove "
                    f"{', '.join(_WRITTEN.get(g, g) for g in given)} (or use mode = 'intermittent')",
                )
            )
    elif mode is Mode.INTERMITTENT:
        for name in ("hold_s", "rest_s"):
            if v(name) is None:
                out.append(
                    Problem(name, "missing", f"an intermittent profile needs {name} > 0, got None")
                )
        rest = v("rest_force_n")
        if rest is not _MISSING and ok["hold_force_n"]:
            hold = v("hold_force_n")
            if not 0 <= rest < hold:
                out.append(
                    Problem(
                        "rest_force",
                        shown("rest_force_n", rest),
                        f"{shown('rest_force_n', rest)} must be at least 0 and below the hold "
                        f"force {shown('hold_force_n', hold)}",
                    )
                )
    return out


def load_profile(path: str | Path) -> ForceProfile:
    """Read a profile from a TOML file; every bad value is listed, naming file and field."""
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
    """Reads one profile mapping, collecting every problem (field, value, rule) before raising."""

    def __init__(self, d: Mapping[str, Any], where: str) -> None:
        if not isinstance(d, Mapping):
            raise ConfigError(where, f"a profile is a table of settings, got {type(d).__name__}")
        self.d = d
        self.where = where
        self.problems: list[Problem] = []

    def problem(self, key: str, value: Any, rule: str) -> Any:
        self.problems.append(Problem(key, _short(value), rule))
        return _MISSING

    def profile(self) -> ForceProfile:
        if len(self.d) > MAX_SETTINGS:  # bound the work before looking at any key
            self.problem(
                "profile",
                f"{len(self.d)} settings",
                f"has {len(self.d)} settings; a profile has at most {MAX_SETTINGS} "
                f"(known settings are {sorted(_KNOWN)})",
            )
            raise ProfileError(self.where, self.problems)
        for key in sorted(set(self.d) - _KNOWN, key=str):
            self.problem(
                _cut(str(key)),
                self.d[key],
                f"unknown setting; known settings are {sorted(_KNOWN)}",
            )
        mode = self.choice("mode", Mode)
        region = self.choice("region", Region)
        hold_n, hold_unit = self.force("hold_force", required=True)
        rest_n, _ = self.force("rest_force", required=False)
        unit = hold_unit if hold_unit is not _MISSING else ForceUnit.N
        if "unit" in self.d:
            try:
                unit = parse_unit(str(self.d["unit"]), "unit")
            except ConfigError as exc:
                self.problem("unit", self.d["unit"], exc.message)
        values = {
            "hold_force_n": hold_n,
            "rest_force_n": rest_n,
            "hold_s": self.number("hold_s", required=False),
            "rest_s": self.number("rest_s", required=False),
            "total_s": self.total(),
            "progression_steps": self.integer("progression_steps"),
            "regression_steps": self.integer("regression_steps"),
            "step_rest_fraction": self.number("step_rest_fraction", required=False),
            "ramp_n_per_s": self.rate(),
            "angle_deg": self.number("angle_deg", required=False),
            "position": self.text("position"),
            "name": self.text("name"),
        }
        if values["step_rest_fraction"] is None:
            values["step_rest_fraction"] = 0.5
        self.problems += check_fields(values, unit, None if mode is _MISSING else mode)
        if self.problems:
            raise ProfileError(self.where, self.problems)
        return ForceProfile(
            mode=mode,
            region=region,
            unit=unit,
            where=self.where,
            **{k: v for k, v in values.items() if k != "name"},
            name=values["name"] or "",
        )

    def choice(self, key: str, enum_type: type[Mode] | type[Region]) -> Any:
        value = self.d.get(key)
        allowed = [m.value for m in enum_type]
        if value is None:
            return self.problem(key, "missing", f"is required; one of {allowed}")
        try:
            return enum_type(str(value).lower())
        except ValueError:
            if key == "mode" and str(value).lower() == "static":
                return Mode.CONTINUOUS
            return self.problem(key, value, f"{_short(value)} is not one of {allowed}")

    def force(self, key: str, required: bool) -> tuple[Any, Any]:
        text, newtons = self.d.get(key), self.d.get(f"{key}_n")
        if text is not None and newtons is not None:
            return self.problem(key, text, f"give {key} or {key}_n, not both"), _MISSING
        if text is not None:
            try:
                value = parse_force(text, key)
                unit_name = re.search(r"[A-Za-z]+", str(text))
                return value, parse_unit(unit_name.group() if unit_name else "", key)
            except ConfigError as exc:
                return self.problem(key, text, exc.message), _MISSING
        if newtons is not None:
            return self.number(f"{key}_n", required=True), ForceUnit.N
        if required:
            return self.problem(
                key, "missing", "is required, with its unit, like '60 lbf'"
            ), _MISSING
        return 0.0, _MISSING

    def rate(self) -> Any:
        text, newtons = self.d.get("ramp_rate"), self.d.get("ramp_n_per_s")
        if text is not None and newtons is not None:
            return self.problem("ramp_rate", text, "give ramp_rate or ramp_n_per_s, not both")
        if text is not None:
            try:
                return parse_rate(text, "ramp_rate")
            except ConfigError as exc:
                return self.problem("ramp_rate", text, exc.message)
        if newtons is not None:
            return self.number("ramp_n_per_s", required=True)
        return self.problem("ramp_rate", "missing", "is required, like '5 lbf/s'")

    def total(self) -> Any:
        seconds, minutes = self.d.get("total_s"), self.d.get("total_min")
        if seconds is not None and minutes is not None:
            return self.problem("total_s", seconds, "give total_s or total_min, not both")
        if minutes is not None:
            value = self.number("total_min", required=True)
            if value is _MISSING:
                return value
            bound = BOUNDS["total_s"]
            if not bound.holds(value * 60.0):  # named as written, in minutes
                low, high = bound.low / 60.0, bound.high / 60.0
                return self.problem(
                    "total_min", value, f"must be above {low:g} min and at most {high:g} min"
                )
            return value * 60.0
        return self.number("total_s", required=True)

    def number(self, key: str, required: bool) -> Any:
        value = self.d.get(key)
        if value is None:
            return self.problem(key, "missing", "is required") if required else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return self.problem(key, value, f"{_short(value)} is not a number")
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            return self.problem(key, value, f"{_short(value)} is far too large")
        if not math.isfinite(number):
            return self.problem(key, value, f"{value!r} is not a finite number")
        return number

    def integer(self, key: str) -> Any:
        value = self.d.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return self.problem(key, value, f"{_short(value)} is not a whole number >= 0")
        return value

    def text(self, key: str) -> Any:
        value = self.d.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            return self.problem(key, value, f"{_short(value)} is not text")
        return value


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _short(value: Any, limit: int = 60) -> str:
    """A value as it may be shown in a message: repr, cut short (an API body may be huge)."""
    try:
        text = value if isinstance(value, str) and value == "missing" else repr(value)
    except ValueError:  # an integer with more digits than Python will print
        return "(a number too long to show)"
    return _cut(text, limit)

"""Safety limits and the check before a session starts.

:func:`validate` looks at a profile, the facts about the patient that limits depend on, the limits
from ``configs/safety.toml`` and the table's identity, and returns *every* violation at once, each
naming the field, the value (in the profile's unit) and the limit. Blocking violations stop a session
from starting; warnings (precautions, unusual angles) are shown and recorded but do not block.
"""

from __future__ import annotations

import enum
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devices.configfiles import config_file
from devices.contract import DeviceInfo
from devices.errors import ConfigError
from devices.profiles import MAX_FORCE_N, ForceProfile, Mode, Region, parse_rate
from devices.units import N_PER_KGF, N_PER_LBF, format_force, parse_force

MAX_SUPERVISOR_S = 10.0  # the longest any supervisor time limit may be (a table's watchdog range)


@dataclass(frozen=True)
class Bounds:
    """An inclusive range of seconds."""

    min: float
    max: float

    def __contains__(self, value: float) -> bool:
        return self.min <= value <= self.max

    def text(self) -> str:
        return f"{self.min:g}..{self.max:g} s"


@dataclass(frozen=True)
class FirstSessionCaps:
    """A starting cap that rises with each session of the region (DOMAIN.md: lumbar first
    sessions 40 lb for women, 50 lb for men, about 5 lb more per session [K]). Patients of
    unknown or other sex get the lower cap."""

    female_n: float
    male_n: float
    step_per_session_n: float
    severity: Severity

    def cap_n(self, sex: str, prior_sessions: int) -> float:
        base = self.male_n if sex == "male" else self.female_n
        return base + self.step_per_session_n * prior_sessions


@dataclass(frozen=True)
class RegionLimits:
    max_force_n: float
    max_body_weight_fraction: float
    angle_min_deg: float
    angle_max_deg: float
    min_cord_tension_n: float
    first_session: FirstSessionCaps | None = None
    # An operator confirms a hold force above this; None: the clinic-wide [operator] figure.
    confirm_force_n: float | None = None


@dataclass(frozen=True)
class SupervisorLimits:
    """What the supervisor trips on while a session runs (session-clock seconds).

    The single-fault checks have defaults (the shipped safety.toml's figures) so a limits object
    built in code for one check need not spell out the others.
    """

    over_target_tolerance_n: float
    hard_limit_margin_n: float
    tracking_band_n: float
    tracking_time_s: float
    staleness_s: float
    heartbeat_timeout_s: float
    channel_disagreement_n: float = 5 * N_PER_LBF
    max_force_rate_n_per_s: float = 100 * N_PER_LBF
    force_rate_allowance_n: float = 3 * N_PER_LBF
    stuck_target_change_n: float = 2 * N_PER_LBF
    max_stall_s: float = 0.9


@dataclass(frozen=True)
class Flag:
    """A contraindication or precaution, and the regions it concerns (empty: all)."""

    key: str
    label: str
    regions: frozenset[Region] = frozenset()

    def applies_to(self, region: Region) -> bool:
        return not self.regions or region in self.regions


@dataclass(frozen=True)
class SafetyLimits:
    regions: Mapping[Region, RegionLimits]
    max_ramp_n_per_s: float
    min_hold_rest_gap_n: float
    hold_s: Bounds
    rest_s: Bounds
    total_s: Bounds
    operator_confirm_force_n: float
    supervisor: SupervisorLimits
    contraindications: Mapping[str, Flag]
    precautions: Mapping[str, Flag]
    source: str = field(default="", compare=False)
    # Table models allowed to treat without the single-fault features (every start warns).
    single_fault_exempt_models: frozenset[str] = frozenset()

    def hard_limit_n(self, profile: ForceProfile, device: DeviceInfo) -> float:
        """The measured force the supervisor never allows for this profile on this table."""
        return min(
            device.rated_max_force_n, profile.max_force_n + self.supervisor.hard_limit_margin_n
        )

    def confirm_force_n(self, region: Region) -> float:
        """The hold force above which an operator must confirm, for ``region`` (its own figure,
        else the clinic-wide one): a cervical pull needs confirming well below a lumbar one."""
        own = self.regions[region].confirm_force_n
        return self.operator_confirm_force_n if own is None else own

    def to_dict(self) -> dict[str, Any]:
        """For the settings snapshot (newtons, seconds)."""
        d = asdict(self)
        d["regions"] = {r.value: asdict(v) for r, v in self.regions.items()}
        d["single_fault_exempt_models"] = sorted(self.single_fault_exempt_models)
        for group in ("contraindications", "precautions"):
            d[group] = {
                k: {"label": f.label, "regions": sorted(r.value for r in f.regions)}
                for k, f in getattr(self, group).items()
            }
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "safety limits") -> SafetyLimits:
        r = _Reader(where)
        regions = {}
        for region in Region:
            rd = r.table(d, f"regions.{region.value}")
            regions[region] = RegionLimits(
                max_force_n=r.force(rd, f"regions.{region.value}.max_force"),
                max_body_weight_fraction=r.number(
                    rd, f"regions.{region.value}.max_body_weight_fraction", upper=1.0
                ),
                angle_min_deg=r.number(rd, f"regions.{region.value}.angle_min_deg", upper=90.0),
                angle_max_deg=r.number(rd, f"regions.{region.value}.angle_max_deg", upper=90.0),
                min_cord_tension_n=r.force(rd, f"regions.{region.value}.min_cord_tension"),
                first_session=r.first_session(rd, f"regions.{region.value}.first_session"),
                confirm_force_n=r.optional_force(rd, f"regions.{region.value}.confirm_force"),
            )
        sup = r.table(d, "supervisor")
        return cls(
            regions=regions,
            max_ramp_n_per_s=r.rate(r.table(d, "ramp"), "ramp.max_rate"),
            min_hold_rest_gap_n=r.force(
                r.table(d, "intermittent"), "intermittent.min_hold_rest_gap"
            ),
            hold_s=r.bounds(r.table(d, "intermittent"), "intermittent.hold_s"),
            rest_s=r.bounds(r.table(d, "intermittent"), "intermittent.rest_s"),
            total_s=r.bounds(r.table(d, "duration"), "duration.total_s"),
            operator_confirm_force_n=r.force(r.table(d, "operator"), "operator.confirm_force"),
            supervisor=SupervisorLimits(
                over_target_tolerance_n=r.force(sup, "supervisor.over_target_tolerance"),
                hard_limit_margin_n=r.force(sup, "supervisor.hard_limit_margin"),
                tracking_band_n=r.force(sup, "supervisor.tracking_band"),
                # A time limit of hours would never trip: each is at most MAX_SUPERVISOR_S.
                tracking_time_s=r.number(
                    sup, "supervisor.tracking_time_s", upper=MAX_SUPERVISOR_S, positive=True
                ),
                staleness_s=r.number(
                    sup, "supervisor.staleness_s", upper=MAX_SUPERVISOR_S, positive=True
                ),
                heartbeat_timeout_s=r.number(
                    sup, "supervisor.heartbeat_timeout_s", upper=MAX_SUPERVISOR_S, positive=True
                ),
                channel_disagreement_n=r.force(sup, "supervisor.channel_disagreement"),
                max_force_rate_n_per_s=r.rate(sup, "supervisor.max_force_rate"),
                force_rate_allowance_n=r.force(sup, "supervisor.force_rate_allowance"),
                stuck_target_change_n=r.force(sup, "supervisor.stuck_target_change"),
                max_stall_s=r.number(
                    sup, "supervisor.max_stall_s", upper=MAX_SUPERVISOR_S, positive=True
                ),
            ),
            contraindications=r.flags(d, "contraindications"),
            precautions=r.flags(d, "precautions"),
            source=where,
            single_fault_exempt_models=r.models(d, "single_fault.allow_models"),
        )


def load_limits(path: str | Path | None = None) -> SafetyLimits:
    """Read safety limits from ``path`` (default: the shipped ``configs/safety.toml``)."""
    source = config_file("safety.toml") if path is None else Path(path)
    where = str(path) if path is not None else "configs/safety.toml"
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(where, f"cannot read safety limits: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(where, f"not valid TOML: {error}") from None
    return SafetyLimits.from_dict(data, where)


class _Reader:
    """Reads the limits file's values, each error naming the file and the dotted key."""

    def __init__(self, where: str) -> None:
        self.where = where

    def err(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where}: {key}", message)

    def table(self, d: Mapping[str, Any], dotted: str) -> Mapping[str, Any]:
        node: Any = d
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or not isinstance(node.get(part), Mapping):
                raise self.err(dotted, "section is missing")
            node = node[part]
        return node

    def value(self, d: Mapping[str, Any], dotted: str) -> Any:
        key = dotted.rsplit(".", 1)[-1]
        if key not in d:
            raise self.err(dotted, "is required")
        return d[key]

    def force(self, d: Mapping[str, Any], dotted: str) -> float:
        value = parse_force(self.value(d, dotted), f"{self.where}: {dotted}")
        if value > MAX_FORCE_N:
            raise self.err(dotted, f"{value:g} N is above {MAX_FORCE_N:g} N, more than any table")
        return value

    def optional_force(self, d: Mapping[str, Any], dotted: str) -> float | None:
        return None if dotted.rsplit(".", 1)[-1] not in d else self.force(d, dotted)

    def rate(self, d: Mapping[str, Any], dotted: str) -> float:
        return parse_rate(self.value(d, dotted), f"{self.where}: {dotted}")

    def number(
        self, d: Mapping[str, Any], dotted: str, upper: float | None = None, positive: bool = False
    ) -> float:
        v = self.value(d, dotted)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.err(dotted, f"{v!r} is not a number")
        if not math.isfinite(v):  # a NaN limit would compare false and never trip
            raise self.err(dotted, f"{v!r} is not a finite number")
        if v < 0 or (positive and v == 0) or (upper is not None and v > upper):
            low = "above 0" if positive else "0"
            rule = f"{low}..{upper:g}" if upper is not None else ("> 0" if positive else ">= 0")
            raise self.err(dotted, f"{v!r} is outside {rule}")
        return float(v)

    def first_session(self, d: Mapping[str, Any], dotted: str) -> FirstSessionCaps | None:
        """The optional ``first_session`` table of a region."""
        if "first_session" not in d:
            return None
        t = self.table(d, "first_session")
        severity = t.get("severity", "block")
        if severity not in ("warn", "block"):
            raise self.err(f"{dotted}.severity", f"{severity!r} must be warn or block")
        return FirstSessionCaps(
            female_n=self.force(t, f"{dotted}.cap_female"),
            male_n=self.force(t, f"{dotted}.cap_male"),
            step_per_session_n=self.force(t, f"{dotted}.step_per_session"),
            severity=Severity(severity),
        )

    def bounds(self, d: Mapping[str, Any], dotted: str) -> Bounds:
        v = self.value(d, dotted)
        if not isinstance(v, Mapping):
            raise self.err(dotted, f"{v!r} must be a table like {{ min = 5, max = 300 }}")
        low = self.number(v, f"{dotted}.min")
        high = self.number(v, f"{dotted}.max")
        if low > high:
            raise self.err(dotted, f"min {low:g} is above max {high:g}")
        return Bounds(low, high)

    def models(self, d: Mapping[str, Any], dotted: str) -> frozenset[str]:
        """An optional list of table model names (at most 100, each 1..64 characters)."""
        section, key = dotted.split(".")
        node = d.get(section, {})
        if not isinstance(node, Mapping):
            raise self.err(section, "must be a table")
        names = node.get(key, [])
        if (
            not isinstance(names, list)
            or len(names) > 100
            or not all(isinstance(n, str) and 0 < len(n) <= 64 for n in names)
        ):
            raise self.err(dotted, f"{names!r} must be a list of up to 100 model names")
        return frozenset(names)

    def flags(self, d: Mapping[str, Any], dotted: str) -> dict[str, Flag]:
        out = {}
        for key, entry in self.table(d, dotted).items():
            if not isinstance(entry, Mapping) or not isinstance(entry.get("label"), str):
                raise self.err(f"{dotted}.{key}", 'must be a table like { label = "..." }')
            regions = entry.get("regions", [])
            try:
                parsed = frozenset(Region(r) for r in regions)
            except (ValueError, TypeError):
                raise self.err(
                    f"{dotted}.{key}.regions",
                    f"{regions!r} must list regions from {[r.value for r in Region]}",
                ) from None
            out[key] = Flag(key, entry["label"], parsed)
        return out


# ----- the patient ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PatientFacts:
    """Only what the limits depend on: devices/ knows no patients, just these facts."""

    body_weight_kg: float
    sex: str = "unknown"
    contraindications: frozenset[str] = frozenset()
    # Sessions already given, by region; None when unknown (the first-session cap is then not
    # checked, and the caller must say so).
    prior_sessions: Mapping[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "body_weight_kg": self.body_weight_kg,
            "sex": self.sex,
            "contraindications": sorted(self.contraindications),
            "prior_sessions": dict(self.prior_sessions)
            if self.prior_sessions is not None
            else None,
        }


# ----- validation -------------------------------------------------------------------------------
class Severity(enum.StrEnum):
    BLOCK = "block"
    WARN = "warn"


@dataclass(frozen=True)
class Violation:
    """One broken rule: which field, its value, the limit, and a sentence saying so."""

    field: str
    value: str
    limit: str
    message: str
    severity: Severity = Severity.BLOCK

    @property
    def blocking(self) -> bool:
        return self.severity is Severity.BLOCK

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def blocking(violations: Iterable[Violation]) -> list[Violation]:
    return [v for v in violations if v.blocking]


def warnings(violations: Iterable[Violation]) -> list[Violation]:
    return [v for v in violations if not v.blocking]


def validate(
    profile: ForceProfile,
    patient: PatientFacts,
    limits: SafetyLimits,
    device: DeviceInfo,
    operator_confirmed: bool = False,
) -> list[Violation]:
    """Every violation of ``limits`` by ``profile`` for ``patient`` on ``device``: blocking first."""
    out: list[Violation] = []
    unit = profile.unit

    def f(n: float) -> str:
        return format_force(n, unit)

    def rate(n: float) -> str:
        return f"{format_force(n, unit)}/s"

    def add(
        name: str, value: str, limit: str, message: str, sev: Severity = Severity.BLOCK
    ) -> None:
        out.append(Violation(name, value, limit, message, sev))

    region = limits.regions[profile.region]
    hold = profile.hold_force_n
    if hold > device.rated_max_force_n:
        add(
            "hold_force",
            f(hold),
            f(device.rated_max_force_n),
            f"hold_force {f(hold)} is above the rated force {f(device.rated_max_force_n)} of "
            f"{device.model} {device.serial_number}",
        )
    if hold > region.max_force_n:
        add(
            "hold_force",
            f(hold),
            f(region.max_force_n),
            f"hold_force {f(hold)} is above the {profile.region.value} maximum "
            f"{f(region.max_force_n)}",
        )
    if not patient.body_weight_kg > 0:
        add(
            "patient.body_weight_kg",
            f"{patient.body_weight_kg:g} kg",
            "> 0 kg",
            f"patient body weight {patient.body_weight_kg:g} kg is missing or invalid; "
            "the body-weight limit cannot be checked",
        )
    else:
        frac = region.max_body_weight_fraction
        by_weight = frac * patient.body_weight_kg * N_PER_KGF
        if hold > by_weight:
            add(
                "hold_force",
                f(hold),
                f(by_weight),
                f"hold_force {f(hold)} is above {frac:.0%} of the patient's body weight "
                f"({patient.body_weight_kg:g} kg): at most {f(by_weight)} for "
                f"{profile.region.value} traction",
            )
    caps = region.first_session
    if caps is not None and patient.prior_sessions is not None:
        prior = patient.prior_sessions.get(profile.region.value, 0)
        cap = caps.cap_n(patient.sex, prior)
        if hold > cap:
            add(
                "hold_force",
                f(hold),
                f(cap),
                f"hold_force {f(hold)} is above {f(cap)}, the usual cap for {profile.region.value} "
                f"session {prior + 1} of a {patient.sex if patient.sex == 'male' else 'female or unrecorded-sex'} "
                f"patient ({f(caps.cap_n(patient.sex, 0))} at first, +{f(caps.step_per_session_n)} "
                "per session)",
                caps.severity,
            )
    lowest = profile.lowest_rest_n()
    least = region.min_cord_tension_n
    if lowest is None and hold < least:
        add(
            "hold_force",
            f(hold),
            f"at least {f(least)}",
            f"hold_force {f(hold)} is below the minimum cord tension {f(least)} for "
            f"{profile.region.value} traction",
        )
    elif lowest is not None and profile.rest_force_n < least:
        add(
            "rest_force",
            f(profile.rest_force_n),
            f"at least {f(least)}",
            f"rest_force {f(profile.rest_force_n)} is below the minimum cord tension {f(least)} "
            f"for {profile.region.value} traction: the cord must stay taut between pulls",
        )
    elif lowest is not None and lowest < least:
        add(
            "step_rest_fraction",
            f"{profile.step_rest_fraction:g}",
            f"stepped rests of at least {f(least)}",
            f"the stepped cycles rest at {f(lowest)} ({profile.step_rest_fraction:g} of the "
            f"smallest step), below the minimum cord tension {f(least)} for "
            f"{profile.region.value} traction; raise step_rest_fraction or use fewer steps",
        )
    if profile.ramp_n_per_s > limits.max_ramp_n_per_s:
        add(
            "ramp_rate",
            rate(profile.ramp_n_per_s),
            rate(limits.max_ramp_n_per_s),
            f"ramp_rate {rate(profile.ramp_n_per_s)} is faster than the maximum "
            f"{rate(limits.max_ramp_n_per_s)}",
        )
    if profile.mode is Mode.INTERMITTENT:
        gap = hold - profile.rest_force_n
        if gap < limits.min_hold_rest_gap_n:
            add(
                "rest_force",
                f(profile.rest_force_n),
                f"{f(hold - limits.min_hold_rest_gap_n)} (hold minus {f(limits.min_hold_rest_gap_n)})",
                f"rest_force {f(profile.rest_force_n)} is only {f(gap)} below hold_force "
                f"{f(hold)}; the gap must be at least {f(limits.min_hold_rest_gap_n)}",
            )
        for name, seconds, bounds in (
            ("hold_s", profile.hold_s, limits.hold_s),
            ("rest_s", profile.rest_s, limits.rest_s),
        ):
            if seconds is not None and seconds not in bounds:
                add(
                    name,
                    f"{seconds:g} s",
                    bounds.text(),
                    f"{name} {seconds:g} s is outside {bounds.text()}",
                )
    if profile.total_s not in limits.total_s:
        add(
            "total_s",
            f"{profile.total_s:g} s",
            limits.total_s.text(),
            f"total_s {profile.total_s:g} s is outside {limits.total_s.text()}",
        )
    confirm = limits.confirm_force_n(profile.region)
    if hold > confirm and not operator_confirmed:
        add(
            "hold_force",
            f(hold),
            f(confirm),
            f"hold_force {f(hold)} is above {f(confirm)}: an operator "
            "must confirm it (operator_confirmed) before it is applied",
        )
    for key in sorted(patient.contraindications):
        if key in limits.contraindications:
            flag = limits.contraindications[key]
            if flag.applies_to(profile.region):
                add(
                    "patient.contraindications",
                    key,
                    "none",
                    f"contraindication: {flag.label} ({key}) rules out "
                    f"{profile.region.value} traction",
                )
        elif key in limits.precautions:
            flag = limits.precautions[key]
            if flag.applies_to(profile.region):
                add(
                    "patient.contraindications",
                    key,
                    "precaution",
                    f"precaution: {flag.label} ({key}); monitor the patient closely during "
                    f"{profile.region.value} traction",
                    Severity.WARN,
                )
        else:
            add(
                "patient.contraindications",
                key,
                "a known flag",
                f"unknown contraindication flag {key!r}: it cannot be checked, so treatment is "
                f"blocked; known flags are {sorted([*limits.contraindications, *limits.precautions])}",
            )
    if profile.angle_deg is not None and not (
        region.angle_min_deg <= profile.angle_deg <= region.angle_max_deg
    ):
        add(
            "angle_deg",
            f"{profile.angle_deg:g} deg",
            f"{region.angle_min_deg:g}..{region.angle_max_deg:g} deg",
            f"angle_deg {profile.angle_deg:g} deg is outside the usual {profile.region.value} "
            f"range {region.angle_min_deg:g}..{region.angle_max_deg:g} deg",
            Severity.WARN,
        )
    return blocking(out) + warnings(out)

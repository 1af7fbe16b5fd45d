"""The session the treatment-process tests run, shared with their workstation script."""

from __future__ import annotations

from dataclasses import replace

from devices.limits import SafetyLimits, load_limits
from devices.profiles import ForceProfile

SCALE = 4.0  # session seconds per real second
_SHIPPED = load_limits()


def long_static_profile() -> ForceProfile:
    """Lumbar static 35 lbf for five minutes of session time: far longer than any test waits."""
    return ForceProfile.from_dict(
        {
            "name": "process test: lumbar static 35 lbf",
            "mode": "continuous",
            "region": "lumbar",
            "hold_force": "35 lbf",
            "total_s": 300,
            "ramp_rate": "10 lbf/s",
        }
    )


def limits_at(scale: float) -> SafetyLimits:
    """The shipped limits with time bounds that leave a loaded machine >= 0.3 s of real margin at
    ``scale``; the table's watchdog lets go 1.5 s (real) after the last heartbeat."""
    bounds = {"staleness_s": 0.3 * scale, "heartbeat_timeout_s": 1.5 * scale}
    return replace(_SHIPPED, supervisor=replace(_SHIPPED.supervisor, **bounds))


WATCHDOG_REAL_S = 1.5

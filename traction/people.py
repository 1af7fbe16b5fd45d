"""Checks on a patient before registering them, shared by the CLI and the HTTP service.

A patient's contraindications decide what the safety check blocks, so a flag the limits do not
know would silently check nothing; a payer missing from configs/payers.toml would only surface at
billing time. Both are refused at the door.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from devices.errors import ConfigError
from devices.limits import SafetyLimits
from session.billing import Payer


class PatientFieldError(ConfigError):
    """One bad field of a new patient; ``loc`` is its path, ``value`` what was given."""

    def __init__(self, loc: tuple[str | int, ...], message: str, value: Any) -> None:
        self.loc = loc
        self.value = value
        super().__init__(".".join(map(str, loc)), message)


def check_new_patient(
    contraindications: Sequence[str],
    payer_id: str | None,
    limits: SafetyLimits,
    payers: Mapping[str, Payer],
) -> None:
    known = sorted([*limits.contraindications, *limits.precautions])
    for i, key in enumerate(contraindications):
        if key not in known:
            raise PatientFieldError(
                ("contraindications", i),
                f"{key!r} is not a contraindication or precaution in the safety limits; "
                f"known: {', '.join(known)}",
                key,
            )
    if payer_id is not None and payer_id not in payers:
        raise PatientFieldError(
            ("payer_id",),
            f"{payer_id!r} is not a payer in configs/payers.toml; known: {', '.join(sorted(payers))}",
            payer_id,
        )

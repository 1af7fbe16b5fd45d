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
    precautions: Sequence[str] = (),
) -> None:
    check_flags(contraindications, precautions, limits)
    if payer_id is not None and payer_id not in payers:
        raise PatientFieldError(
            ("payer_id",),
            f"{payer_id!r} is not a payer in configs/payers.toml; known: {', '.join(sorted(payers))}",
            payer_id,
        )


def check_flags(
    contraindications: Sequence[str], precautions: Sequence[str], limits: SafetyLimits
) -> None:
    """Each key is known, and entered in its own list: a contraindication blocks treatment, a
    precaution only warns, so mixing them up changes what the safety check does."""
    groups = (
        ("contraindications", contraindications, limits.contraindications, limits.precautions),
        ("precautions", precautions, limits.precautions, limits.contraindications),
    )
    for name, keys, own, other in groups:
        for i, key in enumerate(keys):
            if key in own:
                continue
            if key in other:
                kind = "precaution" if name == "contraindications" else "contraindication"
                raise PatientFieldError(
                    (name, i),
                    f"{key!r} is a {kind} in the safety limits; enter it under {kind}s, not {name}",
                    key,
                )
            raise PatientFieldError(
                (name, i),
                f"{key!r} is not one of the {name} in the safety limits; known: "
                f"{', '.join(sorted(own))}",
                key,
            )

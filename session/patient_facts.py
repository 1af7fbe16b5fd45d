"""A patient's facts as the safety check sees them: plausible weights, and the facts a version keeps."""

from __future__ import annotations

import re
from typing import Any

from session.errors import StoreError
from session.models import Patient

# Adults on a traction table; outside this a typo (640 kg, or pounds typed as kg) is likelier
# than a patient, and the lumbar body-weight limit would follow the typo.
WEIGHT_MIN_KG = 20.0
WEIGHT_MAX_KG = 300.0
_LB_PER_KG = 2.2046226218
_WEIGHT = re.compile(r"^\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>kg|kgs|lb|lbs)?\s*$", re.IGNORECASE)


def check_weight(kg: float, field: str = "body_weight") -> float:
    """``kg`` if it is a plausible adult body weight, else a StoreError naming the bounds."""
    if not WEIGHT_MIN_KG <= kg <= WEIGHT_MAX_KG:
        raise StoreError(
            f"{field}: {kg:g} kg ({kg * _LB_PER_KG:.0f} lb) is not a plausible body weight; "
            f"it must be {WEIGHT_MIN_KG:g}-{WEIGHT_MAX_KG:g} kg "
            f"({WEIGHT_MIN_KG * _LB_PER_KG:.0f}-{WEIGHT_MAX_KG * _LB_PER_KG:.0f} lb)"
        )
    return kg


def parse_weight(text: str, field: str = "weight") -> float:
    """A body weight in kg from ``"82"``, ``"82 kg"`` or ``"180 lb"`` (a bare number is kg)."""
    match = _WEIGHT.match(text)
    if match is None:
        raise StoreError(f"{field}: {text!r} is not a weight; write e.g. '82 kg' or '180 lb'")
    value = float(match["value"])
    unit = (match["unit"] or "kg").lower()
    kg = value / _LB_PER_KG if unit.startswith("lb") else value
    return check_weight(kg, field)


def facts_of(patient: Patient) -> dict[str, Any]:
    """The facts a version keeps (and a session's snapshot records)."""
    return {
        "body_weight_kg": patient.body_weight_kg,
        "sex": patient.sex,
        "contraindications": sorted(patient.contraindications),
        "precautions": sorted(patient.precautions),
        "payer_id": patient.payer_id,
    }

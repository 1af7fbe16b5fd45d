"""Diagnosis codes checked where they are entered, not only at billing.

DOMAIN.md: invalid or header ICD-10-CM codes must be refused. A code that is malformed, deleted or a
non-billable header is refused at the door (CLI and API alike) with what to use instead; a code
that is valid but not a spine diagnosis, or outside the curated list, is kept and surfaces as a
billing-readiness finding, since a clinician may have reasons the list does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from devices.errors import ConfigError
from session.icd10 import CodeStatus, default_catalog

REFUSED = (CodeStatus.INVALID, CodeStatus.DELETED, CodeStatus.HEADER)


class DiagnosisError(ConfigError):
    """A diagnosis code that cannot be recorded; ``index`` is its position in the list."""

    def __init__(self, index: int, code: str, message: str) -> None:
        self.index = index
        self.code = code
        super().__init__(f"diagnosis_codes[{index}]", message)


def check_diagnoses(codes: Sequence[str], on: date) -> None:
    """Raise :class:`DiagnosisError` for the first code that must not be recorded on ``on``."""
    catalog = default_catalog()
    for index, code in enumerate(codes):
        verdict = catalog.check(code, on)
        if verdict.status in REFUSED:
            raise DiagnosisError(index, code, verdict.message)

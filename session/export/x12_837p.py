"""An 837P (005010X222A1) fragment for one claim: the HI diagnosis segment and the Loop 2400
service lines (LX, SV1, DTP*472), for offices that send claims through a clearinghouse.

Not a whole interchange: the envelope (ISA/GS/ST), billing provider, subscriber and claim header
(CLM) belong to the practice-management system that merges this fragment.
"""

from __future__ import annotations

from collections.abc import Sequence

from devices.errors import ConfigError
from session.billing import BillingLine

SEGMENT = "~"
ELEMENT = "*"
COMPONENT = ":"
MAX_HI = 12


def _clean(value: str, where: str) -> str:
    if any(ch in value for ch in (SEGMENT, ELEMENT, COMPONENT, "^")):
        raise ConfigError(where, f"{value!r} contains an X12 delimiter (~ * : ^)")
    return value


def render_x12(lines: Sequence[BillingLine]) -> str:
    """HI, then LX/SV1/DTP per line, one segment per text line. All lines must be one patient's
    (one claim); their diagnoses are merged into one HI list and each line's pointers remapped."""
    if not lines:
        raise ConfigError("x12", "no billing lines to render")
    patients = {line.patient_ref for line in lines}
    if len(patients) != 1:
        raise ConfigError("x12", f"one claim is one patient; got {sorted(patients)}")
    claim_dx: list[str] = []
    for line in lines:
        for code in line.diagnoses:
            if code not in claim_dx:
                claim_dx.append(code)
    if not claim_dx:
        raise ConfigError("x12", "the claim has no billable diagnosis for the HI segment")
    if len(claim_dx) > MAX_HI:
        raise ConfigError("x12", f"{len(claim_dx)} diagnoses; an 837P claim carries at most 12")
    hi = [
        f"{'ABK' if i == 0 else 'ABF'}{COMPONENT}{_clean(code.replace('.', ''), 'x12 HI')}"
        for i, code in enumerate(claim_dx)
    ]
    segments = [ELEMENT.join(["HI", *hi])]
    for n, line in enumerate(lines, start=1):
        procedure = COMPONENT.join(
            _clean(part, f"x12 SV1 line {n}") for part in ("HC", line.cpt_code, *line.modifiers)
        )
        pointers = COMPONENT.join(
            str(claim_dx.index(line.diagnoses[p - 1]) + 1) for p in line.dx_pointers
        )
        # SV105 (place of service) is left empty: it defaults to the claim's CLM05-1.
        sv1 = ["SV1", procedure, f"{line.charge:.2f}", "UN", str(line.units), "", "", pointers]
        segments += [
            f"LX{ELEMENT}{n}",
            ELEMENT.join(sv1),
            ELEMENT.join(["DTP", "472", "D8", line.date_of_service.strftime("%Y%m%d")]),
        ]
    return "".join(f"{segment}{SEGMENT}\n" for segment in segments)

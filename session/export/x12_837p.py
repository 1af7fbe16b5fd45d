"""Claims as a complete ASC X12 837P interchange (005010X222A1): ISA/GS/ST envelope, submitter and
receiver (1000A/B), billing provider (2000A/2010AA), subscriber and payer (2000B/2010BA/2010BB),
one claim per encounter (2300: CLM with the frequency code, HI diagnoses), rendering and supervising
providers (2310B/2310D) and the service line (2400: LX, SV1, DTP*472, REF*6R), then SE/GE/IEA.

The clinic's identifiers come from ``configs/clinic.toml`` (or the workstation's ``clinic_file``).
This product keeps no patient names or birth dates (patients are a clinic reference; identity lives
in the EHR), so the subscriber is named by that reference: the practice-management system or the
clearinghouse maps it to the member's demographics. A replacement (frequency 7) or void (8) names
the claim it replaces in REF*F8 by this ledger's claim id.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from devices.configfiles import config_file
from devices.errors import ConfigError
from session.billing import BillingLine

SEGMENT = "~"
ELEMENT = "*"
COMPONENT = ":"
REPETITION = "^"
MAX_HI = 12
IMPLEMENTATION = "005010X222A1"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Party(_Strict):
    id: str = Field(min_length=2, max_length=15, pattern=r"^[A-Za-z0-9 ]+$")
    name: str = Field(min_length=1, max_length=60)


class Submitter(Party):
    contact: str = Field(min_length=1, max_length=60)
    phone: str = Field(pattern=r"^\d{10}$")


class BillingProvider(_Strict):
    name: str = Field(min_length=1, max_length=60)
    npi: str = Field(pattern=r"^\d{10}$")
    tax_id: str = Field(pattern=r"^\d{9}$")
    address: str = Field(min_length=1, max_length=55)
    city: str = Field(min_length=2, max_length=30)
    state: str = Field(pattern=r"^[A-Z]{2}$")
    zip: str = Field(pattern=r"^\d{9}$")
    taxonomy: str = Field(pattern=r"^[0-9A-Z]{9}X$")


class PayerIdentity(_Strict):
    name: str = Field(min_length=1, max_length=60)
    id: str = Field(min_length=2, max_length=80)
    claim_filing: str = Field(pattern=r"^[0-9A-Z]{2}$")


class ClinicIdentity(_Strict):
    """The clinic's claim identifiers (see ``configs/clinic.toml``)."""

    usage: str = Field(pattern=r"^[TP]$")
    submitter: Submitter
    receiver: Party
    billing: BillingProvider
    payers: dict[str, PayerIdentity]


def load_clinic(text: str, source: str) -> ClinicIdentity:
    """Parse the clinic's identifiers; errors name the file, the field and the rule."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, f"not valid TOML: {exc}") from None
    try:
        return ClinicIdentity.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ConfigError(
            f"{source}: {field}", f"{err['msg']} (got {err.get('input')!r})"
        ) from None


def clinic_identity(path: Path | None = None) -> ClinicIdentity:
    """``path``, or the shipped ``configs/clinic.toml``."""
    if path is not None:
        try:
            return load_clinic(path.read_text(encoding="utf-8"), str(path))
        except FileNotFoundError:
            raise ConfigError(str(path), "clinic file not found") from None
    return load_clinic(
        config_file("clinic.toml").read_text(encoding="utf-8"), "configs/clinic.toml"
    )


@dataclass(frozen=True)
class Provider:
    name: str
    npi: str


@dataclass(frozen=True)
class Claim:
    """One encounter's claim: a ledger line with its claim id and frequency (1, 7 or 8)."""

    claim_id: str
    frequency: str
    payer_key: str
    line: BillingLine
    rendering: Provider | None
    supervising: Provider | None
    replaces_claim_id: str | None = None


def _clean(value: str, where: str) -> str:
    if any(ch in value for ch in (SEGMENT, ELEMENT, COMPONENT, REPETITION)):
        raise ConfigError(where, f"{value!r} contains an X12 delimiter (~ * : ^)")
    return value


def _seg(*elements: str) -> str:
    parts = list(elements)
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return ELEMENT.join(parts)


def _person(name: str) -> tuple[str, str]:
    """(last, first) from a full name as signed, e.g. "Dana Reyes" -> ("Reyes", "Dana")."""
    words = name.replace(",", " ").split()
    if not words:
        return ("UNKNOWN", "")
    return (words[-1], " ".join(words[:-1]))


def _claim_segments(claim: Claim, payer: PayerIdentity, hl: int) -> list[str]:
    line = claim.line
    where = f"x12 claim {claim.claim_id}"
    if not line.diagnoses:
        raise ConfigError(where, "the claim has no billable diagnosis for the HI segment")
    if len(line.diagnoses) > MAX_HI:
        raise ConfigError(where, f"{len(line.diagnoses)} diagnoses; an 837P claim carries 12")
    ref = _clean(line.patient_ref, f"{where} patient")
    out = [
        _seg("HL", str(hl), "1", "22", "0"),
        _seg("SBR", "P", "18", "", "", "", "", "", "", payer.claim_filing),
        _seg("NM1", "IL", "1", ref, "", "", "", "", "MI", ref),
        _seg("NM1", "PR", "2", _clean(payer.name, where), "", "", "", "", "PI", payer.id),
        _seg(
            "CLM",
            claim.claim_id,
            f"{line.charge:.2f}",
            "",
            "",
            COMPONENT.join((line.place_of_service, "B", claim.frequency)),
            "Y",
            "A",
            "Y",
            "Y",
        ),
    ]
    if claim.replaces_claim_id:
        out.append(_seg("REF", "F8", claim.replaces_claim_id))
    out.append(
        _seg(
            "HI",
            *(
                f"{'ABK' if i == 0 else 'ABF'}{COMPONENT}{_clean(code.replace('.', ''), where)}"
                for i, code in enumerate(line.diagnoses)
            ),
        )
    )
    for qualifier, provider in (("82", claim.rendering), ("DQ", claim.supervising)):
        if provider is not None and provider.npi:
            last, first = _person(_clean(provider.name, where))
            out.append(_seg("NM1", qualifier, "1", last, first, "", "", "", "XX", provider.npi))
    procedure = COMPONENT.join(
        _clean(part, where) for part in ("HC", line.cpt_code, *line.modifiers)
    )
    pointers = COMPONENT.join(str(p) for p in line.dx_pointers)
    out += [
        _seg("LX", "1"),
        _seg("SV1", procedure, f"{line.charge:.2f}", "UN", str(line.units), "", "", pointers),
        _seg("DTP", "472", "D8", line.date_of_service.strftime("%Y%m%d")),
        _seg("REF", "6R", claim.claim_id),
    ]
    return out


def render_interchange(
    claims: Sequence[Claim], clinic: ClinicIdentity, control_number: int, now: datetime
) -> str:
    """One interchange with one transaction set holding every claim; one segment per text line."""
    if not claims:
        raise ConfigError("x12", "no claims to send")
    if not 0 < control_number < 10**9:
        raise ConfigError("x12", f"control number {control_number} must be 1..999999999")
    control = f"{control_number:09d}"
    submitter, receiver, billing = clinic.submitter, clinic.receiver, clinic.billing
    body = [
        _seg("ST", "837", "0001", IMPLEMENTATION),
        _seg("BHT", "0019", "00", control, now.strftime("%Y%m%d"), now.strftime("%H%M"), "CH"),
        _seg("NM1", "41", "2", submitter.name, "", "", "", "", "46", submitter.id),
        _seg("PER", "IC", submitter.contact, "TE", submitter.phone),
        _seg("NM1", "40", "2", receiver.name, "", "", "", "", "46", receiver.id),
        _seg("HL", "1", "", "20", "1"),
        _seg("PRV", "BI", "PXC", billing.taxonomy),
        _seg("NM1", "85", "2", billing.name, "", "", "", "", "XX", billing.npi),
        _seg("N3", billing.address),
        _seg("N4", billing.city, billing.state, billing.zip),
        _seg("REF", "EI", billing.tax_id),
    ]
    for n, claim in enumerate(claims, start=2):
        payer = clinic.payers.get(claim.payer_key)
        if payer is None:
            raise ConfigError(
                "clinic file: payers",
                f"no identifiers for payer {claim.payer_key!r}: add [payers.{claim.payer_key}]",
            )
        body += _claim_segments(claim, payer, n)
    body.append(_seg("SE", str(len(body) + 1), "0001"))
    isa = _seg(
        "ISA",
        "00",
        " " * 10,
        "00",
        " " * 10,
        "ZZ",
        submitter.id.ljust(15),
        "ZZ",
        receiver.id.ljust(15),
        now.strftime("%y%m%d"),
        now.strftime("%H%M"),
        REPETITION,
        "00501",
        control,
        "0",
        clinic.usage,
        COMPONENT,
    )
    segments = [
        isa,
        _seg(
            "GS",
            "HC",
            submitter.id,
            receiver.id,
            now.strftime("%Y%m%d"),
            now.strftime("%H%M"),
            str(control_number),
            "X",
            IMPLEMENTATION,
        ),
        *body,
        _seg("GE", "1", str(control_number)),
        _seg("IEA", "1", control),
    ]
    return "".join(f"{segment}{SEGMENT}\n" for segment in segments)

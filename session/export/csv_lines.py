"""Billing lines as CSV, in the column layout PT EMRs export for billing systems.

One row per billable line. Modifiers and diagnosis pointers are spread over fixed columns
(mod1..mod4, dx_pointer1..4); ``diagnoses`` holds the claim's codes in pointer order, separated by
semicolons, and ``session_ids`` the sessions the line covers. It reads back with
``csv.DictReader`` and :func:`parse_csv`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal

from session.billing import MAX_MODIFIERS, MAX_POINTERS, BillingLine

COLUMNS = (
    "date_of_service",
    "patient_ref",
    "cpt_code",
    *(f"mod{i}" for i in range(1, MAX_MODIFIERS + 1)),
    "units",
    "charge",
    *(f"dx_pointer{i}" for i in range(1, MAX_POINTERS + 1)),
    "diagnoses",
    "rendering_npi",
    "supervising_npi",
    "place_of_service",
    "session_ids",
)


def _pad(values: Iterable[object], n: int) -> list[str]:
    out = [str(v) for v in values][:n]
    return out + [""] * (n - len(out))


def line_row(line: BillingLine) -> dict[str, str]:
    mods = _pad(line.modifiers, MAX_MODIFIERS)
    pointers = _pad(line.dx_pointers, MAX_POINTERS)
    row = {
        "date_of_service": line.date_of_service.isoformat(),
        "patient_ref": line.patient_ref,
        "cpt_code": line.cpt_code,
        "units": str(line.units),
        "charge": f"{line.charge:.2f}",
        "diagnoses": ";".join(line.diagnoses),
        "rendering_npi": line.rendering_npi,
        "supervising_npi": line.supervising_npi,
        "place_of_service": line.place_of_service,
        "session_ids": ";".join(line.session_ids),
    }
    row.update({f"mod{i + 1}": m for i, m in enumerate(mods)})
    row.update({f"dx_pointer{i + 1}": p for i, p in enumerate(pointers)})
    return row


def render_csv(
    lines: Sequence[BillingLine], extra: Sequence[Mapping[str, str]] | None = None
) -> str:
    """The lines as CSV text with a header row (RFC 4180 quoting, ``\\r\\n`` line ends).
    ``extra`` holds, per line, columns appended after the standard ones (the same keys on every
    line): the ledger's claim line id and frequency, or a held line's findings."""
    extra = extra or [{} for _ in lines]
    if len(extra) != len(lines):
        raise ValueError(f"{len(extra)} extra rows for {len(lines)} lines")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*COLUMNS, *(extra[0] if extra else {})])
    writer.writeheader()
    for line, more in zip(lines, extra, strict=True):
        writer.writerow({**line_row(line), **more})
    return buffer.getvalue()


def parse_csv(text: str) -> list[BillingLine]:
    """Read lines back from :func:`render_csv` output."""
    lines = []
    for row in csv.DictReader(io.StringIO(text)):
        lines.append(
            BillingLine(
                date_of_service=date.fromisoformat(row["date_of_service"]),
                patient_ref=row["patient_ref"],
                cpt_code=row["cpt_code"],
                modifiers=tuple(
                    row[f"mod{i}"] for i in range(1, MAX_MODIFIERS + 1) if row[f"mod{i}"]
                ),
                units=int(row["units"]),
                charge=Decimal(row["charge"]),
                diagnoses=tuple(c for c in row["diagnoses"].split(";") if c),
                dx_pointers=tuple(
                    int(row[f"dx_pointer{i}"])
                    for i in range(1, MAX_POINTERS + 1)
                    if row[f"dx_pointer{i}"]
                ),
                rendering_npi=row["rendering_npi"],
                supervising_npi=row["supervising_npi"],
                place_of_service=row["place_of_service"],
                session_ids=tuple(s for s in row["session_ids"].split(";") if s),
            )
        )
    return lines

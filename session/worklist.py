"""What is left to do: the clinic's worklist.

Unsigned notes, co-signatures due, claims held and what would release them, and interrupted
sessions, each with who must act. Built from the store and the claims ledger; nothing is written.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from session.exports import ClaimRun, ExportOptions, claim_run
from session.ledger import ClaimsLedger
from session.models import Clinician, Discipline, Patient, TreatmentSession
from session.store import Store

MAX_HELD_CHECKED = 200  # claim checks document each session; bound one worklist's work

# Who fixes what a held claim lacks: the note's author documents, the admin keeps the clinic's
# records (NPIs, tables), the billing office handles payers. Signing and co-signing have their
# own entries.
_ADMIN_CODES = frozenset({"NO_NPI", "NO_DEVICE_ID", "NOT_SEALED", "SEAL_MISMATCH"})
_BILLING_CODES = frozenset(
    {"PAYER_MISMATCH", "TRACTION_NOT_COVERED", "KX_THRESHOLD_UNKNOWN", "UNITS_PER_DOS"}
)
_OWN_ENTRY_CODES = frozenset({"NO_SIGNATURE", "ASSISTANT_NOT_COSIGNED"})


class WorkKind(enum.StrEnum):
    UNSIGNED = "unsigned"
    COSIGN = "cosign"
    HELD = "held"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class WorkItem:
    kind: WorkKind
    session_id: str
    patient_ref: str
    started_at: datetime
    who: str
    what: str


def worklist(store: Store, since: datetime, options: ExportOptions) -> list[WorkItem]:
    """Every open item for sessions started at or after ``since``, oldest first within a kind."""
    rows = _finished(store, since)
    items: list[WorkItem] = []
    for row, patient, treating, supervising in rows:
        if row.outcome == "interrupted":
            items.append(
                _item(WorkKind.INTERRUPTED, row, patient, treating.name,
                      "review the interruption and document the patient's response")
            )  # fmt: skip
        if row.signed_by_id is None:
            items.append(
                _item(WorkKind.UNSIGNED, row, patient, treating.name,
                      f"sign the note: traction sessions sign {row.id[:12]}")
            )  # fmt: skip
        elif Discipline(treating.discipline).supervised_by and row.cosigned_by_id is None:
            who = supervising.name if supervising else "the supervising therapist"
            what = (
                f"co-sign {treating.name}'s note: traction sessions cosign {row.id[:12]}"
                if supervising
                else "record the supervising therapist, then co-sign"
            )
            items.append(_item(WorkKind.COSIGN, row, patient, who, what))
    items += _held(store, since, options, {row.id: (row, p, t) for row, p, t, _ in rows})
    order = list(WorkKind)
    return sorted(items, key=lambda i: (order.index(i.kind), i.started_at, i.session_id))


def _item(kind: WorkKind, row: TreatmentSession, patient: Patient, who: str, what: str) -> WorkItem:
    return WorkItem(kind, row.id, patient.reference, row.started_at, who, what)


def _finished(
    store: Store, since: datetime
) -> list[tuple[TreatmentSession, Patient, Clinician, Clinician | None]]:
    supervising = aliased(Clinician)
    stmt = (
        select(TreatmentSession, Patient, Clinician, supervising)
        .join(Patient, col(Patient.id) == col(TreatmentSession.patient_id))
        .join(Clinician, col(Clinician.id) == col(TreatmentSession.treating_clinician_id))
        .outerjoin(
            supervising, col(supervising.id) == col(TreatmentSession.supervising_clinician_id)
        )
        .where(col(TreatmentSession.outcome).is_not(None))
        .where(col(TreatmentSession.simulated).is_(False))
        .where(col(TreatmentSession.started_at) >= since)
        .order_by(col(TreatmentSession.started_at))
    )
    with Session(store.engine) as db:
        return list(db.exec(stmt).all())


def _held(
    store: Store,
    since: datetime,
    options: ExportOptions,
    known: dict[str, tuple[TreatmentSession, Patient, Clinician]],
) -> list[WorkItem]:
    """Sessions no claim line covers whose line would be held for more than a signature."""
    unclaimed = ClaimsLedger(store.engine).unclaimed_sessions(since=since, limit=MAX_HELD_CHECKED)
    if not unclaimed:
        return []
    run: ClaimRun = claim_run(store, unclaimed, options)
    items = []
    for session_id in unclaimed:
        blocking = [
            f
            for f in run.findings_for(session_id)
            if f.severity.value == "blocking" and f.code not in _OWN_ENTRY_CODES
        ]
        if not blocking or session_id not in known:
            continue
        row, patient, treating = known[session_id]
        for finding in blocking:
            who = who_fixes(finding.code, treating.name)
            items.append(
                _item(WorkKind.HELD, row, patient, who, f"{finding.code}: {finding.message}")
            )
    return items


def who_fixes(code: str, author: str) -> str:
    """Who must act on a billing finding ``code``: the admin, the billing office, or the note's
    ``author`` (the treating clinician), who also signs."""
    if code in _ADMIN_CODES:
        return "admin"
    if code in _BILLING_CODES:
        return "billing office"
    return author

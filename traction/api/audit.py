"""What the API serves of a patient's records goes into the access log (session.audit).

Routes call these after they have the records in hand and before they answer, so a response
that carried a patient's data always has its entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from session.accounts import User
from session.audit import Access, Accessed, AccessLog
from session.models import ClaimLine, Patient
from traction.service import WorkstationService


def _log(service: WorkstationService) -> AccessLog:
    return service.access_log


def record_read(
    service: WorkstationService,
    user: User,
    what: str,
    session_id: str,
    action: Access = Access.READ,
    detail: str = "",
) -> None:
    """``user`` read (or exported) one session's record through ``what``."""
    _log(service).record(user.name, action, what, [Accessed(session_id, detail=detail)])


class ListedSession(Protocol):
    """A session as a listing shows it: its id and its patient."""

    @property
    def id(self) -> str: ...

    @property
    def patient_id(self) -> int: ...


def record_sessions_listed(
    service: WorkstationService, user: User, what: str, rows: Iterable[ListedSession]
) -> None:
    """A listing showed these sessions: one entry each, so each patient's accounting is whole."""
    accessed = [Accessed(row.id, row.patient_id) for row in rows]
    _log(service).record(user.name, Access.LIST, what, accessed)


def record_patients_listed(
    service: WorkstationService, user: User, what: str, patients: Iterable[Patient]
) -> None:
    accessed = [Accessed(patient_id=p.id) for p in patients]
    _log(service).record(user.name, Access.LIST, what, accessed)


def record_patient_read(
    service: WorkstationService, user: User, what: str, patient: Patient
) -> None:
    """A patient's record (not a session's) was read, e.g. their plan of care."""
    _log(service).record(user.name, Access.READ, what, [Accessed(patient_id=patient.id)])


def record_claim_lines(
    service: WorkstationService,
    user: User,
    what: str,
    action: Access,
    lines: Iterable[ClaimLine],
) -> None:
    """Claim lines carry a patient's reference and services: one entry per session a line
    covers (the patient is found through the session)."""
    accessed = [
        Accessed(session_id, detail=f"claim line {line.id}")
        for line in lines
        for session_id in line.session_ids
    ]
    _log(service).record(user.name, action, what, accessed)


def record_sessions_seen(
    service: WorkstationService, user: User, what: str, session_ids: Iterable[str]
) -> None:
    """A listing named these sessions (and so their patients): one entry each, once."""
    accessed = [Accessed(session_id) for session_id in dict.fromkeys(session_ids)]
    _log(service).record(user.name, Access.LIST, what, accessed)

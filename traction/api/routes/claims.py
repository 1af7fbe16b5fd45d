"""The claims ledger over HTTP: bill what is new, pull lines by cursor, correct or void a line.

A billing office polls ``GET /claims?after=<last id>`` and gets each line exactly once; a claim
run (``POST /claims/runs``) bills the sessions that are ready and reports every finding of the
ones it held. Every run is recorded with the calling user. ``GET /claims/pending`` shows what the
next run would do without billing anything (the console's billing page), and a run's lines come
as a file from ``GET /claims/runs/{run_id}/csv`` or ``x12``.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import AfterValidator, BaseModel, Field, StrictBool
from starlette.concurrency import run_in_threadpool

from session.audit import Access
from session.documentation import BillingStatus
from session.exports import (
    MAX_SESSIONS_PER_EXPORT,
    ExportSummary,
    claim_run,
    claim_sessions,
    correct_line,
    render_claims_x12,
    render_ledger_csv,
    void_line,
)
from session.ledger import MAX_PULL, ClaimsLedger, LedgerError
from session.models import ClaimLine
from session.worklist import who_fixes
from traction.api.audit import record_claim_lines, record_read, record_sessions_seen
from traction.api.auth import CurrentUser, Service
from traction.api.bounds import MAX_ID, MAX_NAME, Name, unique
from traction.api.schemas import INPUT, ErrorOut, RefusedOut

router = APIRouter(prefix="/claims", tags=["claims"])

LineId = Annotated[int, Path(ge=1, le=MAX_ID, description="A claim line id")]
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="A claim run id")]
MAX_PENDING = 500
"""Sessions one look at what is waiting checks at most (each is documented to be checked)."""


class ClaimLineOut(BaseModel):
    """A line as sent; ``frequency`` 1 original, 7 replacement, 8 void of ``replaces_line_id``."""

    id: int
    frequency: Literal["1", "7", "8"]
    replaces_line_id: int | None
    run_id: int
    created_at: datetime
    payer_key: str
    patient_ref: str
    date_of_service: date
    cpt_code: str
    modifiers: list[str]
    units: int
    charge: Decimal
    diagnoses: list[str]
    dx_pointers: list[int]
    rendering_npi: str
    supervising_npi: str
    place_of_service: str
    session_ids: list[str]
    reason: str


class ClaimPage(BaseModel):
    lines: list[ClaimLineOut]
    next_after: int = Field(description="Pass back as `after` for the next page")


class ClaimRunIn(BaseModel):
    model_config = INPUT

    session_ids: Annotated[
        list[Name], Field(max_length=MAX_SESSIONS_PER_EXPORT), AfterValidator(unique)
    ] = Field(
        default_factory=list,
        description="Sessions to bill, each once; empty with new=true: every session not yet "
        "covered",
    )
    new: StrictBool = Field(
        default=False, description="Bill every finished session not yet covered"
    )
    payer: str | None = Field(default=None, max_length=MAX_NAME)
    ytd_spend: Decimal = Field(
        default=Decimal(0),
        ge=0,
        le=Decimal("1000000"),
        description="Each patient's therapy spend this year billed outside traction (KX)",
    )


class SessionBillingOut(BaseModel):
    session_id: str
    simulated: bool
    billing: BillingStatus


class ClaimRunOut(BaseModel):
    run_id: int | None
    sent: list[int] = Field(description="Claim line ids this run sent")
    already_sent: list[int] = Field(description="Lines sent before that cover sessions asked")
    held: int = Field(description="Lines held back (blocking findings)")
    sessions: list[SessionBillingOut]


class ReasonIn(BaseModel):
    model_config = INPUT

    why: str = Field(min_length=1, max_length=2000)


class PendingFindingOut(BaseModel):
    code: str
    severity: Literal["blocking", "warning", "info"]
    message: str
    who: str = Field(description="Who must fix it: the treating clinician, admin or billing")


class PendingOut(BaseModel):
    """A finished session no claim line covers yet, as the next claim run would find it."""

    session_id: str
    patient_ref: str
    date_of_service: date
    treating: str
    status: Literal["ready", "held", "documented_only"] = Field(
        description="ready: the next run sends its line; held: blocking findings; "
        "documented_only: another session of the day carries the line"
    )
    carried_by: str | None = Field(description="The session whose line covers this one")
    findings: list[PendingFindingOut]


class ClaimFile(enum.StrEnum):
    CSV = "csv"
    X12 = "x12"


def line_out(row: ClaimLine) -> ClaimLineOut:
    return ClaimLineOut.model_validate(row.model_dump())


def _run_out(summary: ExportSummary) -> ClaimRunOut:
    return ClaimRunOut(
        run_id=summary.run_id,
        sent=[r.claim_line.id for r in summary.sent if r.claim_line and r.claim_line.id],
        already_sent=[
            r.claim_line.id for r in summary.already_sent if r.claim_line and r.claim_line.id
        ],
        held=len(summary.held),
        sessions=[
            SessionBillingOut(session_id=d.session_id, simulated=d.simulated, billing=d.billing)
            for d in summary.docs
            if d.billing is not None
        ],
    )


@router.get("", response_model=ClaimPage, summary="Claim lines after a cursor")
def pull_lines(
    service: Service,
    user: CurrentUser,
    after: Annotated[
        int, Query(ge=0, le=MAX_ID, description="The last claim line id already pulled")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PULL)] = 100,
) -> ClaimPage:
    """Lines sent, corrected or voided after ``after``, oldest first. Pulling again with
    ``next_after`` yields only what is new: each line comes out once. Each line pulled is an
    entry in the access log for its patient."""
    rows = ClaimsLedger(service.store.engine).lines_after(after, limit)
    record_claim_lines(service, user, "GET /claims", Access.EXPORT, rows)
    last = rows[-1].id if rows else None
    return ClaimPage(lines=[line_out(r) for r in rows], next_after=last or after)


@router.post(
    "/runs",
    response_model=ClaimRunOut,
    status_code=201,
    summary="Bill sessions",
    responses={422: {"model": RefusedOut, "description": "Unknown session or payer"}},
)
async def run_claims(body: ClaimRunIn, user: CurrentUser, service: Service) -> ClaimRunOut:
    """Bill the sessions named (or, with ``new``, every finished session no line covers yet):
    ready lines are sent once per encounter; held and simulated sessions come back with every
    finding. Then pull the lines with ``GET /claims?after=...``."""

    def work() -> ClaimRunOut:
        store = service.store
        ids = [store.resolve_session_id(s) for s in body.session_ids]
        if body.new:
            room = MAX_SESSIONS_PER_EXPORT - len(ids)  # one run stays bounded; run again
            unclaimed = ClaimsLedger(store.engine).unclaimed_sessions(limit=room + len(ids))
            ids += [s for s in unclaimed if s not in ids][:room]
        if not ids:
            return ClaimRunOut(run_id=None, sent=[], already_sent=[], held=0, sessions=[])
        options = service.settings.export_options(body.payer, body.ytd_spend)
        summary = claim_sessions(store, ids, options, f"api:{user.name}")
        for session_id in ids:
            record_read(service, user, "POST /claims/runs", session_id, Access.EXPORT, "claim run")
        return _run_out(summary)

    return await run_in_threadpool(work)


@router.get(
    "/pending", response_model=list[PendingOut], summary="What the next claim run would find"
)
async def pending(
    service: Service,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=MAX_PENDING)] = 200,
) -> list[PendingOut]:
    """Finished sessions of real tables that no line covers yet (oldest first, at most
    ``limit``), checked as ``POST /claims/runs`` with ``new`` would check them, without billing
    anything: ready, held with every finding and who must fix it, or covered by another session's
    line. Each session listed is an entry in the access log."""

    def work() -> list[PendingOut]:
        store = service.store
        ledger = ClaimsLedger(store.engine)
        ids = ledger.unclaimed_sessions(limit=limit)
        if not ids:
            return []
        options = service.settings.export_options()
        base = options.year_to_date_spend

        def spend(patient_ref: str, year: int) -> Decimal:
            return base + ledger.sent_spend(patient_ref, year)

        run = claim_run(store, ids, options, spend=spend, verify_seals=False)
        out = []
        for doc in run.docs:
            line = run.line_of(doc.session_id)
            carrier = line.session_ids[0] if line is not None else None
            status: Literal["ready", "held", "documented_only"] = (
                "held"
                if line is None or not run.line_ready(line)
                else "documented_only"
                if carrier != doc.session_id
                else "ready"
            )
            findings = [
                PendingFindingOut(
                    code=f.code,
                    severity=f.severity.value,
                    message=f.message,
                    who=who_fixes(f.code, doc.treating.name),
                )
                for f in run.findings_for(doc.session_id)
            ]
            out.append(
                PendingOut(
                    session_id=doc.session_id,
                    patient_ref=doc.patient_ref,
                    date_of_service=doc.date_of_service,
                    treating=doc.treating.name,
                    status=status,
                    carried_by=carrier if carrier != doc.session_id else None,
                    findings=findings,
                )
            )
        record_sessions_seen(service, user, "GET /claims/pending", ids)
        return out

    return await run_in_threadpool(work)


@router.get(
    "/runs/{run_id}/{fmt}",
    summary="A claim run's lines as a file",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}, "text/plain": {}}, "description": "The file"},
        404: {"model": ErrorOut, "description": "No such run"},
        409: {"model": ErrorOut, "description": "The run sent no line"},
    },
)
def run_file(run_id: RunId, fmt: ClaimFile, service: Service, user: CurrentUser) -> Response:
    """The lines a claim run sent (each line is sent by one run only), as billing-lines CSV or
    one 837P interchange: what a claim run pulled, to hand to the clearinghouse. Each line is
    an entry in the access log."""
    store = service.store
    ledger = ClaimsLedger(store.engine)
    try:
        ledger.get_run(run_id)
    except LedgerError:
        raise HTTPException(404, f"no claim run {run_id}") from None
    rows = ledger.run_lines(run_id)
    if not rows:
        raise HTTPException(409, f"claim run {run_id} sent no line: nothing to download")
    record_claim_lines(service, user, "GET /claims/runs/{run_id}/{fmt}", Access.EXPORT, rows)
    options = service.settings.export_options()
    if fmt is ClaimFile.CSV:
        body, media, suffix = render_ledger_csv(rows), "text/csv", "csv"
    else:
        body, media, suffix = (
            render_claims_x12(store, rows, options, run_id),
            "text/plain",
            "837p.txt",
        )
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="claim-run-{run_id}.{suffix}"'},
    )


@router.post(
    "/{line_id}/correct",
    response_model=ClaimLineOut,
    status_code=201,
    summary="Correct a sent line (frequency 7)",
    responses={422: {"model": RefusedOut, "description": "No such line, or not correctable"}},
)
def correct(line_id: LineId, body: ReasonIn, user: CurrentUser, service: Service) -> ClaimLineOut:
    """Replace the line in force with what its sessions' documentation gives now."""
    options = service.settings.export_options()
    line = correct_line(service.store, line_id, body.why, f"api:{user.name}", options)
    record_claim_lines(service, user, "POST /claims/{line_id}/correct", Access.EXPORT, [line])
    return line_out(line)


@router.post(
    "/{line_id}/void",
    response_model=ClaimLineOut,
    status_code=201,
    summary="Void a sent line (frequency 8)",
    responses={422: {"model": RefusedOut, "description": "No such line, or already voided"}},
)
def void(line_id: LineId, body: ReasonIn, user: CurrentUser, service: Service) -> ClaimLineOut:
    """Cancel the line in force."""
    line = void_line(service.store, line_id, body.why, f"api:{user.name}")
    record_claim_lines(service, user, "POST /claims/{line_id}/void", Access.EXPORT, [line])
    return line_out(line)

"""A session's documents and billing files, in every export format."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from session.audit import Access
from session.billing import default_payers
from session.exports import ExportFormat, preview, render
from traction.api.audit import record_read
from traction.api.auth import CurrentUser, Service
from traction.api.bounds import MAX_NAME, SessionId
from traction.api.routes.sessions import NOT_FOUND, field_error, get_row
from traction.api.schemas import ErrorOut

router = APIRouter(prefix="/sessions", tags=["exports"])

MEDIA: dict[str, dict[str, str]] = {fmt.media_type: {} for fmt in ExportFormat}


@router.get(
    "/{session_id}/export/{fmt}",
    summary="Export a session",
    response_class=Response,
    responses={
        200: {
            "content": MEDIA,
            "description": "The document; X-Billing-Ready says whether billing checks passed",
        },
        **NOT_FOUND,
        409: {
            "model": ErrorOut,
            "description": "The session has not finished, or has no claim line (csv, x12)",
        },
    },
)
def export_session(
    session_id: SessionId,
    fmt: ExportFormat,
    service: Service,
    user: CurrentUser,
    payer: Annotated[
        str | None,
        Query(
            max_length=MAX_NAME,
            description="Payer key in configs/payers.toml; default the patient's",
        ),
    ] = None,
) -> Response:
    """The session as json (documentation with its billing status and every finding), csv
    (its claim line), pdf (note with the force plot), fhir (R4B bundle) or x12 (837P). Nothing
    is billed here: csv and x12 exist once the session's line was sent (``POST /claims/runs``);
    before that they answer 409 saying why. Billing status is in ``X-Billing-Status``."""
    get_row(service, session_id)
    if payer is not None and payer not in (payers := default_payers()):
        known = ", ".join(sorted(payers))
        raise field_error(("query", "payer"), f"unknown payer {payer!r}; known: {known}", payer)
    settings = service.settings
    options = settings.export_options(payer)
    doc, rows = preview(service.store, session_id, options, verify_seals=fmt.shows_seal)
    body = render(service.store, doc, fmt, rows, options)
    status = doc.billing
    assert status is not None
    what = "GET /sessions/{session_id}/export/{fmt}"
    record_read(service, user, what, session_id, Access.EXPORT, fmt.value)
    return Response(
        body,
        media_type=fmt.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{session_id}{fmt.suffix}"',
            "X-Billing-Status": status.status,
            "X-Billing-Ready": "true" if status.status in ("ready", "already_sent") else "false",
            "X-Billing-Findings": str(len(status.findings)),
        },
    )

"""A session's documents and billing files, in every export format."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from session.exports import ExportFormat, claim_run, render
from traction.api.auth import Service
from traction.api.routes.sessions import NOT_FOUND, get_row
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
        409: {"model": ErrorOut, "description": "The session has not finished"},
    },
)
def export_session(
    session_id: str,
    fmt: ExportFormat,
    service: Service,
    payer: Annotated[
        str | None, Query(description="Payer key in configs/payers.toml; default the patient's")
    ] = None,
) -> Response:
    """The session as json (documentation), csv (billing lines), pdf (note with the force plot),
    fhir (R4 bundle) or x12 (837P). Billing readiness findings are in ``X-Billing-Findings``."""
    get_row(service, session_id)
    settings = service.settings
    run = claim_run(service.store, [session_id], settings.export_options(payer))
    body = render(service.store, run, run.docs[0], fmt)
    findings = run.findings_for(session_id)
    return Response(
        body,
        media_type=fmt.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{session_id}{fmt.suffix}"',
            "X-Billing-Ready": "true" if run.ready(session_id) else "false",
            "X-Billing-Findings": str(len(findings)),
        },
    )

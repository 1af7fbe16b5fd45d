"""The worklist: what is left to do for the clinic's sessions, and who must do it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from session.worklist import WorkItem, WorkKind, worklist
from traction.api.audit import record_sessions_seen
from traction.api.auth import CurrentUser, Service

router = APIRouter(tags=["worklist"])


class WorkItemOut(BaseModel):
    kind: WorkKind
    session_id: str
    patient_ref: str
    started_at: datetime
    who: str
    what: str


@router.get("/worklist", response_model=list[WorkItemOut], summary="What is left to do")
async def get_worklist(
    service: Service,
    user: CurrentUser,
    days: Annotated[int, Query(ge=1, le=366, description="Look back this many days")] = 30,
) -> list[WorkItemOut]:
    """Unsigned notes, co-signatures due, held claims (each finding, with who must fix it) and
    interrupted sessions, for sessions started in the last ``days`` days (clinic time). Each
    session listed is an entry in the access log."""
    settings = service.settings
    since = (datetime.now(settings.zone) - timedelta(days=days)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    items: list[WorkItem] = await run_in_threadpool(
        worklist, service.store, since, settings.export_options()
    )
    what = "GET /worklist"
    await run_in_threadpool(
        record_sessions_seen, service, user, what, [i.session_id for i in items]
    )
    return [WorkItemOut(**item.__dict__) for item in items]

"""The tables wired to this workstation: identity and current state."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from devices.errors import TableError
from devices.faults import FAULTS
from session.lockouts import TableLockout
from traction.api.auth import CurrentUser, Service
from traction.api.bounds import MAX_NAME
from traction.api.schemas import (
    TABLE_SILENT,
    AcknowledgedOut,
    AcknowledgeIn,
    AlarmOut,
    ErrorOut,
    LiveOut,
    RefusedOut,
    TableOut,
)
from traction.service import TableSlot, WorkstationService

router = APIRouter(prefix="/tables", tags=["tables"])


async def _table_out(service: WorkstationService, slot: TableSlot) -> TableOut:
    """One table as the list shows it; a table that does not answer is shown as such, so one
    silent table never hides the others."""
    state, unreachable = None, None
    try:
        state = await service.read_state(slot.setting.name)
    except TableError as exc:
        unreachable = str(exc)
    live = None
    if slot.running is not None:
        sample = slot.running.watch.last_sample
        live = LiveOut(
            session_id=slot.running.session_id,
            t=sample.t if sample else None,
            target_n=sample.target_n if sample else None,
            measured_n=sample.measured_n if sample else None,
            phase=str(sample.phase) if sample else None,
            cycle=sample.cycle if sample else None,
            paused=slot.running.treatment.loop.paused,
            started_by=slot.running.started_by,
        )
    alarms = [_alarm(row) for row in await service.alarms(slot.setting.name)]
    return TableOut(
        name=slot.setting.name,
        url=slot.setting.url,
        simulated=slot.opened.simulated,
        device=slot.device,
        state=state,
        unreachable=unreachable,
        live=live,
        locked=bool(alarms),
        alarms=alarms,
    )


def _alarm(row: TableLockout) -> AlarmOut:
    return AlarmOut(
        id=row.id or 0,
        fault=row.fault,
        fault_title=FAULTS[row.fault].title if row.fault in FAULTS else row.fault,
        reason=row.reason,
        session_id=row.session_id,
        locked_at=row.locked_at,
        acknowledged_at=row.acknowledged_at,
    )


@router.get("", response_model=list[TableOut], summary="List tables")
async def list_tables(service: Service) -> list[TableOut]:
    """Every configured table with its identity and its state now."""
    return [await _table_out(service, slot) for slot in service.slots.values()]


@router.get(
    "/{name}",
    response_model=TableOut,
    summary="One table",
    responses={404: {"model": ErrorOut, "description": "No such table"}},
)
async def get_table(name: Annotated[str, Path(max_length=MAX_NAME)], service: Service) -> TableOut:
    """A table's identity (as it reported it) and its state: a fresh reading when idle, the
    running session's latest sample otherwise."""
    return await _table_out(service, service.slot(name))


ACK_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such table"},
    409: {"model": ErrorOut, "description": "The table is not locked"},
    422: {"model": RefusedOut, "description": "No reason given, or a reason too long"},
    **TABLE_SILENT,
}


@router.post(
    "/{name}/ack",
    response_model=AcknowledgedOut,
    summary="Acknowledge a locked table's alarms",
    responses=ACK_RESPONSES,
)
async def acknowledge(
    name: Annotated[str, Path(max_length=MAX_NAME)],
    body: AcknowledgeIn,
    service: Service,
    user: CurrentUser,
) -> AcknowledgedOut:
    """After a lock-severity trip (hard limit, stuck or disagreeing sensors, watchdog, overload)
    no session starts on the table until someone who may run it has checked the patient and the
    table and acknowledges here, saying what was checked. Who and why are recorded as an event,
    and the fault the table latched with the trip is cleared (``table_state`` says how the table
    is now)."""
    who = f"{user.name} ({user.role})"
    rows, table_state = await service.acknowledge(name, who, body.reason)
    return AcknowledgedOut(
        table=name,
        acknowledged_by=who,
        reason=body.reason,
        alarms=[_alarm(r) for r in rows],
        table_state=table_state,
    )

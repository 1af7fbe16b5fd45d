"""The tables wired to this workstation: identity and current state."""

from __future__ import annotations

from fastapi import APIRouter

from traction.api.auth import Service
from traction.api.schemas import LiveOut, TableOut
from traction.service import TableSlot, WorkstationService

router = APIRouter(prefix="/tables", tags=["tables"])


async def _table_out(service: WorkstationService, slot: TableSlot) -> TableOut:
    state = await service.read_state(slot.setting.name)
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
    return TableOut(
        name=slot.setting.name,
        url=slot.setting.url,
        simulated=slot.opened.simulated,
        device=slot.device,
        state=state,
        live=live,
    )


@router.get("", response_model=list[TableOut], summary="List tables")
async def list_tables(service: Service) -> list[TableOut]:
    """Every configured table with its identity and its state now."""
    return [await _table_out(service, slot) for slot in service.slots.values()]


@router.get(
    "/{name}",
    response_model=TableOut,
    summary="One table",
    responses={404: {"description": "No such table"}},
)
async def get_table(name: str, service: Service) -> TableOut:
    """A table's identity (as it reported it) and its state: a fresh reading when idle, the
    running session's latest sample otherwise."""
    return await _table_out(service, service.slot(name))

"""Live telemetry of a running session over a WebSocket.

``WS /sessions/{id}/telemetry`` with ``Authorization: Bearer <token>`` at the handshake. Each
message is one JSON document ``{"name": "started" | "sample" | "event" | "finished", "doc": {...}}``:
the session's ``started`` record first, then its records as the table produces them, and the
connection closes (code 1000) after ``finished``. A slow client loses samples, never events (see
:class:`devices.stream.LatestQueue`). A session that is no longer running sends one ``finished``
document built from its stored record. Refusals come after the handshake is accepted, as close
codes the client can read: 4401 (no or a bad token), 4403 (the role may not read), 4404 (no such
session).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from devices.records import record_name
from devices.stream import LatestQueue
from session.store import StoreError
from traction.api.audit import record_read
from traction.api.auth import (
    BEARER_SUBPROTOCOL,
    Denied,
    authorize_websocket,
    offered_bearer,
    service_of,
    websocket_close_code,
)
from traction.service import RunningTreatment

router = APIRouter(tags=["telemetry"])

WS_NOT_FOUND = 4404
WHAT = "WS /sessions/{session_id}/telemetry"


def document(name: str, doc: dict[str, Any]) -> str:
    return json.dumps({"name": name, "doc": doc}, default=str)


@router.websocket("/sessions/{session_id}/telemetry", name="telemetry")
async def telemetry(websocket: WebSocket, session_id: str) -> None:
    await websocket.accept(subprotocol=_subprotocol(websocket))
    try:
        user = await run_in_threadpool(authorize_websocket, websocket)
    except Denied as denied:
        await websocket.close(websocket_close_code(denied), denied.message[:120])
        return
    service = service_of(websocket)
    running = service.running(session_id)
    if running is None:
        try:
            row = await run_in_threadpool(service.store.get_session, session_id)
        except StoreError:
            await websocket.close(WS_NOT_FOUND, "no such session")
            return
        await run_in_threadpool(record_read, service, user, WHAT, session_id)
        finished = {
            "run_id": row.id,
            "wall": row.ended_at.isoformat() if row.ended_at else None,
            "outcome": row.outcome,
            "reason": row.outcome_reason,
            "sample_count": row.sample_count,
        }
        await websocket.send_text(document("finished", finished))
        await websocket.close()
        return
    await run_in_threadpool(record_read, service, user, WHAT, session_id)
    queue = running.listen()
    sender = asyncio.create_task(_send(websocket, queue))
    receiver = asyncio.create_task(_until_disconnect(websocket))
    try:
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        _stop(running, queue, sender, receiver)
    if sender.done() and not sender.cancelled() and sender.exception() is None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close()


def _subprotocol(websocket: WebSocket) -> str | None:
    """Echo ``bearer`` when the browser sent its token that way, as the handshake requires."""
    return BEARER_SUBPROTOCOL if offered_bearer(websocket) is not None else None


async def _send(websocket: WebSocket, queue: LatestQueue) -> None:
    async for record in queue:
        await websocket.send_text(document(record_name(record), record.to_dict()))


async def _until_disconnect(websocket: WebSocket) -> None:
    """Clients send nothing; this notices when they leave."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


def _stop(
    running: RunningTreatment,
    queue: LatestQueue,
    sender: asyncio.Task[None],
    receiver: asyncio.Task[None],
) -> None:
    running.unlisten(queue)
    for task in (sender, receiver):
        task.cancel()

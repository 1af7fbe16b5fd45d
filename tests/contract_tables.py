"""Connected tables for the contract suite: one simulated table per transport, opened from its URL.

Each rig is a real simulator (pymodbus TCP server, pymodbus RTU server on a pty pair, or the line-v1
server on a pty pair) and a driver opened with :func:`devices.opening.open_device`, both on one
scaled clock. Tests see the driver only through :class:`devices.contract.Table`; the simulated
:class:`TableModel` is there to inject device-side events (stop switch, fault codes), and ``cut`` /
``mend`` pull and restore the link the way each transport loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from devices.clock import ScaledClock
from devices.contract import StopKind, Table, TableState
from devices.errors import TableError
from devices.opening import open_device
from simulators.line_server import start_line_simulator
from simulators.modbus_server import start_rtu_simulator, start_tcp_simulator
from simulators.physics import TableModel, TableSpec
from simulators.ptypair import PtyPair

TRANSPORTS = ("modbus-tcp", "modbus-rtu", "line")
CLOCK_SCALE = 4.0  # session seconds per real second
DRIVER_TIMEOUT_S = 0.5  # per try, real seconds, passed in every URL
RTU_BAUD = 19200
LINE_BAUD = 9600
# Session time is generous: a test fails on a condition never reached, not on a slow machine.
POLL_LIMIT_S = 40.0
# The watchdog in the spec is long, so a loaded machine never trips it by accident; the watchdog
# test sets a short one through the contract.
SPEC = TableSpec(noise_n=0.5, heartbeat_timeout_s=5.0)


@dataclass
class ContractRig:
    """A connected table, the model behind it, and the link controls of its transport."""

    transport: str
    table: Table
    model: TableModel
    clock: ScaledClock
    cut: Callable[[], None]
    mend: Callable[[], None]
    url_at_baud: Callable[[int], str] | None  # the same table at another baud (serial only)


@asynccontextmanager
async def contract_rig(
    transport: str, *, scale: float = CLOCK_SCALE, line_baud: int = LINE_BAUD
) -> AsyncIterator[ContractRig]:
    """A running simulator for ``transport`` and a connected driver; leaves the table released.

    ``line_baud`` is the rate the line-v1 driver is opened at (a pty pair carries any rate; the
    control loop needs a faster line than 9600 baud to run its default tick).
    """
    clock = ScaledClock(scale)
    model = TableModel(SPEC, seed=7)
    async with contextlib.AsyncExitStack() as stack:
        if transport == "modbus-tcp":
            tcp = await start_tcp_simulator({1: model}, clock)
            stack.push_async_callback(tcp.stop)
            url = f"{tcp.url()}&timeout={DRIVER_TIMEOUT_S}"
            rig = ContractRig(
                transport,
                open_device(url, clock),
                model,
                clock,
                cut=tcp.faults.drop,
                mend=tcp.faults.restore,
                url_at_baud=None,
            )
        elif transport == "modbus-rtu":
            pair = stack.enter_context(PtyPair())
            rtu = await start_rtu_simulator({1: model}, clock, pair.device_port, baud=RTU_BAUD)
            stack.push_async_callback(rtu.stop)

            def rtu_url(baud: int) -> str:
                return (
                    f"modbus+rtu://{pair.host_port}?baud={baud}&unit=1&map={rtu.map_name}"
                    f"&timeout={DRIVER_TIMEOUT_S}"
                )

            rig = ContractRig(
                transport,
                open_device(rtu_url(RTU_BAUD), clock),
                model,
                clock,
                cut=pair.cut,
                mend=pair.mend,
                url_at_baud=rtu_url,
            )
        elif transport == "line":
            pair = stack.enter_context(PtyPair())
            line = await start_line_simulator(
                model, clock, pair.device_port, baud=line_baud, host_port=pair.host_port
            )
            stack.push_async_callback(line.stop)

            def line_url(baud: int) -> str:
                return f"line://{pair.host_port}?baud={baud}&timeout={DRIVER_TIMEOUT_S}"

            rig = ContractRig(
                transport,
                open_device(line_url(line_baud), clock),
                model,
                clock,
                cut=pair.cut,
                mend=pair.mend,
                url_at_baud=line_url,
            )
        else:
            raise ValueError(f"unknown transport {transport!r}; known: {', '.join(TRANSPORTS)}")
        await rig.table.connect()
        stack.push_async_callback(rig.table.close)
        stack.push_async_callback(_release, rig)
        yield rig


async def _release(rig: ContractRig) -> None:
    """Whatever a test did, the table ends released (the link may be the thing that failed)."""
    rig.mend()
    with contextlib.suppress(TableError):
        await rig.table.stop(StopKind.RELEASE)


async def poll(
    rig: ContractRig,
    until: Callable[[TableState], bool],
    *,
    heartbeat: bool = True,
    limit_s: float = POLL_LIMIT_S,
) -> list[TableState]:
    """Heartbeat (unless told not to) and read until ``until(state)``; every state read, in order.

    Fails after ``limit_s`` of session time without the condition.
    """
    states: list[TableState] = []
    deadline = rig.clock.now() + limit_s
    while rig.clock.now() < deadline:
        if heartbeat:
            await rig.table.heartbeat()
        state = await rig.table.read_state()
        states.append(state)
        if until(state):
            return states
        await asyncio.sleep(0.005)
    last = states[-1] if states else None
    raise AssertionError(f"{rig.transport}: condition not met in {limit_s} s; last state {last}")

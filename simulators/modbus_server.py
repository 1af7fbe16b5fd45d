"""Simulated traction tables served over Modbus TCP and RTU by pymodbus' own server.

The server is built from the same register map file the driver reads. Each unit id is one
:class:`~simulators.physics.TableModel`, advanced on the shared clock at every request, so the
state a master reads is the state at that moment, and every value in one reply comes from one
snapshot of it (a float32 never pairs the words of two load-cell samples). The datastore answers
like a conforming device: exception 2 for an unmapped register, a write to a read-only register or
a partial write of a multi-register value; exception 3 for an illegal value (a target above the
rating, an unknown or refused command). Unit ids: on TCP a lone table also answers 255 and 0; on
RTU a request for another unit id gets no answer at all. RTU frames end at t3.5 of silence
(:mod:`simulators.rtu_framing`); on TCP an abandoned partial frame is dropped and an impossible
header closes the connection (:mod:`simulators.tcp_framing`).

Link-level faults (:class:`LinkFaults`) can be injected while running: drop the link, slow replies,
garbage or truncated frames. Device-level faults (stuck load cell, fault codes, stop switch) live on
the models themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlencode

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler

from devices.clock import Clock
from devices.errors import ConfigError
from devices.registermap import DataType, Entry, RegisterMap, load_register_map
from devices.units import ForceUnit
from simulators import physics, tcp_framing
from simulators.physics import Command, CommandRefused, TableModel
from simulators.rtu_framing import HuntingFramerRTU, receive

_HOLDING_READ = (3, 23)
_HOLDING_WRITE = (6, 16, 23)
_WRITE_SINGLE = 6
TCP_DIRECT_IDS = frozenset({0, 255})  # "this device" on Modbus TCP (implementation guide 4.4.2)
_TURNS_TO_ATTACH = 2  # one loop turn accepts a waiting connection, the next attaches it
_MAX_WAITING = 64  # connections taken at most while stopping (a client retrying forever)

# Faults every served map must name; the others fall back to the closest one a map without the
# single-fault features has (such a map has no force limit or operator stop to raise them anyway).
BASE_FAULTS = ("none", "overload", "motor", "load_cell", "watchdog", "stop_switch")
_FALLBACK = {"force_limit": "overload", "operator_stop": "stop_switch"}
_COMMANDS = {
    "none": Command.NONE,
    "start": Command.START,
    "stop_controlled": Command.STOP_CONTROLLED,
    "release": Command.RELEASE,
    "clear_fault": Command.CLEAR_FAULT,
}


class LinkFaults:
    """Wire faults injectable while a simulator runs; they affect every unit on the server."""

    def __init__(self) -> None:
        self.dropped = False
        self.delay_s = 0.0
        self.garbage_kind: Literal["junk", "truncated"] | None = None
        self._servers: list[ModbusTcpServer | ModbusSerialServer] = []

    def drop(self) -> None:
        """Stop answering; on TCP also close every open connection (clients are cut off at once)."""
        self.dropped = True
        for server in self._servers:
            if isinstance(server, ModbusSerialServer):
                continue  # the serial port stays open; the line just goes quiet
            for connection in list(server.active_connections.values()):
                connection.close()

    def restore(self) -> None:
        """Undo every link fault."""
        self.dropped = False
        self.delay_s = 0.0
        self.garbage_kind = None

    def slow(self, seconds: float) -> None:
        """Delay each reply by ``seconds`` of real time (0 for normal speed)."""
        self.delay_s = max(0.0, seconds)

    def garbage(self, on: bool, kind: Literal["junk", "truncated"] = "junk") -> None:
        """Corrupt replies: ``junk`` sends bytes that are no valid frame, ``truncated`` half a frame."""
        self.garbage_kind = kind if on else None

    def mangle(self, sending: bool, packet: bytes) -> bytes:
        """pymodbus ``trace_packet`` hook: rewrites outgoing frames while garbage is on."""
        if not sending or self.garbage_kind is None:
            return packet
        if self.garbage_kind == "truncated":
            return packet[: max(1, len(packet) // 2)]
        return bytes((0xA5 ^ (7 * i)) & 0xFF for i in range(len(packet)))


@dataclass
class _Unit:
    """One simulated table behind a unit id."""

    model: TableModel
    last_command: int = 0
    echo: dict[int, list[int]] = field(default_factory=dict)


class TableDatastore(ModbusServerContext):
    """The server's datastore: register reads and writes become model reads and commands.

    pymodbus routes requests to ``async_getValues``/``async_setValues`` of a server context; this
    one answers from the models through the register map instead of from stored registers.
    """

    def __init__(
        self,
        register_map: RegisterMap,
        models: dict[int, TableModel],
        clock: Clock,
        faults: LinkFaults,
        direct_ids: frozenset[int] = frozenset(),
    ) -> None:
        # The base class builds pymodbus' own register store; this context replaces it entirely,
        # and ``old_simulator`` tells the server to call it directly.
        self.old_simulator = True
        self.simdevices = []
        self.register_map = register_map
        self.clock = clock
        self.faults = faults
        self._units = {unit: _Unit(model) for unit, model in models.items()}
        # Unit ids that mean "whoever is at the other end of this connection" (Modbus TCP): they
        # reach the table when the server holds exactly one.
        self._direct = direct_ids if len(self._units) == 1 else frozenset()
        fault_values = register_map["fault_code"].values
        missing = [name for name in BASE_FAULTS if name not in fault_values]
        if missing:
            raise ConfigError(
                f"{register_map.source} [status.fault_code]",
                f"the simulator needs values for fault(s): {', '.join(missing)}",
            )

    def device_ids(self) -> list[int]:
        return list(self._units)

    def _unit(self, device_id: int) -> _Unit:
        unit = self._units.get(device_id)
        if unit is None and device_id in self._direct:
            unit = next(iter(self._units.values()))
        if unit is None:
            raise NoSuchIdException(f"no simulated table at unit {device_id}")
        return unit

    async def async_getValues(  # noqa: N802 - pymodbus' name
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        unit = self._unit(device_id)
        if func_code == _WRITE_SINGLE:  # the echo of a write-single reply, even if write-only
            return unit.echo.pop(address, [0])
        await self._delay()
        if func_code not in _HOLDING_READ:
            return ExcCodes.ILLEGAL_FUNCTION
        unit.model.advance(self.clock.now())
        # One snapshot per request: each value is encoded once, so both words of a float32 come
        # from the same load-cell sample and every value in the reply is of the same instant.
        snapshot: dict[str, list[int]] = {}
        registers: list[int] = []
        for register in range(address, address + count):
            entry = self.register_map.entry_at(register)
            if entry is None or not entry.access.readable:
                return ExcCodes.ILLEGAL_ADDRESS
            if entry.name not in snapshot:
                snapshot[entry.name] = self._registers(unit, entry)
            registers.append(snapshot[entry.name][register - entry.address])
        return registers

    async def async_setValues(  # noqa: N802 - pymodbus' name
        self,
        device_id: int,
        func_code: int,
        address: int,
        values: Sequence[int] | Sequence[bool],
    ) -> ExcCodes | None:
        unit = self._unit(device_id)
        await self._delay()
        if func_code not in _HOLDING_WRITE:
            return ExcCodes.ILLEGAL_FUNCTION
        now = self.clock.now()
        unit.model.advance(now)
        writes: list[tuple[Entry, list[int]]] = []
        register = address
        end = address + len(values)
        while register < end:
            entry = self.register_map.entry_at(register)
            if (
                entry is None
                or not entry.access.writable
                or entry.address != register
                or entry.end > end
            ):
                return ExcCodes.ILLEGAL_ADDRESS
            writes.append(
                (entry, [int(v) for v in values[register - address : entry.end - address]])
            )
            register = entry.end
        for entry, registers in writes:
            code = self._apply(unit, entry, registers, now)
            if code is not None:
                return code
        if func_code == _WRITE_SINGLE:
            unit.echo[address] = [int(v) for v in values]
        return None

    async def _delay(self) -> None:
        if self.faults.delay_s > 0:
            await asyncio.sleep(self.faults.delay_s)

    def _apply(
        self, unit: _Unit, entry: Entry, registers: list[int], now: float
    ) -> ExcCodes | None:
        model = unit.model
        try:
            if entry.name == "target_force":
                model.set_target(entry.decode_force(registers))
            elif entry.name == "command":
                raw = int(entry.decode(registers))
                name = entry.code_name(raw)
                if name is None or name not in _COMMANDS:
                    return ExcCodes.ILLEGAL_VALUE
                model.command(_COMMANDS[name], now)
                unit.last_command = raw
            elif entry.name == "heartbeat":
                model.heartbeat(now, int(entry.decode(registers)))
            elif entry.name == "heartbeat_timeout_ms":
                model.set_heartbeat_timeout(float(entry.decode(registers)) / 1000.0)
            elif entry.name == "force_limit":
                model.set_force_limit(entry.decode_force(registers))
        except (CommandRefused, ValueError):
            return ExcCodes.ILLEGAL_VALUE
        return None

    def _registers(self, unit: _Unit, entry: Entry) -> list[int]:
        """The registers of one entry as the table would hold them now."""
        model = unit.model
        spec = model.spec
        name = entry.name
        value: float | int | str
        if entry.type is DataType.STRING:
            text = {
                "model": spec.model,
                "serial_number": spec.serial_number,
                "firmware": spec.firmware,
                "manufacturer": spec.manufacturer,
            }.get(name, "")
            return entry.encode(text[: 2 * entry.length])
        if name in FORCE_READERS:  # a noisy channel is sampled once here, once per request
            value = FORCE_READERS[name](model) / ForceUnit(entry.unit).newtons
        elif name == "command":
            value = unit.last_command
        elif name == "heartbeat":
            value = model.heartbeat_counter
        elif name == "heartbeat_timeout_ms":
            value = model.heartbeat_timeout_s * 1000.0
        elif name == "status":
            value = _status_word(entry, model)
        elif name == "fault_code":
            fault = physics.FAULT_NAMES.get(model.fault_code, "motor")
            value = entry.values.get(fault, entry.values.get(_FALLBACK.get(fault, "motor"), 0))
        elif name == "sample_counter":
            value = model.sample_counter
        else:  # a register this simulator has no physics for reads as zero
            value = 0
        return entry.encode(_clamp(entry, value))


FORCE_READERS: dict[str, Callable[[TableModel], float]] = {
    "rated_max_force": lambda m: m.spec.rated_max_force_n,
    "target_force": lambda m: m.target_n,
    "target_echo": lambda m: m.target_n,
    "measured_force": lambda m: m.measured_n(),
    "redundant_force": lambda m: m.redundant_n(),
    # a table without a session limit reports its rating, the most it would ever allow
    "force_limit": lambda m: (
        m.force_limit_n if m.force_limit_n is not None else m.spec.rated_max_force_n
    ),
}


def _clamp(entry: Entry, value: float | int) -> float | int:
    """Keep a reading inside what the register can hold, as a saturating instrument would."""
    if not entry.type.integer:
        return value
    low, high = entry.type.bounds
    return min(max(value, low * entry.scale), high * entry.scale)


def _status_word(entry: Entry, model: TableModel) -> int:
    flags = {
        "running": model.running,
        "ready": model.ready,
        "released": model.released,
        "fault": model.fault_code != physics.FAULT_NONE,
        "stop_switch_pressed": model.stop_switch_pressed,
        "stop_switch_connected": model.stop_switch_connected,
        "watchdog_tripped": model.watchdog_tripped,
        "operator_stop_pressed": model.operator_stop_pressed,
    }
    word = 0
    for name, bit in entry.bits.items():
        if flags.get(name, False):
            word |= 1 << bit
    return word


class _Handler(ServerRequestHandler):
    """pymodbus' connection handler, made deaf while the link is dropped."""

    def __init__(self, owner: Any, faults: LinkFaults) -> None:
        super().__init__(owner, faults.mangle, None, None)
        self.link_faults = faults

    def callback_connected(self) -> None:
        super().callback_connected()
        if self.link_faults.dropped and not isinstance(self.server, ModbusSerialServer):
            self.close()

    def callback_data(self, data: bytes, addr: tuple[Any, ...] | None = None) -> int:
        if self.link_faults.dropped:
            return len(data)  # the bytes vanish, as on a dead line
        return int(super().callback_data(data, addr))


class _TcpHandler(_Handler):
    """One TCP connection's handler: an abandoned partial frame is dropped, an impossible MBAP
    header closes the connection (:mod:`simulators.tcp_framing`)."""

    def __init__(self, owner: Any, faults: LinkFaults) -> None:
        super().__init__(owner, faults)
        self._last_bytes_at = time.monotonic()

    def datagram_received(self, data: bytes, addr: tuple[Any, ...] | None) -> None:
        now = time.monotonic()
        silent_for, self._last_bytes_at = now - self._last_bytes_at, now
        joined = tcp_framing.receive(self.recv_buffer, data, silent_for)
        self.recv_buffer = b""
        if not tcp_framing.mbap_plausible(joined):
            self.close()
            return
        super().datagram_received(joined, addr)


class _TcpServer(ModbusTcpServer):
    link_faults: LinkFaults

    def callback_new_connection(self) -> _Handler:
        return _TcpHandler(self, self.link_faults)


class _SerialHandler(_Handler):
    """The serial line's handler: frames end at t3.5 of silence (:func:`rtu_framing.receive`)."""

    def __init__(self, owner: Any, faults: LinkFaults) -> None:
        super().__init__(owner, faults)
        self._baud = int(owner.comm_params.baudrate)
        self._last_bytes_at = time.monotonic()

    def datagram_received(self, data: bytes, addr: tuple[Any, ...] | None) -> None:
        now = time.monotonic()
        silent_for, self._last_bytes_at = now - self._last_bytes_at, now
        self.recv_buffer = receive(self.framer, self.recv_buffer, data, silent_for, self._baud)
        # pymodbus appends ``data`` to the buffer itself: hand it the rest, already joined.
        joined, self.recv_buffer = self.recv_buffer, b""
        super().datagram_received(joined, addr)


class _SerialServer(ModbusSerialServer):
    link_faults: LinkFaults

    def callback_new_connection(self) -> _Handler:
        return _SerialHandler(self, self.link_faults)


class RunningSimulator:
    """A started simulator: where it listens, its models, its link faults; ``stop()`` ends it."""

    def __init__(
        self,
        server: _TcpServer | _SerialServer,
        models: dict[int, TableModel],
        register_map: RegisterMap,
        map_name: str,
        faults: LinkFaults,
        *,
        host: str = "",
        port: int = 0,
        device: str = "",
        baud: int = 0,
    ) -> None:
        self._server = server
        self.models = models
        self.register_map = register_map
        self.map_name = map_name
        self.faults = faults
        self.host = host
        self.port = port
        self.device = device
        self.baud = baud

    def url(self, unit: int = 1, device: str | None = None) -> str:
        """A table URL for unit ``unit``. On RTU pass the host end of the cable as ``device``
        (a pty pair's ``host_port``); the default is the simulator's own port."""
        if self.device:
            query = urlencode({"baud": self.baud, "unit": unit, "map": self.map_name})
            return f"modbus+rtu://{device or self.device}?{query}"
        query = urlencode({"unit": unit, "map": self.map_name})
        return f"modbus+tcp://{self.host}:{self.port}?{query}"

    async def stop(self) -> None:
        self.faults.restore()
        await _take_waiting_connections(self._server)
        await self._server.shutdown()

    async def __aenter__(self) -> RunningSimulator:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def _take_waiting_connections(server: _TcpServer | _SerialServer) -> None:
    """Let the loop accept every connection already waiting at the listening socket, then attach
    it, before the socket closes. A client may have connected a moment before the simulator stops
    (its handshake done by the kernel, the accept still queued on this loop): asyncio cannot attach
    a connection to a closed server and leaks its socket instead of closing it."""
    listening = list(getattr(server.transport, "sockets", None) or ())
    for _ in range(_MAX_WAITING):
        waiting = select.select(listening, [], [], 0)[0] if listening else []
        for _turn in range(_TURNS_TO_ATTACH):
            await asyncio.sleep(0)
        if not waiting:
            return


def _prepare(
    models: dict[int, TableModel], clock: Clock, map_name: str, direct_ids: frozenset[int]
) -> tuple[RegisterMap, TableDatastore, LinkFaults]:
    if not models:
        raise ConfigError("simulator", "needs at least one table (unit id -> model)")
    for unit in models:
        if not 1 <= unit <= 247:
            raise ConfigError("simulator", f"unit id {unit} is outside 1..247")
    register_map = load_register_map(map_name)
    faults = LinkFaults()
    datastore = TableDatastore(register_map, models, clock, faults, direct_ids)
    return register_map, datastore, faults


async def start_tcp_simulator(
    models: dict[int, TableModel],
    clock: Clock,
    map_name: str = "generic-v1",
    host: str = "127.0.0.1",
    port: int = 0,
) -> RunningSimulator:
    """Serve ``models`` (unit id -> table) on one TCP port; port 0 picks a free one (see ``.port``).

    A server holding one table answers its unit id and also 255 and 0, the ids the Modbus TCP
    implementation guide gives a directly addressed device (on a point-to-point connection 0 is
    not a broadcast). Any other unit id, and 255 or 0 on a server holding several tables, gets
    exception 11 (gateway: target did not respond), as a gateway answers for a silent device.
    """
    register_map, datastore, faults = _prepare(models, clock, map_name, TCP_DIRECT_IDS)
    server = _TcpServer(datastore, address=(host, port), ignore_missing_devices=False)
    server.link_faults = faults
    faults._servers.append(server)
    try:
        await server.serve_forever(background=True)
    except RuntimeError as exc:
        raise ConfigError(f"simulator address {host}:{port}", f"cannot listen: {exc}") from None
    bound_port = int(server.transport.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
    return RunningSimulator(
        server, models, register_map, map_name, faults, host=host, port=bound_port
    )


async def start_rtu_simulator(
    models: dict[int, TableModel],
    clock: Clock,
    device: str,
    baud: int = 19200,
    map_name: str = "generic-v1",
) -> RunningSimulator:
    """Serve ``models`` (unit id -> table) as Modbus RTU on the serial port ``device``.

    Requests for another unit id get no answer at all, as on a shared RS-485 line; so do
    broadcasts (unit 0): a table takes no command it cannot acknowledge. Frames are found by
    inter-character silence (:mod:`simulators.rtu_framing`), so the simulator resynchronises after
    any bad or truncated frame.
    """
    register_map, datastore, faults = _prepare(models, clock, map_name, frozenset())
    server = _SerialServer(
        datastore,
        port=device,
        baudrate=baud,
        ignore_missing_devices=True,
        reconnect_delay=0.5,
    )
    server.framer = HuntingFramerRTU
    server.link_faults = faults
    faults._servers.append(server)
    try:
        await server.serve_forever(background=True)
    except RuntimeError as exc:
        with contextlib.suppress(Exception):
            await server.shutdown()
        raise ConfigError(f"simulator serial port {device!r}", f"cannot open: {exc}") from None
    return RunningSimulator(
        server, models, register_map, map_name, faults, device=device, baud=baud
    )

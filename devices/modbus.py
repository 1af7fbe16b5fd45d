"""A Modbus traction table: the table contract over pymodbus' async TCP and RTU clients.

What the table holds where is data (a register map, :mod:`devices.registermap`); this module only
moves registers. It reads the whole status block in one request, writes the target only when it
changes, uses short explicit timeouts instead of pymodbus' 3-second defaults, reconnects after a
dropped link, and turns every failure into a typed :class:`devices.errors.TableError` that names the
table and the register.

A reply must answer the request it is taken for. Modbus RTU has no transaction id, and pymodbus hands
a request whatever frame comes next: a reply that came after its request timed out answers the next
request instead (a read would get a heartbeat's echo, a target write a read's registers, and the
replies stay one request behind). Every reply is checked against its request (the function, a read's
register count, a write's echoed address and value), and after one that answered another request
the driver waits for the line to fall quiet, so the stragglers are dropped rather than taken.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import structlog
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from devices.clock import Clock, format_seconds
from devices.contract import DeviceInfo, SafetyFeatures, StopKind, TableState
from devices.errors import ConfigError, DeviceRejected, LinkLost, ProtocolError, TableTimeout
from devices.faults import device_fault_name
from devices.linkcauses import probe_serial_port, probe_tcp
from devices.registermap import Entry, Group, RegisterMap, load_register_map, runs
from devices.urls import TableAddress

BITS_PER_CHAR = 11  # RTU: start + 8 data + parity or second stop + stop
GAP_CHARS = 3.5  # RTU: silent interval that ends a frame
TCP_TIMEOUT_S = 0.2
TCP_TICK_WIRE_S = 0.002  # two request/reply round trips on a LAN or loopback
_LONGEST_REPLY_CHARS = 5 + 2 * 125  # a full 125-register read reply
_EXCEPTION_MEANINGS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    6: "server device busy",
    11: "gateway target did not respond",
}

_READ_HOLDING, _WRITE_SINGLE, _WRITE_MULTIPLE = 3, 6, 16
_EXCEPTION_BIT = 0x80
CLEAR_LINE_TIMEOUTS = 2  # after a stray reply, wait at most this many reply timeouts for quiet

Client = AsyncModbusTcpClient | AsyncModbusSerialClient
PacketTrace = Callable[[bool, bytes], bytes]
"""pymodbus' ``trace_packet`` hook: sees every frame sent (True) or received (False)."""
log = structlog.get_logger(__name__)


def rtu_seconds(chars: float, baud: int) -> float:
    """Time on the wire for ``chars`` RTU characters at ``baud``."""
    return chars * BITS_PER_CHAR / baud


def rtu_default_timeout(baud: int) -> float:
    """A reply timeout that fits the longest reply at this baud rate plus a margin for the device."""
    return 0.1 + rtu_seconds(8 + GAP_CHARS + _LONGEST_REPLY_CHARS + GAP_CHARS, baud)


class ModbusTable:
    """One Modbus table (TCP or RTU), driven through its register map.

    Not connected when built; ``connect()`` opens the link and every call reconnects if the link
    dropped. Calls never block longer than ``timeout`` times the tries plus a small margin, and,
    after a reply that answered another request, :data:`CLEAR_LINE_TIMEOUTS` timeouts more.
    """

    def __init__(
        self,
        name: str,
        make_client: Callable[[PacketTrace], Client],
        register_map: RegisterMap,
        unit: int,
        clock: Clock,
        timeout: float,
        retries: int,
        tick_wire_seconds: float,
        diagnose: Callable[[], Awaitable[str]],
        url: str = "",
    ) -> None:
        self.url = url  # what it was opened from: another process opens it again from this
        self._name = name
        self._diagnose = diagnose
        self._make_client = make_client
        self.register_map = register_map
        self.unit = unit
        self._clock = clock
        self.timeout = timeout
        self.retries = retries
        self._tick_wire_seconds = tick_wire_seconds
        self._client: Client | None = None
        self._last_target: list[int] | None = None
        self._heartbeat = 0
        self._last_heard = 0.0  # time.monotonic() of the last bytes received

    @property
    def name(self) -> str:
        return self._name

    @property
    def tick_wire_seconds(self) -> float:
        return self._tick_wire_seconds

    @property
    def safety_features(self) -> SafetyFeatures:
        return self.register_map.safety_features

    # ----- link --------------------------------------------------------------------------------
    async def connect(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = self._make_client(self._trace)
        self._last_target = None  # after a new link, write the target again rather than trust it
        try:
            ok = await asyncio.wait_for(self._client.connect(), self.timeout + 1.0)
        except (TimeoutError, OSError):
            ok = False
        if not ok:
            self._client.close()
            self._client = None
            # pymodbus keeps the cause to its log; look once more, to name it.
            raise LinkLost(self._name, f"cannot connect: {await self._diagnose()}")

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _ready_client(self) -> Client:
        if self._client is None or not self._client.connected:
            await self.connect()
        assert self._client is not None
        return self._client

    def _trace(self, sending: bool, packet: bytes) -> bytes:
        if not sending:
            self._last_heard = time.monotonic()
        return packet

    async def _let_the_line_clear(self) -> None:
        """Wait until nothing has arrived for one reply timeout (at most :data:`CLEAR_LINE_TIMEOUTS`
        of them): replies still on their way to earlier requests then find no request waiting, and
        pymodbus drops them instead of handing them to the next one."""
        give_up = time.monotonic() + CLEAR_LINE_TIMEOUTS * self.timeout
        while (now := time.monotonic()) < give_up:
            quiet = now - self._last_heard
            if quiet >= self.timeout:
                return
            await asyncio.sleep(min(self.timeout - quiet, give_up - now))

    async def _execute(
        self,
        what: str,
        request: Callable[[Client], Awaitable[ModbusPDU]],
        function_code: int,
        answers: Callable[[ModbusPDU], bool] = lambda _: True,
    ) -> ModbusPDU:
        """Run one request; map every failure to a typed error that says ``what`` failed.

        ``function_code`` is the request's; ``answers`` tells whether a good reply of that function
        is this request's own (a write's echo). A reply that fails either answered an earlier
        request: it is a :class:`ProtocolError`, raised once the line is clear."""
        client = await self._ready_client()
        backstop = self.timeout * (self.retries + 1) + 1.0
        try:
            async with asyncio.timeout(backstop):  # inline: no task of its own per request
                response = await request(client)
        except ConnectionException as exc:
            raise LinkLost(self._name, f"{what}: link lost ({exc})") from None
        except ModbusIOException as exc:
            if not client.connected:
                raise LinkLost(
                    self._name, f"{what}: link lost while waiting for the reply"
                ) from None
            if "No response" in str(exc):
                raise TableTimeout(
                    self._name,
                    f"{what}: no answer within {format_seconds(self.timeout)} "
                    f"({self.retries + 1} tries)",
                ) from None
            raise ProtocolError(self._name, f"{what}: bad reply ({exc})") from None
        except TimeoutError:
            raise TableTimeout(
                self._name, f"{what}: no answer within {format_seconds(backstop)}"
            ) from None
        except ModbusException as exc:
            raise ProtocolError(self._name, f"{what}: {exc}") from None
        if response.function_code & ~_EXCEPTION_BIT != function_code or not (
            response.isError() or answers(response)
        ):
            await self._let_the_line_clear()
            raise ProtocolError(
                self._name,
                f"{what}: the reply answered another request ({_reply_summary(response)}), "
                "a late reply to an earlier one; the line has been let clear",
            )
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            meaning = _EXCEPTION_MEANINGS.get(code, "exception")
            raise DeviceRejected(self._name, f"{what} refused: {meaning}", code)
        return response

    # ----- registers ---------------------------------------------------------------------------
    async def _read(self, entries: Sequence[Entry]) -> dict[str, list[int]]:
        """Read address-contiguous ``entries`` in one request; registers per entry name."""
        start, count = entries[0].address, entries[-1].end - entries[0].address
        names = entries[0].name if len(entries) == 1 else f"{entries[0].name}..{entries[-1].name}"
        what = f"read of {names} (registers {start}..{start + count - 1})"
        response = await self._execute(
            what,
            lambda c: c.read_holding_registers(start, count=count, device_id=self.unit),
            _READ_HOLDING,
            lambda r: len(r.registers) == count,
        )
        registers = list(response.registers)
        return {e.name: registers[e.address - start : e.end - start] for e in entries}

    async def _write(self, entry: Entry, registers: list[int]) -> None:
        what = f"write of {entry.label}"
        if len(registers) == 1:
            await self._execute(
                what,
                lambda c: c.write_register(entry.address, registers[0], device_id=self.unit),
                _WRITE_SINGLE,
                lambda r: (r.address, r.registers[:1]) == (entry.address, registers[:1]),
            )
        else:
            await self._execute(
                what,
                lambda c: c.write_registers(entry.address, registers, device_id=self.unit),
                _WRITE_MULTIPLE,
                lambda r: (r.address, r.count) == (entry.address, len(registers)),
            )

    def _decode(self, entry: Entry, registers: list[int]) -> float | int | str:
        try:
            return entry.decode(registers)
        except ValueError as exc:
            raise ProtocolError(self._name, str(exc)) from None

    def _decode_force(self, entry: Entry, registers: list[int]) -> float:
        try:
            return entry.decode_force(registers)
        except ValueError as exc:
            raise ProtocolError(self._name, str(exc)) from None

    async def _command(self, command: str) -> None:
        entry = self.register_map["command"]
        await self._write(entry, entry.encode(entry.values[command]))

    # ----- the table contract ------------------------------------------------------------------
    async def identify(self) -> DeviceInfo:
        values: dict[str, list[int]] = {}
        for run in runs(self.register_map.group(Group.IDENTITY)):
            values.update(await self._read(run))
        rmap = self.register_map

        def text(name: str) -> str:
            return str(self._decode(rmap[name], values[name])) if name in values else ""

        return DeviceInfo(
            model=text("model"),
            serial_number=text("serial_number"),
            firmware=text("firmware"),
            rated_max_force_n=self._decode_force(
                rmap["rated_max_force"], values["rated_max_force"]
            ),
            manufacturer=text("manufacturer"),
        )

    async def read_state(self) -> TableState:
        rmap = self.register_map
        values = await self._read(rmap.group(Group.STATUS))
        t = self._clock.now()
        status_entry = rmap["status"]
        word = int(self._decode(status_entry, values["status"])) & 0xFFFF

        def bit(name: str) -> bool:
            return name in status_entry.bits and bool(word >> status_entry.bits[name] & 1)

        code = int(self._decode(rmap["fault_code"], values["fault_code"]))
        fault = device_fault_name(code, rmap.fault_names)
        if fault == "unknown_device_fault":  # the raw code stays here, in the log, for diagnosis
            log.warning("unknown device fault code", table=self._name, code=code, map=rmap.name)
        redundant = (
            self._decode_force(rmap["redundant_force"], values["redundant_force"])
            if "redundant_force" in values
            else None
        )
        counter = (
            int(self._decode(rmap["sample_counter"], values["sample_counter"]))
            if "sample_counter" in values
            else None
        )
        return TableState(
            t=t,
            measured_force_n=self._decode_force(rmap["measured_force"], values["measured_force"]),
            target_force_n=self._decode_force(rmap["target_echo"], values["target_echo"]),
            running=bit("running"),
            ready=bit("ready"),
            released=bit("released"),
            fault=fault,
            stop_switch_pressed=bit("stop_switch_pressed"),
            stop_switch_connected=bit("stop_switch_connected"),
            watchdog_tripped=bit("watchdog_tripped"),
            operator_stop_pressed=bit("operator_stop_pressed"),
            redundant_force_n=redundant,
            sample_counter=counter,
        )

    async def set_target(self, force_n: float) -> None:
        entry = self.register_map["target_force"]
        registers = entry.encode_force(force_n)
        if registers == self._last_target:
            return
        self._last_target = None  # unknown until the table confirms
        await self._write(entry, registers)
        self._last_target = registers

    async def start(self) -> None:
        await self._command("start")

    async def stop(self, kind: StopKind) -> None:
        await self._command("release" if kind is StopKind.RELEASE else "stop_controlled")

    async def clear_fault(self) -> None:
        await self._command("clear_fault")

    async def heartbeat(self) -> None:
        entry = self.register_map["heartbeat"]
        self._heartbeat = (self._heartbeat + 1) % (entry.type.bounds[1] + 1)
        await self._write(entry, entry.encode(self._heartbeat))

    async def set_heartbeat_timeout(self, seconds: float) -> None:
        entry = self.register_map["heartbeat_timeout_ms"]
        await self._write(entry, entry.encode(seconds * 1000.0))

    def _force_limit_entry(self) -> Entry:
        entry = self.register_map.entries.get("force_limit")
        if entry is None:
            raise DeviceRejected(
                self._name, f"map {self.register_map.name} has no force_limit register", 2
            )
        return entry

    async def set_force_limit(self, force_n: float) -> None:
        entry = self._force_limit_entry()
        try:
            registers = entry.encode_force(force_n)
        except ConfigError as error:
            raise ProtocolError(self._name, f"cannot send force limit: {error}") from None
        await self._write(entry, registers)

    async def read_force_limit(self) -> float:
        entry = self._force_limit_entry()
        values = await self._read([entry])
        return self._decode_force(entry, values[entry.name])


def _write_frames(length: int) -> tuple[int, int]:
    """Request and reply lengths of writing ``length`` registers (function 6 or 16)."""
    return (8 if length == 1 else 9 + 2 * length), 8


def _rtu_tick_seconds(register_map: RegisterMap, baud: int) -> float:
    """The worst tick at ``baud``: heartbeat write, target write (every tick of a ramp) and one
    status read, with their replies and frame gaps (the contract's definition)."""
    _, count = register_map.status_span
    frames = (
        *_write_frames(register_map["heartbeat"].length),
        *_write_frames(register_map["target_force"].length),
        8,
        5 + 2 * count,
    )
    return rtu_seconds(sum(frames) + GAP_CHARS * len(frames), baud)


def open_modbus_table(address: TableAddress, clock: Clock) -> ModbusTable:
    """A (not yet connected) table for a ``modbus+tcp://`` or ``modbus+rtu://`` address.

    URL parameters: ``unit`` (1..247, default 1; 255 on TCP), ``map`` (a map name in configs/devices or a path,
    default generic-v1), ``timeout`` (seconds per try; default 0.2 on TCP, from the baud rate on
    RTU), ``retries`` (default 1), and on RTU ``baud`` (19200), ``parity`` (N) and ``stopbits`` (1).
    """
    if address.scheme not in ("modbus+tcp", "modbus+rtu"):
        raise ConfigError(f"table URL {address.url!r}", f"{address.scheme} is not a Modbus scheme")
    unit = address.unit()
    register_map = load_register_map(address.params.get("map", "generic-v1"))
    retries = address.int_param("retries", 1, 0, 5)
    if address.scheme == "modbus+tcp":
        timeout = address.float_param("timeout", TCP_TIMEOUT_S, 0.01, 10.0)
        host, port = address.host, address.port

        def make_tcp(trace: PacketTrace) -> Client:
            return AsyncModbusTcpClient(
                host,
                port=port,
                timeout=timeout,
                retries=retries,
                reconnect_delay=0,
                trace_packet=trace,
            )

        return ModbusTable(
            f"{host}:{port}/unit{unit}",
            make_tcp,
            register_map,
            unit,
            clock,
            timeout,
            retries,
            TCP_TICK_WIRE_S,
            lambda: probe_tcp(host, port, timeout),
            address.url,
        )

    baud = address.baud(19200)
    timeout = address.float_param("timeout", rtu_default_timeout(baud), 0.01, 10.0)
    parity = address.params.get("parity", "N")
    stopbits = int(address.params.get("stopbits", "1"))
    path = address.path

    def make_rtu(trace: PacketTrace) -> Client:
        return AsyncModbusSerialClient(
            path,
            baudrate=baud,
            parity=parity,
            stopbits=stopbits,
            bytesize=8,
            timeout=timeout,
            retries=retries,
            reconnect_delay=0,
            trace_packet=trace,
        )

    return ModbusTable(
        f"{path}/unit{unit}",
        make_rtu,
        register_map,
        unit,
        clock,
        timeout,
        retries,
        _rtu_tick_seconds(register_map, baud),
        lambda: asyncio.to_thread(probe_serial_port, path),
        address.url,
    )


def _reply_summary(response: ModbusPDU) -> str:
    """What a stray reply was, for the error: its function and what it carried."""
    code = response.function_code
    if code == _READ_HOLDING:
        return f"a read of {len(response.registers)} registers"
    if code == _WRITE_SINGLE:
        value = response.registers[0] if response.registers else "?"
        return f"a write of {value} to register {response.address}"
    if code == _WRITE_MULTIPLE:
        return f"a write of {response.count} registers at {response.address}"
    return f"function {code}"

"""Modbus register maps as data: load, validate and convert values for one table model.

A map file (``configs/devices/NAME.toml``) names every register a traction table exposes: its
address, data type, scale, unit and access, plus the command values, status bits and fault codes.
The driver and the simulator read the same file, so a new table model is a new file, not new code.

Loading refuses a malformed map with a :class:`ConfigError` naming the file, the entry and the rule.
Register <-> value conversion goes through pymodbus' own ``convert_to_registers`` and
``convert_from_registers`` so the byte and word order is the one every pymodbus master uses.
"""

from __future__ import annotations

import enum
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pymodbus.client.mixin import ModbusClientMixin
from pymodbus.exceptions import ModbusException

from devices.configfiles import config_file, config_root
from devices.contract import SafetyFeatures
from devices.errors import ConfigError
from devices.faults import DEVICE_FAULTS, NONE
from devices.units import ForceUnit

MAX_READ_REGISTERS = 125  # Modbus limit for one read of holding registers


class DataType(enum.StrEnum):
    UINT16 = "uint16"
    INT16 = "int16"
    UINT32 = "uint32"
    INT32 = "int32"
    FLOAT32 = "float32"
    STRING = "string"

    @property
    def registers(self) -> int:
        """Registers one value takes (strings say their own length)."""
        return {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2, "string": 0}[self]

    @property
    def integer(self) -> bool:
        return self in (DataType.UINT16, DataType.INT16, DataType.UINT32, DataType.INT32)

    @property
    def bounds(self) -> tuple[int, int]:
        """Raw value range of an integer type."""
        return {
            DataType.UINT16: (0, 0xFFFF),
            DataType.INT16: (-0x8000, 0x7FFF),
            DataType.UINT32: (0, 0xFFFF_FFFF),
            DataType.INT32: (-0x8000_0000, 0x7FFF_FFFF),
        }[self]


_PYMODBUS_TYPES = {
    DataType.UINT16: ModbusClientMixin.DATATYPE.UINT16,
    DataType.INT16: ModbusClientMixin.DATATYPE.INT16,
    DataType.UINT32: ModbusClientMixin.DATATYPE.UINT32,
    DataType.INT32: ModbusClientMixin.DATATYPE.INT32,
    DataType.FLOAT32: ModbusClientMixin.DATATYPE.FLOAT32,
    DataType.STRING: ModbusClientMixin.DATATYPE.STRING,
}


class Access(enum.StrEnum):
    R = "r"
    W = "w"
    RW = "rw"

    @property
    def readable(self) -> bool:
        return self is not Access.W

    @property
    def writable(self) -> bool:
        return self is not Access.R


class Group(enum.StrEnum):
    """The sections of a map file. Identity and status are read only."""

    IDENTITY = "identity"
    CONTROL = "control"
    STATUS = "status"


REQUIRED: dict[Group, tuple[str, ...]] = {
    Group.IDENTITY: ("model", "serial_number", "firmware", "rated_max_force"),
    Group.CONTROL: ("target_force", "command", "heartbeat", "heartbeat_timeout_ms"),
    Group.STATUS: ("measured_force", "target_echo", "status", "fault_code"),
}
# Single-fault safety entries: optional, but a map without them is refused for treatment unless
# the safety config allows that table without them (devices.loop).
OPTIONAL: dict[str, tuple[Group, Access]] = {
    "redundant_force": (Group.STATUS, Access.R),  # second, independent force channel
    "sample_counter": (Group.STATUS, Access.R),  # table-side count of load-cell samples
    "force_limit": (Group.CONTROL, Access.RW),  # session force limit; written, then read back
}
FORCE_ENTRIES = frozenset(
    {
        "rated_max_force",
        "target_force",
        "measured_force",
        "target_echo",
        "redundant_force",
        "force_limit",
    }
)
STRING_ENTRIES = frozenset({"model", "serial_number", "firmware", "manufacturer"})
CODE_ENTRIES = frozenset({"command", "heartbeat", "status", "fault_code", "sample_counter"})
STATUS_BITS = (
    "running",
    "ready",
    "released",
    "fault",
    "stop_switch_pressed",
    "stop_switch_connected",
    "watchdog_tripped",
)
OPTIONAL_STATUS_BITS = ("operator_stop_pressed",)  # the operator's stop input, if the table has one
COMMANDS = ("none", "start", "stop_controlled", "release", "clear_fault")
UNITS = ("", "N", "lbf", "kgf", "ms", "s")
_ENTRY_KEYS = {
    "address",
    "type",
    "length",
    "scale",
    "unit",
    "access",
    "description",
    "bits",
    "values",
}
_DEVICE_KEYS = {"name", "description", "word_order", "string_encoding"}


@dataclass(frozen=True)
class Entry:
    """One named value: where it lives, how it is encoded and what it means."""

    name: str
    group: Group
    address: int
    type: DataType
    length: int
    scale: float
    unit: str
    access: Access
    word_order: Literal["big", "little"] = "big"
    string_encoding: str = "ascii"
    description: str = ""
    bits: Mapping[str, int] = field(default_factory=dict)
    values: Mapping[str, int] = field(default_factory=dict)

    @property
    def end(self) -> int:
        """First address after this entry."""
        return self.address + self.length

    @property
    def label(self) -> str:
        return f"{self.name} (register {self.address})"

    def decode(self, registers: Sequence[int]) -> float | int | str:
        """The physical value (raw * scale) held in ``registers``; ValueError if they are not one."""
        if len(registers) != self.length:
            raise ValueError(
                f"{self.label}: expected {self.length} registers, got {len(registers)}"
            )
        word_order = "big" if self.type is DataType.STRING else self.word_order
        try:
            raw = ModbusClientMixin.convert_from_registers(
                list(registers), _PYMODBUS_TYPES[self.type], word_order, self.string_encoding
            )
        except (ModbusException, UnicodeDecodeError) as exc:
            raise ValueError(f"{self.label}: cannot decode {list(registers)}: {exc}") from None
        if isinstance(raw, str):
            return raw.rstrip(" ")
        if not isinstance(raw, int | float):
            raise ValueError(f"{self.label}: decoded to {raw!r}, not a number")
        if self.type.integer and self.scale == 1.0:
            return int(raw)
        return raw * self.scale

    def encode(self, value: float | int | str) -> list[int]:
        """Registers holding the physical ``value``; ConfigError if the type cannot hold it."""
        where = f"register {self.label}"
        if self.type is DataType.STRING:
            text = str(value)
            try:
                data = text.encode(self.string_encoding)
            except UnicodeEncodeError:
                raise ConfigError(where, f"{text!r} is not {self.string_encoding}") from None
            if len(data) > 2 * self.length:
                raise ConfigError(where, f"{text!r} is longer than {2 * self.length} characters")
            regs = ModbusClientMixin.convert_to_registers(
                text, _PYMODBUS_TYPES[self.type], "big", self.string_encoding
            )
            return regs + [0] * (self.length - len(regs))
        if isinstance(value, str) or not math.isfinite(value):
            raise ConfigError(where, f"{value!r} is not a finite number")
        raw: float | int = value / self.scale
        if self.type.integer:
            raw = round(raw)
            low, high = self.type.bounds
            if not low <= raw <= high:
                raise ConfigError(
                    where,
                    f"{value} {self.unit} is raw {raw}, outside {self.type.value} {low}..{high}",
                )
        return ModbusClientMixin.convert_to_registers(
            raw, _PYMODBUS_TYPES[self.type], self.word_order
        )

    def decode_force(self, registers: Sequence[int]) -> float:
        """A force entry's value in newtons."""
        value = self.decode(registers)
        if isinstance(value, str):
            raise ValueError(f"{self.label}: a force cannot be text")
        if not math.isfinite(value):
            # A float register can hold NaN or infinity; no comparison with a limit would ever
            # trip on it, so it must never reach the supervisor as a force.
            raise ValueError(f"{self.label}: {value!r} is not a finite force")
        return float(value) * ForceUnit(self.unit).newtons

    def encode_force(self, force_n: float) -> list[int]:
        return self.encode(force_n / ForceUnit(self.unit).newtons)

    def code_name(self, raw: int) -> str | None:
        """The name of a command or fault value, if the map names it."""
        for name, value in self.values.items():
            if value == raw:
                return name
        return None


@dataclass(frozen=True)
class RegisterMap:
    """A validated register map. ``entries`` are keyed by their stable names."""

    name: str
    source: str
    description: str
    word_order: Literal["big", "little"]
    entries: Mapping[str, Entry]

    def __getitem__(self, name: str) -> Entry:
        return self.entries[name]

    def group(self, group: Group) -> list[Entry]:
        """A section's entries in address order."""
        return sorted(
            (e for e in self.entries.values() if e.group is group), key=lambda e: e.address
        )

    @property
    def status_span(self) -> tuple[int, int]:
        """Start address and register count of the status block (one read gets it all)."""
        status = self.group(Group.STATUS)
        return status[0].address, status[-1].end - status[0].address

    @property
    def safety_features(self) -> SafetyFeatures:
        """The single-fault safety features this map gives the table."""
        return SafetyFeatures(
            redundant_force="redundant_force" in self.entries,
            force_limit="force_limit" in self.entries,
            sample_counter="sample_counter" in self.entries,
            operator_stop="operator_stop_pressed" in self.entries["status"].bits,
        )

    @property
    def fault_names(self) -> dict[int, str]:
        """Device fault code -> fault vocabulary name (devices.faults), from the map's values."""
        return {code: name for name, code in self["fault_code"].values.items()}

    def entry_at(self, address: int) -> Entry | None:
        """The entry holding register ``address``, if any."""
        for entry in self.entries.values():
            if entry.address <= address < entry.end:
                return entry
        return None


def runs(entries: Iterable[Entry]) -> list[list[Entry]]:
    """Entries grouped into address-contiguous runs of at most 125 registers (one read each)."""
    result: list[list[Entry]] = []
    for entry in sorted(entries, key=lambda e: e.address):
        current = result[-1] if result else None
        if (
            current
            and current[-1].end == entry.address
            and entry.end - current[0].address <= MAX_READ_REGISTERS
        ):
            current.append(entry)
        else:
            result.append([entry])
    return result


def available_maps() -> list[str]:
    """Names of the maps shipped in ``configs/devices``."""
    folder = config_root().joinpath("devices")
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_register_map(name_or_path: str | Path) -> RegisterMap:
    """Load a map by name (``configs/devices/NAME.toml``) or from a file path, and validate it."""
    text_name = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text_name or text_name.endswith(".toml"):
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(f"register map {text_name!r}", "no such file")
        return parse_register_map(path.read_text(encoding="utf-8"), str(path))
    resource = config_file("devices", f"{text_name}.toml")
    if not resource.is_file():
        known = ", ".join(available_maps()) or "none"
        raise ConfigError(
            f"register map {text_name!r}",
            f"unknown map; known maps in configs/devices: {known} (or give a path to a .toml file)",
        )
    return parse_register_map(
        resource.read_text(encoding="utf-8"), f"configs/devices/{text_name}.toml"
    )


def parse_register_map(text: str, source: str) -> RegisterMap:
    """Validate map file text; ``source`` names the file in every error."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, f"not valid TOML: {exc}") from None
    for key in doc:
        if key != "device" and key not in Group.__members__.values():
            raise ConfigError(
                source,
                f"unknown section [{key}]; sections are [device], [identity], [control], [status]",
            )
    device = doc.get("device", {})
    if not isinstance(device, dict):
        raise ConfigError(source, "[device] must be a table")
    for key in device:
        if key not in _DEVICE_KEYS:
            raise ConfigError(
                f"{source} [device]",
                f"unknown key {key!r}; allowed: {', '.join(sorted(_DEVICE_KEYS))}",
            )
    word_order = device.get("word_order", "big")
    if word_order not in ("big", "little"):
        raise ConfigError(
            f"{source} [device]", f"word_order={word_order!r} must be 'big' or 'little'"
        )
    encoding = device.get("string_encoding", "ascii")
    try:
        "".encode(encoding)
    except (LookupError, TypeError):
        raise ConfigError(
            f"{source} [device]", f"string_encoding={encoding!r} is not a known encoding"
        ) from None

    entries: dict[str, Entry] = {}
    for group in Group:
        section = doc.get(group.value, {})
        if not isinstance(section, dict):
            raise ConfigError(source, f"[{group.value}] must be a table of entries")
        for name, raw in section.items():
            if name in entries:
                raise ConfigError(
                    f"{source} [{group.value}.{name}]",
                    f"name already used in [{entries[name].group.value}.{name}]; names must be unique",
                )
            entries[name] = _parse_entry(source, group, name, raw, word_order, encoding)

    _check_required(source, entries)
    _check_overlaps(source, entries.values())
    _check_status_contiguous(source, [e for e in entries.values() if e.group is Group.STATUS])
    return RegisterMap(
        name=str(device.get("name", Path(source).stem)),
        source=source,
        description=str(device.get("description", "")),
        word_order=word_order,
        entries=entries,
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_entry(
    source: str,
    group: Group,
    name: str,
    raw: Any,
    word_order: Literal["big", "little"],
    encoding: str,
) -> Entry:
    where = f"{source} [{group.value}.{name}]"
    if not isinstance(raw, dict):
        raise ConfigError(where, "an entry must be a table with address, type and access")
    for key in raw:
        if key not in _ENTRY_KEYS:
            raise ConfigError(
                where, f"unknown key {key!r}; allowed: {', '.join(sorted(_ENTRY_KEYS))}"
            )

    address = raw.get("address")
    if not isinstance(address, int) or isinstance(address, bool) or not 0 <= address <= 0xFFFF:
        raise ConfigError(where, f"address={address!r} must be a whole number in 0..65535")

    type_name = raw.get("type")
    try:
        dtype = DataType(str(type_name))
    except ValueError:
        known = ", ".join(t.value for t in DataType)
        raise ConfigError(where, f"unknown data type {type_name!r}; known types: {known}") from None

    if dtype is DataType.STRING:
        length = raw.get("length")
        if (
            not isinstance(length, int)
            or isinstance(length, bool)
            or not 1 <= length <= MAX_READ_REGISTERS
        ):
            raise ConfigError(
                where, f"length={length!r}: a string needs a length in registers, 1..125"
            )
    else:
        if "length" in raw:
            raise ConfigError(
                where,
                f"length is only for strings; {dtype.value} takes {dtype.registers} register(s)",
            )
        length = dtype.registers
    if address + length > 0x10000:
        raise ConfigError(where, f"address {address} + {length} registers runs past 65535")

    scale = raw.get("scale", 1.0)
    if not _is_number(scale) or not math.isfinite(scale) or scale == 0:
        raise ConfigError(where, f"scale={scale!r} must be a finite non-zero number")
    if dtype is DataType.STRING and scale != 1.0:
        raise ConfigError(where, "a string has no scale")

    unit = raw.get("unit", "")
    if unit not in UNITS:
        raise ConfigError(
            where, f"unknown unit {unit!r}; known units: {', '.join(repr(u) for u in UNITS)}"
        )
    if name in FORCE_ENTRIES and unit not in ("N", "lbf", "kgf"):
        raise ConfigError(where, f"unit={unit!r}: a force needs a force unit, N, lbf or kgf")
    if name == "heartbeat_timeout_ms" and unit != "ms":
        raise ConfigError(
            where, f"unit={unit!r}: the heartbeat timeout is in ms (use scale for steps)"
        )
    if name in CODE_ENTRIES | STRING_ENTRIES and unit:
        raise ConfigError(where, f"unit={unit!r}: {name} has no unit")

    if name in STRING_ENTRIES and dtype is not DataType.STRING:
        raise ConfigError(where, f"type={dtype.value!r}: {name} must be a string")
    if name in FORCE_ENTRIES | {"heartbeat_timeout_ms"} and dtype is DataType.STRING:
        raise ConfigError(where, f"type='string': {name} must be a number")
    if name in CODE_ENTRIES and dtype not in (DataType.UINT16, DataType.INT16):
        raise ConfigError(where, f"type={dtype.value!r}: {name} must be uint16 or int16")
    if name in CODE_ENTRIES and scale != 1.0:
        raise ConfigError(where, f"scale={scale!r}: {name} is a code and cannot be scaled")

    access_name = raw.get("access")
    try:
        access = Access(str(access_name))
    except ValueError:
        raise ConfigError(where, f"access={access_name!r} must be 'r', 'w' or 'rw'") from None
    if group in (Group.STATUS, Group.IDENTITY) and access is not Access.R:
        raise ConfigError(
            where, f"access={access.value!r}: {group.value} registers are read only ('r')"
        )
    if group is Group.CONTROL and name in REQUIRED[Group.CONTROL] and not access.writable:
        raise ConfigError(where, f"access='r': {name} is a control register and must be writable")
    if name in OPTIONAL:
        place, needed = OPTIONAL[name]
        if group is not place:
            raise ConfigError(where, f"{name} belongs in [{place.value}], not [{group.value}]")
        if access is not needed:
            raise ConfigError(
                where, f"access={access.value!r}: {name} must be {needed.value!r} (it is read back)"
            )

    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(where, "description must be text")
    bits = _parse_bits(where, name, raw.get("bits"), dtype)
    values = _parse_values(where, name, raw.get("values"), dtype)
    return Entry(
        name=name,
        group=group,
        address=address,
        type=dtype,
        length=length,
        scale=float(scale),
        unit=unit,
        access=access,
        word_order=word_order,
        string_encoding=encoding,
        description=description,
        bits=bits,
        values=values,
    )


def _parse_bits(where: str, name: str, raw: Any, dtype: DataType) -> dict[str, int]:
    if raw is None:
        if name == "status":
            raise ConfigError(where, f"status needs a [bits] table naming {', '.join(STATUS_BITS)}")
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(where, "bits must be a table of name = bit number")
    if dtype not in (DataType.UINT16, DataType.INT16):
        raise ConfigError(where, "bits are only for 16-bit integer registers")
    seen: dict[int, str] = {}
    for bit_name, bit in raw.items():
        if name == "status" and bit_name not in STATUS_BITS + OPTIONAL_STATUS_BITS:
            known = ", ".join(STATUS_BITS + OPTIONAL_STATUS_BITS)
            raise ConfigError(where, f"unknown status bit {bit_name!r}; known bits: {known}")
        if not isinstance(bit, int) or isinstance(bit, bool) or not 0 <= bit <= 15:
            raise ConfigError(where, f"bit {bit_name}={bit!r} must be a bit number 0..15")
        if bit in seen:
            raise ConfigError(where, f"bits {seen[bit]} and {bit_name} both use bit {bit}")
        seen[bit] = bit_name
    if name == "status":
        missing = [b for b in STATUS_BITS if b not in raw]
        if missing:
            raise ConfigError(where, f"missing required status bit(s): {', '.join(missing)}")
    return dict(raw)


def _parse_values(where: str, name: str, raw: Any, dtype: DataType) -> dict[str, int]:
    if raw is None:
        if name in ("command", "fault_code"):
            raise ConfigError(where, f"{name} needs a [values] table naming its codes")
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(where, "values must be a table of name = number")
    if not dtype.integer:
        raise ConfigError(where, "values are only for integer registers")
    low, high = dtype.bounds
    seen: dict[int, str] = {}
    for value_name, value in raw.items():
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ConfigError(
                where, f"value {value_name}={value!r} must be a whole number in {low}..{high}"
            )
        if value in seen:
            raise ConfigError(where, f"values {seen[value]} and {value_name} are both {value}")
        seen[value] = value_name
    if name == "command":
        missing = [c for c in COMMANDS if c not in raw]
        if missing:
            raise ConfigError(where, f"missing required command value(s): {', '.join(missing)}")
    if name == "fault_code" and raw.get(NONE) != 0:
        raise ConfigError(where, "fault_code values need none = 0")
    if name == "fault_code":
        unknown = [n for n in raw if n != NONE and n not in DEVICE_FAULTS]
        if unknown:
            raise ConfigError(
                where,
                f"fault name(s) {', '.join(unknown)} not in the fault vocabulary; "
                f"name each code after one of: {', '.join(sorted(DEVICE_FAULTS))}",
            )
    return dict(raw)


def _check_required(source: str, entries: Mapping[str, Entry]) -> None:
    for group, names in REQUIRED.items():
        for name in names:
            entry = entries.get(name)
            if entry is None:
                raise ConfigError(source, f"missing required entry [{group.value}.{name}]")
            if entry.group is not group:
                raise ConfigError(
                    f"{source} [{entry.group.value}.{name}]",
                    f"{name} belongs in [{group.value}], not [{entry.group.value}]",
                )


def _check_overlaps(source: str, entries: Iterable[Entry]) -> None:
    ordered = sorted(entries, key=lambda e: e.address)
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after.address < before.end:
            raise ConfigError(
                f"{source} [{after.group.value}.{after.name}]",
                f"address {after.address} overlaps [{before.group.value}.{before.name}] "
                f"(registers {before.address}..{before.end - 1}); entries must not overlap",
            )


def _check_status_contiguous(source: str, status: list[Entry]) -> None:
    ordered = sorted(status, key=lambda e: e.address)
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after.address != before.end:
            raise ConfigError(
                f"{source} [status.{after.name}]",
                f"status registers must be contiguous so one read gets them all; "
                f"{before.name} ends at {before.end - 1} but {after.name} starts at {after.address}",
            )
    if ordered and ordered[-1].end - ordered[0].address > MAX_READ_REGISTERS:
        raise ConfigError(
            source, f"the status block is longer than {MAX_READ_REGISTERS} registers (one read)"
        )

"""Register maps: the shipped maps load, values convert exactly, and every malformed map is refused
with a message naming the file, the entry and the rule."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from devices.configfiles import config_file
from devices.errors import ConfigError
from devices.registermap import (
    REQUIRED,
    STATUS_BITS,
    Access,
    DataType,
    Entry,
    Group,
    available_maps,
    load_register_map,
)

GENERIC = config_file("devices", "generic-v1.toml").read_text(encoding="utf-8")


def entry(dtype: DataType, word_order: str = "big", scale: float = 1.0, length: int = 0) -> Entry:
    return Entry(
        name="x",
        group=Group.CONTROL,
        address=10,
        type=dtype,
        length=length or dtype.registers,
        scale=scale,
        unit="",
        access=Access.RW,
        word_order=word_order,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("name", ["generic-v1", "tractek-lt200"])
def test_shipped_maps_load_with_every_required_name(name: str) -> None:
    rmap = load_register_map(name)
    for group, names in REQUIRED.items():
        assert {n for n in names} <= {e.name for e in rmap.group(group)}
    assert set(STATUS_BITS) <= set(rmap["status"].bits)
    start, count = rmap.status_span
    assert sum(e.length for e in rmap.group(Group.STATUS)) == count
    assert rmap.entry_at(start) is not None and rmap.entry_at(start + count) is None


def test_available_maps_lists_the_shipped_files() -> None:
    assert {"generic-v1", "tractek-lt200"} <= set(available_maps())


def test_a_map_loads_from_a_path_too(tmp_path: Path) -> None:
    path = tmp_path / "copy.toml"
    path.write_text(GENERIC)
    assert load_register_map(path)["measured_force"].address == 200


@pytest.mark.parametrize(
    ("dtype", "word_order", "value", "registers"),
    [
        (DataType.UINT16, "big", 65535, [0xFFFF]),
        (DataType.INT16, "big", -2, [0xFFFE]),
        (DataType.UINT32, "big", 0x12345678, [0x1234, 0x5678]),
        (DataType.UINT32, "little", 0x12345678, [0x5678, 0x1234]),
        (DataType.INT32, "big", -2, [0xFFFF, 0xFFFE]),
        (DataType.FLOAT32, "big", 900.0, [0x4461, 0x0000]),
        (DataType.FLOAT32, "little", 900.0, [0x0000, 0x4461]),
    ],
)
def test_numbers_convert_exactly_in_the_stated_word_order(
    dtype: DataType, word_order: str, value: float, registers: list[int]
) -> None:
    e = entry(dtype, word_order)
    assert e.encode(value) == registers
    assert e.decode(registers) == value


def test_scaled_force_in_tenths_of_lbf_reads_back_in_newtons() -> None:
    rmap = load_register_map("tractek-lt200")
    measured = rmap["measured_force"]
    assert measured.encode_force(444.82216152605) == [1000]  # 100.0 lbf
    assert measured.decode_force([1000]) == pytest.approx(444.822, abs=1e-3)


def test_strings_pad_with_nul_and_refuse_overflow() -> None:
    e = entry(DataType.STRING, length=3)
    assert e.encode("AB") == [0x4142, 0, 0]
    assert e.decode([0x4142, 0x4300, 0]) == "ABC"
    with pytest.raises(ConfigError, match="longer than 6 characters"):
        e.encode("ABCDEFG")


def test_values_that_do_not_fit_the_register_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"raw 70000, outside uint16 0\.\.65535"):
        entry(DataType.UINT16).encode(70000)
    with pytest.raises(ConfigError, match="not a finite number"):
        entry(DataType.FLOAT32).encode(float("nan"))


@pytest.mark.parametrize("registers", [[0x7FC0, 0x0000], [0x7F80, 0x0000], [0xFF80, 0x0000]])
def test_a_force_register_holding_nan_or_infinity_is_refused(registers: list[int]) -> None:
    force = replace(entry(DataType.FLOAT32), unit="N")
    with pytest.raises(ValueError, match="is not a finite force"):
        force.decode_force(registers)


SECTION_MEASURED = '[status.measured_force]\naddress = 200\ntype = "float32"\nscale = 1.0\nunit = "N"\naccess = "r"'


@pytest.mark.parametrize(
    ("old", "new", "entry_name", "rule"),
    [
        (
            "[identity.serial_number]\naddress = 8",
            "[identity.serial_number]\naddress = 4",
            "[identity.serial_number]",
            "overlaps [identity.model]",
        ),
        (
            '[identity.rated_max_force]\naddress = 32\ntype = "float32"',
            '[identity.rated_max_force]\naddress = 32\ntype = "double"',
            "[identity.rated_max_force]",
            "unknown data type 'double'",
        ),
        (
            "status.fault_code",
            "status.fault_kode",
            "",
            "missing required entry [status.fault_code]",
        ),
        (
            SECTION_MEASURED,
            SECTION_MEASURED.replace('access = "r"', 'access = "rw"'),
            "[status.measured_force]",
            "status registers are read only",
        ),
        (
            '[identity.model]\naddress = 0\ntype = "string"\nlength = 8\naccess = "r"',
            '[identity.model]\naddress = 0\ntype = "string"\nlength = 8\naccess = "w"',
            "[identity.model]",
            "identity registers are read only",
        ),
        (
            SECTION_MEASURED,
            SECTION_MEASURED.replace("scale = 1.0", "scale = 0"),
            "[status.measured_force]",
            "scale=0 must be a finite non-zero number",
        ),
        (
            SECTION_MEASURED,
            SECTION_MEASURED.replace('unit = "N"', 'unit = "furlong"'),
            "[status.measured_force]",
            "unknown unit 'furlong'",
        ),
        (
            SECTION_MEASURED,
            SECTION_MEASURED.replace('unit = "N"', 'unit = "ms"'),
            "[status.measured_force]",
            "a force needs a force unit",
        ),
        (
            "[status.target_echo]\naddress = 202",
            "[status.target_echo]\naddress = 210",
            "[status.status]",
            "measured_force ends at 201 but status starts at 204",
        ),
        (
            "watchdog_tripped = 6 ",
            "",
            "[status.status]",
            "missing required status bit(s): watchdog_tripped",
        ),
        ("fault = 3 ", "fault = 2 ", "[status.status]", "bits released and fault both use bit 2"),
        (
            "clear_fault = 4 ",
            "",
            "[control.command]",
            "missing required command value(s): clear_fault",
        ),
        (
            '[control.command]\naddress = 102\ntype = "uint16"\naccess = "rw"',
            '[control.command]\naddress = 102\ntype = "uint16"\naccess = "r"',
            "[control.command]",
            "must be writable",
        ),
        (
            '[control.heartbeat]\naddress = 103\ntype = "uint16"',
            '[control.heartbeat]\naddress = 103\ntype = "float32"',
            "[control.heartbeat]",
            "must be uint16 or int16",
        ),
        (
            "[identity.firmware]\naddress = 16",
            "[identity.firmware]\naddress = 70000",
            "[identity.firmware]",
            "address=70000 must be a whole number in 0..65535",
        ),
        ('word_order = "big"', 'word_order = "middle"', "[device]", "word_order='middle'"),
        ("[device]", "[device]\ncolour = 'red'", "[device]", "unknown key 'colour'"),
        ("[device]", "[gadget]\nx = 1\n[device]", "", "unknown section [gadget]"),
        ("[device]", "[device", "", "not valid TOML"),
        (
            "motor = 2 ",
            "motor_trouble = 2 ",
            "[status.fault_code]",
            "fault name(s) motor_trouble not in the fault vocabulary",
        ),
        (
            "operator_stop_pressed = 7 ",
            "operator_stopped = 7 ",
            "[status.status]",
            "unknown status bit 'operator_stopped'",
        ),
        (
            '[control.force_limit]\naddress = 105\ntype = "float32"\nscale = 1.0\nunit = "N"\n'
            'access = "rw"',
            '[control.force_limit]\naddress = 105\ntype = "float32"\nscale = 1.0\nunit = "N"\n'
            'access = "w"',
            "[control.force_limit]",
            "force_limit must be 'rw' (it is read back)",
        ),
        (
            '[status.sample_counter]\naddress = 207\ntype = "uint16"',
            '[status.sample_counter]\naddress = 207\ntype = "float32"',
            "[status.sample_counter]",
            "must be uint16 or int16",
        ),
    ],
)
def test_malformed_map_is_refused_naming_file_entry_and_rule(
    tmp_path: Path, old: str, new: str, entry_name: str, rule: str
) -> None:
    assert old in GENERIC, f"test setup: {old!r} not in generic-v1.toml"
    path = tmp_path / "broken.toml"
    path.write_text(GENERIC.replace(old, new))
    with pytest.raises(ConfigError) as caught:
        load_register_map(path)
    message = str(caught.value)
    assert str(path) in message
    assert entry_name in message
    assert rule in message


@pytest.mark.parametrize("name", ["generic-v1", "tractek-lt200"])
def test_shipped_maps_have_the_single_fault_features_in_one_status_read(name: str) -> None:
    rmap = load_register_map(name)
    assert rmap.safety_features.missing == []
    start, count = rmap.status_span
    for entry in ("measured_force", "redundant_force", "sample_counter", "status"):
        assert start <= rmap[entry].address < start + count  # both channels in one request
    names = set(rmap.fault_names.values())
    assert {"watchdog", "force_limit", "operator_stop", "overload"} <= names


def test_a_map_without_the_single_fault_entries_loads_and_says_what_it_lacks(
    tmp_path: Path,
) -> None:
    text = GENERIC
    for section in ("[status.redundant_force]", "[status.sample_counter]", "[control.force_limit]"):
        head, _, rest = text.partition(section)
        _, _, tail = rest.partition("\n\n")
        text = head + tail
    text = text.replace("operator_stop_pressed = 7 ", "")
    path = tmp_path / "older.toml"
    path.write_text(text)
    features = load_register_map(path).safety_features
    assert features.missing == [
        "a second, independent force channel",
        "a force limit enforced by the table",
        "a table-side sample counter",
        "an operator stop input",
    ]


def test_unknown_map_name_lists_the_known_maps() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown map; known maps in configs/devices: .*generic-v1"
    ):
        load_register_map("no-such-table")


def test_missing_map_file_is_named() -> None:
    with pytest.raises(ConfigError, match=r"'/nowhere/x.toml'.*no such file"):
        load_register_map("/nowhere/x.toml")

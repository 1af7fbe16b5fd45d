import pytest

from devices.errors import ConfigError
from devices.urls import parse_table_url


def test_tcp_url_parses() -> None:
    address = parse_table_url("modbus+tcp://127.0.0.1:5020?unit=3&map=generic-v1")
    assert (address.host, address.port, address.params["map"]) == ("127.0.0.1", 5020, "generic-v1")
    assert address.int_param("unit", 1, 1, 247) == 3
    assert parse_table_url("modbus+tcp://127.0.0.1?unit=255").unit() == 255  # "this device"


def test_rtu_and_line_urls_take_a_device_path() -> None:
    assert parse_table_url("modbus+rtu:///dev/ttyUSB0?baud=19200&unit=1").path == "/dev/ttyUSB0"
    assert parse_table_url("line:///dev/ttyS1?baud=9600").baud(9600) == 9600


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("127.0.0.1:502", "expected scheme://"),
        ("http://x", "unknown scheme 'http'"),
        ("modbus+tcp://:502", "needs a host"),
        ("modbus+tcp://h:99999", "port must be a number"),
        ("modbus+tcp://h:502?unit=0", "unit=0 is outside 1..247"),
        ("modbus+rtu:///dev/ttyS0?unit=255", "255 only on modbus+tcp"),
        ("modbus+tcp://h:502?unit=x", "not a whole number"),
        ("modbus+tcp://h:502?colour=red", "unknown parameter 'colour'"),
        ("modbus+tcp://h:502?unit=1&unit=2", "given twice"),
        ("modbus+rtu://dev/ttyUSB0", "three slashes"),
        ("modbus+rtu:///dev/ttyUSB0?baud=12345", "not a standard rate"),
        ("modbus+rtu:///dev/ttyUSB0?parity=X", "must be N, E or O"),
        ("line:///", "needs a serial device path"),
        ("sim://", "needs a name"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_table_url(url)
    assert fragment in str(info.value)
    assert "table URL" in str(info.value)

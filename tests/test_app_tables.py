"""sim:// tables open the real driver against an in-process simulator on each wire."""

import pytest
from typer.testing import CliRunner

from devices.clock import ScaledClock
from devices.contract import StopKind
from devices.errors import ConfigError
from traction.cli import app
from traction.exitcodes import Exit
from traction.faults import parse_fault
from traction.tables import open_table


@pytest.mark.parametrize(
    "url",
    ["sim://lumbar", "sim://cervical?transport=rtu&baud=115200", "sim://lumbar?transport=line"],
)
async def test_sim_tables_open_over_each_transport(url: str) -> None:
    clock = ScaledClock(4.0)
    async with open_table(url, clock, name="t1") as opened:
        info = await opened.table.identify()
        assert info.serial_number.startswith("SIM-")
        assert opened.simulated and opened.name == "t1"
        await opened.table.set_target(100.0)
        await opened.table.start()
        state = await opened.table.read_state()
        assert state.running and state.target_force_n == pytest.approx(100.0, abs=0.5)
        await opened.table.stop(StopKind.RELEASE)
        assert (await opened.table.read_state()).released
        model = opened.models[1]
        assert model.released and not model.running


async def test_unknown_sim_transport_is_refused() -> None:
    with pytest.raises(ConfigError, match="transport='usb' must be tcp, rtu or line"):
        async with open_table("sim://lumbar?transport=usb", ScaledClock()):
            pass


def test_fault_schedule_parses_and_refuses_nonsense() -> None:
    assert parse_fault("link-drop@60:2").table == 2
    with pytest.raises(ConfigError, match="unknown fault 'melt'"):
        parse_fault("melt@3")
    with pytest.raises(ConfigError, match="KIND@SECONDS"):
        parse_fault("stop-switch")


def test_simulate_command_serves_and_injects_a_fault() -> None:
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--port",
            "0",
            "--duration",
            "1",
            "--time-scale",
            "4",
            "--fault",
            "stop-switch@0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "modbus+tcp://127.0.0.1:" in result.output
    assert "injected stop-switch on table 1" in result.output


def test_simulate_command_refuses_a_bad_fault_with_usage_exit() -> None:
    result = CliRunner().invoke(app, ["simulate", "--fault", "melt@3"])
    assert result.exit_code == Exit.USAGE
    assert "unknown fault 'melt'" in result.output

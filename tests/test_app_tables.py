"""sim:// tables open the real driver against an in-process simulator on each wire."""

import asyncio
import os
import threading

import pytest
from pymodbus.client import ModbusTcpClient
from typer.testing import CliRunner, Result

from devices.clock import ScaledClock
from devices.contract import StopKind
from devices.errors import ConfigError
from devices.urls import parse_table_url
from simulators.priority import BESIDE_A_TABLE_NICENESS, TABLE_NICENESS, answer_like_a_table
from traction.cli import app
from traction.exitcodes import Exit
from traction.faults import parse_fault
from traction.tables import open_table


def may_raise_priority() -> bool:
    """Whether this process may raise a thread's priority, asked in a thread of its own: a raised
    thread stays raised, and this one runs the rest of the worker's tests."""
    allowed: list[bool] = []
    probe = threading.Thread(target=lambda: allowed.append(answer_like_a_table()))
    probe.start()
    probe.join()
    return allowed[0]


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


async def test_a_sim_table_answers_while_the_process_event_loop_is_blocked() -> None:
    """A simulated table answers from a thread of its own, as a real one from its controller: a
    host whose event loop is busy (a page render, an ORM burst) does not silence it."""
    async with open_table("sim://lumbar", ScaledClock(), name="t1") as opened:
        url = parse_table_url(opened.table.url)  # type: ignore[attr-defined]
        client = ModbusTcpClient(url.host, port=url.port)
        answers: list[bool] = []

        def read_without_an_event_loop() -> None:
            client.connect()
            answers.append(not client.read_holding_registers(0, count=2, device_id=1).isError())
            client.close()

        reader = threading.Thread(target=read_without_an_event_loop)
        reader.start()
        reader.join(timeout=10.0)  # blocks the event loop the table was opened on, all along
        assert answers == [True], "the simulated table did not answer while the loop was blocked"


def test_the_thread_that_opens_a_simulated_table_runs_above_ordinary_programs_below_the_table() -> (
    None
):
    """Raised enough that a busy machine does not deschedule it while it holds the interpreter
    lock the simulator needs; not so far that it competes with the treatment process."""
    assert TABLE_NICENESS < BESIDE_A_TABLE_NICENESS < 0
    seen: dict[str, int] = {}

    async def open_one() -> None:
        async with open_table("sim://lumbar", ScaledClock(), name="t1") as opened:
            seen["opener"] = os.getpriority(os.PRIO_PROCESS, 0)
            seen["table"] = await opened.in_simulator(lambda: os.getpriority(os.PRIO_PROCESS, 0))

    def ordinary_thread() -> None:
        os.setpriority(os.PRIO_PROCESS, 0, 0)  # lowering a thread's priority needs no privilege
        asyncio.run(open_one())

    thread = threading.Thread(target=ordinary_thread)
    thread.start()
    thread.join(timeout=30)
    if not may_raise_priority():
        pytest.skip("this process may not raise a thread's priority")
    assert seen == {"opener": BESIDE_A_TABLE_NICENESS, "table": TABLE_NICENESS}


async def test_faults_are_injected_on_the_simulator_thread_and_it_stops_with_the_table() -> None:
    clock = ScaledClock()
    async with open_table("sim://lumbar", clock, name="t1") as opened:
        where = await opened.in_simulator(lambda: threading.current_thread().name)
        assert where == "simulated tables" and where != threading.current_thread().name
        nice = await opened.in_simulator(lambda: os.getpriority(os.PRIO_PROCESS, 0))
        assert nice == TABLE_NICENESS or not may_raise_priority()  # unprivileged: kept its own
        await opened.in_simulator(lambda: opened.models[1].press_stop_switch(clock.now()))
        assert opened.models[1].stop_switch_pressed
        assert (await opened.table.read_state()).released
        url = parse_table_url(opened.table.url)  # type: ignore[attr-defined]
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(url.host, url.port)


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


def simulate(*args: str) -> Result:
    """``traction simulate`` in a thread of its own: it raises the thread it serves from to a
    table's priority, which must not outlive it in this worker's own thread (every later test of
    the worker would run ahead of the treatments beside it)."""
    done: list[Result] = []
    thread = threading.Thread(
        target=lambda: done.append(CliRunner().invoke(app, ["simulate", *args]))
    )
    thread.start()
    thread.join()
    return done[0]


def test_simulate_command_serves_and_injects_a_fault() -> None:
    result = simulate(
        "--port", "0", "--duration", "1", "--time-scale", "4", "--fault", "stop-switch@0.5"
    )
    assert result.exit_code == 0, result.output
    assert "modbus+tcp://127.0.0.1:" in result.output
    assert "injected stop-switch on table 1" in result.output


def test_simulate_command_refuses_a_bad_fault_with_usage_exit() -> None:
    result = simulate("--fault", "melt@3")
    assert result.exit_code == Exit.USAGE
    assert "unknown fault 'melt'" in result.output

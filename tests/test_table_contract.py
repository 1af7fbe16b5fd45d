"""The table contract, written once and run unchanged against Modbus TCP, Modbus RTU and line-v1.

Every test talks to ``devices.contract.Table`` only; the simulated model behind it injects the
device-side events a patient or the hardware would cause. Bounds are physics bounds (slew rate,
ramp rate, watchdog timeout) with generous margins, in session time on the shared scaled clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from contract_tables import TRANSPORTS, ContractRig, contract_rig, poll

from devices.contract import StopKind, Table, TableState
from devices.errors import DeviceRejected, LinkLost, TableTimeout
from devices.opening import open_device
from simulators.physics import FAULT_MOTOR, FAULT_NONE

FORCE_MARGIN_N = 15.0  # load-cell noise and offset, the damper's share, float steps
SETTLE_BAND_N = 10.0
WATCHDOG_S = 2.0  # session seconds; the spec's own is longer
WATCHDOG_MARGIN_S = 2.0  # a round trip or two of polling, in session time
LINK_BOUND_S = 5.0  # real seconds: the driver's timeout (0.5 s x 2 tries) with room to spare


@pytest.fixture(params=TRANSPORTS)
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[ContractRig]:
    async with contract_rig(request.param) as connected:
        yield connected


async def pull_to(rig: ContractRig, force_n: float) -> float:
    """Set a target, start, and wait until the force is near it; the session time of the start."""
    await rig.table.set_target(force_n)
    started = rig.clock.now()
    await rig.table.start()
    await poll(rig, lambda s: abs(s.measured_force_n - force_n) < 5.0)
    return started


async def test_identify_reports_the_simulated_spec(rig: ContractRig) -> None:
    assert isinstance(rig.table, Table)
    info = await rig.table.identify()
    spec = rig.model.spec
    assert (info.model, info.serial_number, info.firmware, info.manufacturer) == (
        spec.model,
        spec.serial_number,
        spec.firmware,
        spec.manufacturer,
    )
    assert info.rated_max_force_n == pytest.approx(spec.rated_max_force_n, abs=0.1)


async def test_an_idle_table_is_ready_and_released(rig: ContractRig) -> None:
    state = await rig.table.read_state()
    assert state.ready and state.released and not state.running
    assert state.fault == "none" and not state.faulted and not state.watchdog_tripped
    assert state.stop_switch_connected and not state.stop_switch_pressed
    assert state.measured_force_n < 5.0
    assert state.t <= rig.clock.now()


async def test_the_target_is_echoed_without_starting(rig: ContractRig) -> None:
    await rig.table.set_target(123.5)
    state = await rig.table.read_state()
    assert state.target_force_n == pytest.approx(123.5, abs=0.05)
    assert not state.running and state.released and state.measured_force_n < 5.0
    await rig.table.set_target(80.0)
    assert (await rig.table.read_state()).target_force_n == pytest.approx(80.0, abs=0.05)


async def test_force_rises_within_the_slew_limit_and_settles_at_the_target(
    rig: ContractRig,
) -> None:
    slew = rig.model.spec.slew_n_per_s
    await rig.table.set_target(250.0)
    before_start = rig.clock.now()
    await rig.table.start()
    rising = await poll(rig, lambda s: abs(s.measured_force_n - 250.0) < 5.0)
    for state in rising:
        assert state.running and not state.released
        assert state.measured_force_n <= slew * (state.t - before_start) + FORCE_MARGIN_N
    assert any(s.measured_force_n < 200.0 for s in rising)  # it rose; it did not jump

    for _ in range(8):
        await rig.table.heartbeat()
        state = await rig.table.read_state()
        assert abs(state.measured_force_n - 250.0) < SETTLE_BAND_N
        assert state.target_force_n == pytest.approx(250.0, abs=0.05) and state.running


async def test_a_controlled_stop_ramps_down_and_ends_released(rig: ContractRig) -> None:
    ramp = rig.model.spec.controlled_stop_n_per_s
    await pull_to(rig, 200.0)
    stop_sent = rig.clock.now()
    await rig.table.stop(StopKind.CONTROLLED)
    ramping = await poll(rig, lambda s: s.released and s.measured_force_n < 5.0)
    for state in ramping:
        # A ramp, not a drop: never below the ramp line (measured from before the stop was sent).
        floor = 200.0 - ramp * (state.t - stop_sent) - FORCE_MARGIN_N
        assert state.measured_force_n >= floor or state.released
    assert any(not s.released and s.measured_force_n < 150.0 for s in ramping)  # seen mid-ramp
    end = ramping[-1]
    assert not end.running and end.ready and end.fault == "none"


async def test_an_immediate_release_drops_the_force(rig: ContractRig) -> None:
    await pull_to(rig, 300.0)
    released_at = rig.clock.now()
    await rig.table.stop(StopKind.RELEASE)
    first = await rig.table.read_state()
    assert first.released and not first.running
    dropping = await poll(rig, lambda s: s.measured_force_n < 5.0, heartbeat=False)
    assert all(s.released for s in dropping)
    # Far faster than a controlled stop, which would need 300 N / ramp rate to get there.
    controlled_s = 300.0 / rig.model.spec.controlled_stop_n_per_s
    assert dropping[-1].t - released_at < controlled_s / 2


async def test_heartbeats_keep_it_running_and_their_loss_releases_it(rig: ContractRig) -> None:
    await rig.table.set_heartbeat_timeout(WATCHDOG_S)
    await pull_to(rig, 150.0)
    kept_until = rig.clock.now() + 2.5 * WATCHDOG_S
    kept = await poll(rig, lambda s: s.t > kept_until)
    assert all(s.running and not s.watchdog_tripped for s in kept)

    beat_sent = rig.clock.now()
    await rig.table.heartbeat()
    beat_done = rig.clock.now()
    silent = await poll(rig, lambda s: s.released, heartbeat=False)
    for state in silent:
        if state.t < beat_sent + WATCHDOG_S:  # read before the timeout could have lapsed
            assert state.running and not state.released
    tripped = silent[-1]
    assert tripped.t <= beat_done + WATCHDOG_S + WATCHDOG_MARGIN_S
    assert tripped.watchdog_tripped and tripped.fault == "watchdog"
    assert not tripped.running and not tripped.ready

    with pytest.raises(DeviceRejected):
        await rig.table.start()
    await rig.table.clear_fault()
    cleared = await rig.table.read_state()
    assert cleared.ready and not cleared.watchdog_tripped and cleared.fault == "none"


async def test_the_patient_stop_switch_releases_the_table(rig: ContractRig) -> None:
    await pull_to(rig, 150.0)
    rig.model.press_stop_switch(rig.clock.now())
    state = await rig.table.read_state()
    assert state.stop_switch_pressed and state.stop_switch_connected
    assert state.released and not state.running and not state.ready
    assert state.fault == "stop_switch"
    await poll(rig, lambda s: s.measured_force_n < 5.0, heartbeat=False)

    with pytest.raises(DeviceRejected):
        await rig.table.start()
    await rig.table.clear_fault()
    cleared = await rig.table.read_state()
    assert cleared.ready and not cleared.stop_switch_pressed and cleared.fault == "none"


async def test_a_device_fault_is_reported_and_start_refused_until_cleared(
    rig: ContractRig,
) -> None:
    await pull_to(rig, 150.0)
    rig.model.faults.fault_code = FAULT_MOTOR
    faulted = (await poll(rig, lambda s: s.faulted))[-1]
    assert faulted.fault == "motor"
    assert faulted.released and not faulted.running and not faulted.ready

    with pytest.raises(DeviceRejected):
        await rig.table.start()
    with pytest.raises(DeviceRejected):  # the cause is still there
        await rig.table.clear_fault()
    assert (await rig.table.read_state()).fault == "motor"

    rig.model.faults.fault_code = FAULT_NONE
    await rig.table.clear_fault()
    cleared = await rig.table.read_state()
    assert cleared.ready and cleared.fault == "none"
    await rig.table.start()
    assert (await rig.table.read_state()).running


async def test_a_target_above_the_rating_is_refused(rig: ContractRig) -> None:
    rating = (await rig.table.identify()).rated_max_force_n
    await rig.table.set_target(100.0)
    with pytest.raises(DeviceRejected) as refused:
        await rig.table.set_target(rating + 50.0)
    assert rig.table.name in str(refused.value)
    state = await rig.table.read_state()
    assert state.target_force_n == pytest.approx(100.0, abs=0.05) and not state.faulted
    await rig.table.set_target(rating)
    assert (await rig.table.read_state()).target_force_n == pytest.approx(rating, abs=0.1)


async def test_a_dropped_link_is_a_typed_error_and_the_next_request_after_restore_works(
    rig: ContractRig,
) -> None:
    assert (await rig.table.read_state()).ready
    rig.cut()
    with pytest.raises((LinkLost, TableTimeout)) as lost:
        await asyncio.wait_for(rig.table.read_state(), LINK_BOUND_S)  # never a hang
    assert rig.table.name in str(lost.value)
    rig.mend()
    assert (await rig.table.read_state()).ready
    assert (await rig.table.identify()).serial_number == rig.model.spec.serial_number


async def test_tick_wire_seconds_is_positive_and_grows_as_the_baud_falls(
    rig: ContractRig,
) -> None:
    assert 0.0 < rig.table.tick_wire_seconds < 1.0
    if rig.url_at_baud is None:
        return  # a network link has no baud rate
    fast = open_device(rig.url_at_baud(115200), rig.clock).tick_wire_seconds
    slow = open_device(rig.url_at_baud(9600), rig.clock).tick_wire_seconds
    assert 0.0 < fast < rig.table.tick_wire_seconds <= slow
    assert slow == pytest.approx(12 * fast)  # wire time is inversely proportional to baud


# ----- single-fault safety: the second channel, the table's own limit, the counter, the operator --

LIMIT_OVERSHOOT_N = 5.0  # one 2 ms physics step at full slew, the channel's offset, the damper


async def test_every_transport_has_the_single_fault_features(rig: ContractRig) -> None:
    assert rig.table.safety_features.missing == []


async def test_both_force_channels_and_a_moving_sample_counter_are_in_every_reading(
    rig: ContractRig,
) -> None:
    await pull_to(rig, 150.0)
    states = []
    for _ in range(3):
        states.append(await rig.table.read_state())
        await asyncio.sleep(0.01)  # a few table samples apart, as control ticks are
    for state in states:
        assert state.redundant_force_n is not None
        assert abs(state.redundant_force_n - state.measured_force_n) < FORCE_MARGIN_N
    counters = [s.sample_counter for s in states]
    assert None not in counters and len(set(counters)) == 3  # a new sample every read


async def test_the_table_holds_the_force_limit_the_host_writes(rig: ContractRig) -> None:
    await rig.table.set_force_limit(222.4)
    assert await rig.table.read_force_limit() == pytest.approx(222.4, abs=0.25)
    rating = (await rig.table.identify()).rated_max_force_n
    with pytest.raises(DeviceRejected):  # above the rating: refused, the old limit kept
        await rig.table.set_force_limit(rating + 50.0)
    assert await rig.table.read_force_limit() == pytest.approx(222.4, abs=0.25)


async def test_the_table_enforced_limit_releases_even_while_the_host_commands_more(
    rig: ContractRig,
) -> None:
    """The host keeps asking for 300 N (a host that believes a stuck load cell); the table lets
    go at its own 150 N limit, measured on its independent channel, and latches the fault."""
    await rig.table.set_force_limit(150.0)
    await rig.table.set_target(300.0)
    await rig.table.start()
    states: list[TableState] = []
    deadline = rig.clock.now() + 20.0
    while rig.clock.now() < deadline:
        await rig.table.heartbeat()
        await rig.table.set_target(300.0)
        states.append(await rig.table.read_state())
        if states[-1].released:
            break
    released = states[-1]
    assert released.released and not released.running and released.fault == "force_limit"
    assert rig.model.peak_tension_n <= 150.0 + LIMIT_OVERSHOOT_N
    with pytest.raises(DeviceRejected):
        await rig.table.start()
    await rig.table.clear_fault()
    assert (await rig.table.read_state()).ready


async def test_the_operator_stop_releases_and_is_not_the_patient_switch(rig: ContractRig) -> None:
    await pull_to(rig, 150.0)
    rig.model.press_operator_stop(rig.clock.now())
    state = await rig.table.read_state()
    assert state.operator_stop_pressed and not state.stop_switch_pressed
    assert state.released and not state.running and not state.ready
    assert state.fault == "operator_stop"
    with pytest.raises(DeviceRejected):
        await rig.table.start()
    await rig.table.clear_fault()
    cleared = await rig.table.read_state()
    assert cleared.ready and not cleared.operator_stop_pressed and cleared.fault == "none"


async def test_sensor_faults_show_in_the_readings(rig: ContractRig) -> None:
    await pull_to(rig, 150.0)
    rig.model.fail_redundant_channel(rig.clock.now())
    failed = await rig.table.read_state()
    assert failed.redundant_force_n == 0.0 and failed.measured_force_n > 100.0
    rig.model.faults.redundant_stuck = None
    rig.model.freeze_readings(rig.clock.now())
    frozen = []
    for _ in range(3):
        frozen.append(await rig.table.read_state())
        await asyncio.sleep(0.01)
    assert len({(s.measured_force_n, s.sample_counter) for s in frozen}) == 1
    assert frozen[0].t < frozen[-1].t  # stamped fresh by the host: only the counter tells

"""The simulated table's physics and firmware rules, without any wire."""

import pytest

from simulators.physics import (
    FAULT_FORCE_LIMIT,
    FAULT_MOTOR,
    FAULT_OPERATOR_STOP,
    FAULT_STOP_SWITCH,
    FAULT_WATCHDOG,
    Command,
    CommandRefused,
    TableModel,
    TableSpec,
)


def run(model: TableModel, until: float, heartbeat_every: float = 0.1) -> None:
    t = model._t
    while t < until:
        t = min(until, t + heartbeat_every)
        model.heartbeat(t)


def test_force_follows_target_within_slew_limit() -> None:
    model = TableModel(TableSpec(noise_n=0.0, offset_n=0.0))
    model.set_target(300.0)
    model.command(Command.START, 0.0)
    run(model, 1.0)
    assert model.tension_n <= model.spec.slew_n_per_s * 1.0 + 5.0  # plus the damper
    assert model.tension_n > 0.8 * model.spec.slew_n_per_s
    run(model, 4.0)
    assert model.tension_n == pytest.approx(300.0, abs=3.0)


def test_heartbeat_lapse_releases_and_latches() -> None:
    model = TableModel(TableSpec(noise_n=0.0, heartbeat_timeout_s=0.5))
    model.set_target(200.0)
    model.command(Command.START, 0.0)
    run(model, 3.0)
    model.advance(3.0 + 0.5 + 0.2)  # no heartbeat for longer than the timeout
    assert model.watchdog_tripped and model.released and model.fault_code == FAULT_WATCHDOG
    assert model.tension_n < 5.0
    with pytest.raises(CommandRefused):
        model.command(Command.START, 3.8)
    model.command(Command.CLEAR_FAULT, 3.8)
    assert model.ready


def test_stop_switch_and_injected_fault_release() -> None:
    model = TableModel(TableSpec(noise_n=0.0))
    model.set_target(200.0)
    model.command(Command.START, 0.0)
    run(model, 2.0)
    model.press_stop_switch(2.0)
    run(model, 2.3)
    assert model.fault_code == FAULT_STOP_SWITCH and model.tension_n < 1.0
    model.command(Command.CLEAR_FAULT, 2.3)
    model.command(Command.START, 2.3)
    model.faults.fault_code = FAULT_MOTOR
    run(model, 2.5)
    assert model.fault_code == FAULT_MOTOR and model.released
    with pytest.raises(CommandRefused):
        model.command(Command.CLEAR_FAULT, 2.5)


def test_target_above_rating_is_refused() -> None:
    model = TableModel()
    with pytest.raises(CommandRefused):
        model.set_target(model.spec.rated_max_force_n + 1)


def test_controlled_stop_ramps_down_then_releases() -> None:
    model = TableModel(TableSpec(noise_n=0.0))
    model.set_target(240.0)
    model.command(Command.START, 0.0)
    run(model, 4.0)
    model.command(Command.STOP_CONTROLLED, 4.0)
    run(model, 5.0)
    assert 100.0 < model.tension_n < 240.0  # still ramping at about 60 N/s
    run(model, 10.0)
    assert model.released and not model.running and model.tension_n < 1.0


def test_the_force_limit_acts_on_the_independent_channel_whatever_the_load_cell_says() -> None:
    model = TableModel(TableSpec(noise_n=0.0, offset_n=0.0))
    model.set_force_limit(150.0)
    model.set_target(140.0)
    model.command(Command.START, 0.0)
    run(model, 2.0)
    model.stick_load_cell(2.0)  # the firmware's own force loop now chases a frozen value ...
    model.set_target(400.0)
    run(model, 6.0)
    assert model.released and model.fault_code == FAULT_FORCE_LIMIT  # ... and the limit held
    assert model.peak_tension_n <= 150.0 + 1.0


def test_a_jolt_adds_tension_at_once_and_a_power_cycle_forgets_every_latch() -> None:
    model = TableModel(TableSpec(noise_n=0.0, offset_n=0.0))
    model.set_force_limit(300.0)
    model.set_target(100.0)
    model.command(Command.START, 0.0)
    run(model, 2.0)
    before = model.tension_n
    model.jolt(2.0, 50.0)
    assert model.tension_n == pytest.approx(before + 50.0, abs=1.0)
    model.press_operator_stop(2.1)
    assert model.released and model.fault_code == FAULT_OPERATOR_STOP and not model.ready
    model.power_cycle(2.2)
    assert model.ready and model.force_limit_n is None and not model.operator_stop_pressed


def test_the_sample_counter_stops_only_while_sampling_is_frozen() -> None:
    model = TableModel()
    model.advance(1.0)
    first = model.sample_counter
    model.advance(1.1)
    assert model.sample_counter == first + 50  # 500 samples per second
    model.freeze_readings(1.1)
    model.advance(2.0)
    assert model.sample_counter == first + 50

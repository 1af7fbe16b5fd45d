"""Scheduled faults for simulated tables: ``KIND@SECONDS[:TABLE]``, e.g. ``stop-switch@30``.

Technicians use these with ``traction simulate`` and ``traction demo`` to rehearse what the product
does when a patient presses the stop switch, a load cell sticks or a cable is pulled. Each model
fault is a function of the running model, so tests inject the same faults at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from devices.errors import ConfigError
from devices.units import N_PER_LBF
from simulators.physics import FAULT_LOAD_CELL, FAULT_MOTOR, TableModel


def _stop_switch(model: TableModel, now: float) -> None:
    model.press_stop_switch(now)


def _runaway(model: TableModel, now: float) -> None:
    model.faults.runaway = True


def _operator_stop(model: TableModel, now: float) -> None:
    model.press_operator_stop(now)


def _stuck(model: TableModel, now: float) -> None:
    model.stick_load_cell(now)


def _frozen(model: TableModel, now: float) -> None:
    model.freeze_readings(now)


def _drift(model: TableModel, now: float) -> None:
    model.advance(now)
    model.faults.drift_n_per_s = 5.0


def _spiking(model: TableModel, now: float) -> None:
    model.advance(now)
    model.faults.spike_n = 60.0


def _redundant_fail(model: TableModel, now: float) -> None:
    model.fail_redundant_channel(now)


def _jolt(model: TableModel, now: float) -> None:
    model.jolt(now, 20 * N_PER_LBF)


def _power_cycle(model: TableModel, now: float) -> None:
    model.power_cycle(now)


def _motor(model: TableModel, now: float) -> None:
    model.faults.fault_code = FAULT_MOTOR


def _load_cell(model: TableModel, now: float) -> None:
    model.faults.fault_code = FAULT_LOAD_CELL


def _unplug_switch(model: TableModel, now: float) -> None:
    model.stop_switch_connected = False


MODEL_FAULTS: dict[str, Callable[[TableModel, float], None]] = {
    "stop-switch": _stop_switch,
    "operator-stop": _operator_stop,
    "runaway": _runaway,
    "stuck-load-cell": _stuck,
    "frozen-readings": _frozen,
    "drift": _drift,
    "spiking-load-cell": _spiking,
    "redundant-channel-fail": _redundant_fail,
    "jolt": _jolt,
    "power-cycle": _power_cycle,
    "motor-fault": _motor,
    "load-cell-fault": _load_cell,
    "switch-unplugged": _unplug_switch,
}
LINK_FAULTS = ("link-drop",)
KINDS = (*MODEL_FAULTS, *LINK_FAULTS)


@dataclass(frozen=True)
class ScheduledFault:
    kind: str
    at_s: float
    table: int = 1

    def apply(self, model: TableModel, now: float) -> None:
        MODEL_FAULTS[self.kind](model, now)


def parse_fault(text: str) -> ScheduledFault:
    """Read ``KIND@SECONDS[:TABLE]``; errors list the kinds."""
    where = f"--fault {text!r}"
    kind, sep, rest = text.partition("@")
    if not sep:
        raise ConfigError(where, "write it as KIND@SECONDS, e.g. stop-switch@30")
    if kind not in KINDS:
        raise ConfigError(where, f"unknown fault {kind!r}; one of: {', '.join(KINDS)}")
    seconds, _, table = rest.partition(":")
    try:
        at_s = float(seconds)
        index = int(table) if table else 1
    except ValueError:
        raise ConfigError(where, "SECONDS must be a number and TABLE a whole number") from None
    if at_s < 0 or index < 1:
        raise ConfigError(where, "SECONDS must be >= 0 and TABLE >= 1")
    return ScheduledFault(kind, at_s, index)

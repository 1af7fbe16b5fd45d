"""The fault matrix: every transport x every single fault x every phase of a session, black-box.

Each case is a real `traction run` process treating a lumbar intermittent 25/10 lbf prescription on
a simulated table behind its real wire (Modbus TCP, Modbus RTU on a pty pair, line-v1 at 9600 baud
on a pty pair), with one fault injected in the ramp, the hold or the rest (tests/fault_matrix.py);
and each fault while paused (1 s into the hold, through `traction serve`'s API, on Modbus TCP).
The assertions are on the TABLE SIDE, the simulator's own 100 Hz log of the true cord tension:

- the truth never rose above the prescribed hold plus the over-target tolerance (30 lbf; the hard
  limit is 35 lbf); for a jolt, nothing was added to what the patient's own movement did; for a
  runaway motor, the hard limit (the table's own force limit holds it whatever the host does);
- after a host freeze (SIGSTOP of the host's processes, 0.8 s or 5 s), the truth rose no faster
  than 1.5 x the ramp rate over any half second: the target ramped on, it never stepped;
- the table reached released with a slack cord within the bound its fault class promises (stop
  switch, operator stop, power loss: 0.1 s; over-force, runaway motor, redundant channel failing:
  a few ticks; cable pulled, table silent, host killed, host frozen 5 s: the 1 s watchdog plus a
  margin; sensor faults: once the disagreement is measurable);
- the record names the fault (the trip's fault and reason; a killed host's treatment process stops
  the session itself; a host frozen 0.8 s goes on and records the overrun, or trips `stall` where
  a tick plus the freeze passes 0.9 s);
- after a lock-severity trip the next `traction run` is refused until `traction tables ack`.

The regular suite runs a covering subset of the matrix (every fault x transport and fault x phase
pair once, :func:`fault_matrix.all_cases`); TRACTION_FAULT_MATRIX=full runs all of it.
The cases run side by side (one module-wide run, then one test per case reads its result), so the
matrix takes a few minutes of wall time (four cases at a time). With TRACTION_RELIABILITY_OUT=FILE each case's figures
are written to FILE as JSON, from which bench/reliability_report.py renders RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_matrix import (
    FAULT_CLASSES,
    HOLD_N,
    JOLT_N,
    PAUSED,
    RAMP_LBF_PER_S,
    RISE_MARGIN,
    SHORT_FREEZE_S,
    Case,
    Matrix,
    Measured,
    all_cases,
    expected_lock,
    make_template,
    run_matrix,
    write_results,
)

from devices.faults import FAULTS
from devices.units import N_PER_LBF

# The module-wide run happens in the first test's setup: it gets the whole matrix's time.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

CASES = all_cases()
# Noise and the damper: the truth may sit a little above the load-cell loop's target.
TRUTH_MARGIN_N = 2.0
# What each fault may be named as in the record (the first line of defence that acted).
NAMED = {
    "stop-switch": {"stop_switch"},
    "operator-stop": {"operator_stop"},
    "over-force": {"over_target", "hard_limit", "force_limit", "implausible_force_rate"},
    "runaway": {"over_target", "hard_limit", "force_limit", "implausible_force_rate"},
    "redundant-channel-fail": {"channel_disagreement"},
    "host-freeze-short": {"stall"},  # only if the loaded machine held the loop past 0.9 s
    "host-freeze-long": {"stall"},
    "stuck-load-cell": {"channel_disagreement", "stuck_sensor", "force_limit", "tracking"},
    "drift": {"channel_disagreement", "tracking"},
    "link-loss": {"link_lost", "missing_reading", "stale_reading"},
    "not-answering": {"missing_reading", "stale_reading", "link_lost"},
    "power-cycle": {"not_running"},
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Measured]]:
    root = tmp_path_factory.mktemp("matrix")
    template = root / "template"
    template.mkdir()
    token = make_template(template)
    began = time.monotonic()
    outcome: dict[str, Any] = {}

    def serve_the_matrix() -> None:
        """In a thread of its own: serving the tables raises it to a table's priority, which
        must not outlive the matrix in this worker's own thread."""
        try:
            outcome["measured"] = asyncio.run(run_matrix(Matrix(root, template, token), CASES))
        except BaseException as exc:  # raised again in the fixture, with its traceback
            outcome["error"] = exc

    thread = threading.Thread(target=serve_the_matrix, name="fault matrix")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    measured: dict[str, Measured] = outcome["measured"]
    wall_s = time.monotonic() - began
    yield measured
    out = os.environ.get("TRACTION_RELIABILITY_OUT")
    if out:  # after the tests: each case says whether it passed
        write_results(Path(out), measured.values(), wall_s)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_one_fault_leaves_the_patient_safe(results: dict[str, Measured], case: Case) -> None:
    m = results[case.id]
    context = f"{case.id}: {m.error or ''}\n{m.host_output[-1500:]}"
    assert m.error is None, context
    fault = FAULT_CLASSES[case.fault]
    if case.phase == PAUSED:
        assert m.paused_before_fault, context

    # 1. The truth, from the table's own log.
    if case.fault == "over-force":
        assert m.tension_at_fault_n is not None
        assert m.tension_at_fault_n <= HOLD_N + JOLT_N + TRUTH_MARGIN_N, context
        # after the patient's own jolt the table only ever let go
        assert m.peak_after_fault_n <= m.tension_at_fault_n + TRUTH_MARGIN_N, context
    else:
        assert m.peak_n <= fault.peak_bound_n + TRUTH_MARGIN_N, context
    if case.fault.startswith("host-freeze"):  # after the thaw the target ramps on, never steps
        assert m.steepest_rise_n_per_s is not None
        assert m.steepest_rise_n_per_s <= RISE_MARGIN * RAMP_LBF_PER_S * N_PER_LBF, context

    # 2. Released, cord slack, within the promised bound.
    assert m.release_s is not None, f"{context}\nthe table never released"
    if fault.timed_while_paused or case.phase != PAUSED:
        assert m.release_bound_s is not None
        assert m.release_s <= m.release_bound_s, context

    # 3. The record names it.
    if case.fault == "host-kill":
        assert m.host_exit == -9, context
        # the treatment process outlives its workstation and ends the session itself
        assert m.outcome == "stopped", context
        assert "workstation process ended" in (m.outcome_reason or ""), context
        assert "recovered session" in m.next_start_output, m.next_start_output
    elif case.fault == "host-freeze-short" and m.trip_fault is None:
        # it went on: the operator ended it, and the overrun is in the record
        assert m.outcome == "stopped", context
        assert m.overrun_gap_s is not None and m.overrun_gap_s >= SHORT_FREEZE_S, context
    elif case.fault == "db-stall":
        assert m.outcome == "stopped" and m.trip_fault is None, context  # ended by the operator
        if m.samples_reported is not None:  # `traction run` says how many it recorded
            assert m.samples_stored == m.samples_reported, context  # nothing lost
    else:
        assert m.outcome == "tripped", context
        assert m.trip_fault in NAMED[case.fault], context
        assert m.trip_reason and FAULTS[m.trip_fault].severity.value == m.trip_severity
        assert m.outcome_reason == m.trip_reason

    # 4. Locked until acknowledged, when the fault is of severity lock; otherwise not locked.
    if expected_lock(m):
        assert m.locked and m.next_start_exit == 3, m.next_start_output
        assert "acknowledged: table" in m.ack_output, m.ack_output
        assert m.locked_after_ack is False
    else:
        assert not m.locked, m.next_start_output
    m.passed = True

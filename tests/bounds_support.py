"""Supervisor bounds for tests about something other than those bounds.

A test's simulated tables answer from a thread of the test's own process, so they wait for the
interpreter lock that the app, the command's live view, the recorder, the test client, the
database driver (and, in the console tests, Playwright) hold in turn. On two busy cores a reply
then comes late, and with the shipped bounds on a scaled clock (at x5 the stall bound is 0.5 s of
real time, at x2 a reading's age 0.3 s) the session trips: that is those checks' job, not what
these tests are about. The bounds themselves are tested where nothing shares the table's
interpreter: test_supervisor.py, test_loop*.py, test_single_fault.py and the fault matrix, which
runs every command in a process of its own."""

from __future__ import annotations

from dataclasses import replace

import pytest

import traction.treat
from devices.limits import SafetyLimits, load_limits

HEARTBEAT_S = 10.0  # a table's watchdog register takes at most 10 s
STALL_S = 20.0
STALENESS_S = 5.0


def steady(limits: SafetyLimits) -> SafetyLimits:
    """``limits`` with the heartbeat, stall and staleness bounds long enough for a loaded CI
    machine; every other limit (forces, rates, durations, contraindications) as given."""
    patient = replace(
        limits.supervisor,
        heartbeat_timeout_s=HEARTBEAT_S,
        max_stall_s=STALL_S,
        staleness_s=STALENESS_S,
    )
    return replace(limits, supervisor=patient)


def steady_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sessions that ``traction run`` and ``demo`` start from this test's own process run on
    :func:`steady` bounds. Their treatment process gets the limits from the command (packed in
    its order), so it runs on them too. Commands started as processes of their own are not
    affected."""
    shipped = load_limits()
    monkeypatch.setattr(traction.treat, "load_limits", lambda path=None: steady(shipped))

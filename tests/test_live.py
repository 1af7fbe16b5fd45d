"""The live readout: right times, a countdown, and a last frame that says the table is released."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rich.console import Console

from devices.records import Event, EventKind, Finished, Outcome, Phase, Sample, Started
from devices.units import ForceUnit
from traction.live import LiveView, mmss

RUN = "run-1"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "00:00"), (59.4, "00:59"), (59.5, "01:00"), (239.6, "04:00"), (3599.6, "60:00")],
)
def test_minutes_and_seconds_never_show_sixty_seconds(seconds: float, text: str) -> None:
    assert mmss(seconds) == text


def _started() -> Started:
    return Started(
        run_id=RUN,
        t=10.0,
        wall=datetime.now(UTC),
        table="sim://lumbar",
        device={"model": "LT-200", "serial_number": "SN-4711"},
        profile={"hold_s": 60.0, "rest_s": 20.0},
        limits={},
        tick_hz=50.0,
        time_scale=1.0,
        extra={"hard_limit_n": 400.0},
    )


def _render(view: LiveView) -> list[str]:
    console = Console(width=80, height=24, record=True, color_system=None)
    console.print(view)
    return console.export_text().rstrip("\n").split("\n")


def _view() -> LiveView:
    view = LiveView(ForceUnit.LBF, 600.0, 400.0, "lumbar-1 · patient MRN-1 · lumbar-intermittent")
    view.deliver(_started())
    return view


def test_running_frame_shows_force_target_and_the_hold_countdown() -> None:
    view = _view()
    view.deliver(Sample(RUN, 1, 30.0, 200.0, 198.0, Phase.HOLD, 1))
    view.deliver(Sample(RUN, 2, 48.2, 200.0, 199.0, Phase.HOLD, 1))
    text = "\n".join(_render(view))
    assert "lumbar-1" in text and "LT-200 SN-4711" in text
    assert "hold 00:42 left" in text  # 60 s hold, 18.2 s into it
    assert "00:38 elapsed, 09:22 remaining" in text
    assert "Ctrl-C" in text


def test_rest_countdown_restarts_at_each_phase_change() -> None:
    view = _view()
    view.deliver(Sample(RUN, 1, 30.0, 200.0, 198.0, Phase.HOLD, 1))
    view.deliver(Sample(RUN, 2, 90.0, 80.0, 81.0, Phase.REST, 1))
    view.deliver(Sample(RUN, 3, 95.0, 80.0, 81.0, Phase.REST, 1))
    assert "rest 00:15 left" in "\n".join(_render(view))


def test_final_frame_says_released_and_shows_no_force_countdown_or_hint() -> None:
    view = _view()
    view.deliver(Sample(RUN, 1, 30.0, 200.0, 198.0, Phase.HOLD, 1))
    view.deliver(Event(RUN, 31.0, EventKind.TRIP, "over-force 420 lbf above hard limit"))
    view.deliver(Event(RUN, 31.02, EventKind.RELEASED, "table released"))
    view.deliver(Finished(RUN, 31.02, datetime.now(UTC), Outcome.TRIPPED, "over-force", 1))
    text = "\n".join(_render(view))
    assert "RELEASED: no traction force is applied" in text
    assert "tripped: over-force" in text
    assert "traction released at once; over-force" in text
    for stale in ("Ctrl-C", "target", "remaining", "measured"):
        assert stale not in text


def test_final_frame_without_a_confirmed_release_says_to_release_by_hand() -> None:
    view = _view()
    view.deliver(Event(RUN, 12.0, EventKind.LINK_LOST, "no reply from the table"))
    view.deliver(Finished(RUN, 13.0, datetime.now(UTC), Outcome.INTERRUPTED, "link lost", 0))
    text = "\n".join(_render(view))
    assert "release NOT confirmed" in text and "RELEASED" not in text


def test_frame_fits_80_by_24_however_many_and_however_long_the_events() -> None:
    view = _view()
    view.deliver(Sample(RUN, 1, 30.0, 200.0, 198.0, Phase.HOLD, 1))
    for i in range(30):
        view.deliver(Event(RUN, 30.0 + i, EventKind.WARNING, "x" * 200))
    lines = _render(view)
    assert len(lines) <= 24
    assert max(len(line) for line in lines) <= 80


def test_a_late_tick_warning_says_the_patient_was_safe() -> None:
    view = _view()
    view.deliver(Sample(RUN, 1, 30.0, 200.0, 198.0, Phase.HOLD, 1))
    view.deliver(Event(RUN, 31.0, EventKind.WARNING, "3 tick(s) overran", {"overruns": 3}))
    assert "warning: safe: the pull never outran its ramp" in "\n".join(_render(view))

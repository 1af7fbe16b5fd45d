"""Both sides of a simulated wire run at one raised priority: the control host and the thread
that serves its simulated table. If the host ran ahead of the table it controls, a loaded machine
would starve the table's replies and the host would trip on readings the simulation lost."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import threading

import pytest

from session.control_host import NICENESS
from session.treatment_process import Order
from simulators.priority import TABLE_NICENESS, TABLE_REAL_TIME_PRIORITY, answer_like_a_table


def niceness_in_a_thread(before: int | None) -> tuple[bool, int]:
    """Call answer_like_a_table() in a new thread (niceness is per thread on Linux), first set to
    ``before`` if given; return what it said and the thread's niceness after."""
    seen: dict[str, object] = {}

    def run() -> None:
        try:
            if before is not None:
                os.setpriority(os.PRIO_PROCESS, 0, before)
            seen["held"] = answer_like_a_table()
            seen["nice"] = os.getpriority(os.PRIO_PROCESS, 0)
        except PermissionError:
            seen["unprivileged"] = True

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "unprivileged" in seen:
        pytest.skip("this process may not raise a thread's priority")
    return bool(seen["held"]), int(str(seen["nice"]))


def test_the_table_and_the_treatment_share_one_priority() -> None:
    assert NICENESS == TABLE_NICENESS
    assert Order.__dataclass_fields__["real_time_priority"].default == TABLE_REAL_TIME_PRIORITY


def scheduling_in_a_thread(before: int | None, real_time: bool = True) -> tuple[int, int]:
    """Call answer_like_a_table() in a new thread, first put in real time at ``before`` if
    given; return the thread's policy and real-time priority after."""
    seen: dict[str, int] = {}

    def run() -> None:
        if before is not None:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(before))
        answer_like_a_table(real_time=real_time)
        seen["policy"], seen["priority"] = os.sched_getscheduler(0), os.sched_getparam(0)[0]

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return seen["policy"], seen["priority"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only a privileged process may use real time")
def test_a_simulated_table_answers_in_real_time_never_below_a_priority_it_had() -> None:
    """Real-time scheduling is per thread too: the simulator's thread gets it, this one does not.
    Only when asked: a thread shared with other work, or serving a scaled clock, keeps its policy."""
    assert scheduling_in_a_thread(None, real_time=False) == (os.SCHED_OTHER, 0)
    assert scheduling_in_a_thread(None) == (os.SCHED_FIFO, TABLE_REAL_TIME_PRIORITY)
    assert scheduling_in_a_thread(TABLE_REAL_TIME_PRIORITY + 5) == (
        os.SCHED_FIFO,
        TABLE_REAL_TIME_PRIORITY + 5,
    )
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


def test_a_simulated_table_is_served_at_the_treatment_priority_and_never_lowered() -> None:
    held, nice = niceness_in_a_thread(None)
    assert held == (nice <= TABLE_NICENESS)
    if os.geteuid() == 0:
        assert held and nice == TABLE_NICENESS
    assert niceness_in_a_thread(TABLE_NICENESS - 5) == (True, TABLE_NICENESS - 5)


ISOLATED = """
import os, sys
try:
    os.setpriority(os.PRIO_PROCESS, 0, int(sys.argv[1]))
except PermissionError:
    print("unprivileged"); raise SystemExit
from session.control_host import isolate
isolate(2**32, -10)
print(os.getpriority(os.PRIO_PROCESS, 0))
"""


@pytest.mark.parametrize(("parent", "after"), [(0, -10), (-10, -10), (-15, -15)])
def test_a_treatment_process_sets_its_priority_it_does_not_add_to_its_parents(
    parent: int, after: int
) -> None:
    """A parent that serves a simulated table is already at -10: its treatment stays at -10
    (adding would put it at -20, ahead of the table it controls)."""
    out = subprocess.run(
        [sys.executable, "-c", ISOLATED, str(parent)], capture_output=True, text=True, check=True
    ).stdout.strip()
    if out == "unprivileged":
        pytest.skip("this process may not raise its priority")
    assert int(out) == after


AHEAD = """
import sys
from session.treatment_process import Ahead, Order
order = Order("", "", "", "", "", "", -1, time_scale=float(sys.argv[1]),
              real_time_priority=int(sys.argv[2]))
print(Ahead().enter(order)[1])
"""


@pytest.mark.parametrize(
    ("time_scale", "priority", "real_time"), [(1.0, 10, True), (4.0, 10, False), (1.0, 0, False)]
)
def test_a_treatment_runs_in_real_time_only_on_a_real_time_clock_and_says_how_it_runs(
    time_scale: float, priority: int, real_time: bool
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", AHEAD, str(time_scale), str(priority)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if real_time and os.geteuid() == 0:
        assert out == f"real-time (FIFO {priority})"
    else:  # a scaled clock, none asked for, or refused: the record says what it got instead
        assert out.startswith("niceness ")


SHARED = """
from devices.priority import scheduling
from session.treatment_process import Ahead, Order
real, scaled = (Order("", "", "", "", "", "", -1, time_scale=x) for x in (1.0, 4.0))
ahead = Ahead()
seen = [ahead.enter(real), ahead.enter(scaled), ahead.enter(real)]
ahead.leave()  # one real-time session ends: another still holds a table at x1
seen.append((None, scheduling()))
ahead.leave()  # the last one ends (the scaled session goes on at its niceness)
seen.append((None, scheduling()))
print(seen)
"""


def test_the_treatment_process_runs_in_real_time_while_any_of_its_sessions_is_on_x1() -> None:
    """Sessions share the treatment process: it stays in real time until the last session on a
    x1 clock ends, whatever else it holds; a session on a scaled clock never holds it there."""
    out = subprocess.run(
        [sys.executable, "-c", SHARED], capture_output=True, text=True, check=True
    ).stdout.strip()
    seen = ast.literal_eval(out)
    assert [holds for holds, _ in seen] == [True, False, True, None, None]
    ways = [way for _, way in seen]
    if os.geteuid() == 0:  # allowed here
        real_time = f"real-time (FIFO {Order.real_time_priority})"
        assert ways[:4] == [real_time] * 4
    else:  # refused: not an error
        assert all(way.startswith("niceness ") for way in ways[:4])
    assert ways[4].startswith("niceness ")


LEAVE = """
import os, threading
os.setpriority(os.PRIO_PROCESS, 0, -10)
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
from devices.priority import leave_real_time
seen = {}
go = threading.Event()
def worker():
    go.wait()
    seen["policy"], seen["nice"] = os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)
thread = threading.Thread(target=worker)
thread.start()
leave_real_time()
go.set()
thread.join()
print(os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0), seen["policy"], seen["nice"])
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="only a privileged process may use real time")
def test_leaving_real_time_puts_every_thread_back_and_keeps_their_niceness() -> None:
    """A treatment leaves real time once its loop has ended: its threads too (they inherited it)."""
    out = subprocess.run(
        [sys.executable, "-c", LEAVE], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [str(os.SCHED_OTHER), "-10", str(os.SCHED_OTHER), "-10"]

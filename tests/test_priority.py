"""Both sides of a simulated wire run at one raised priority: the treatment process and the thread
that serves its simulated table. If the host ran ahead of the table it controls, a loaded machine
would starve the table's replies and the host would trip on readings the simulation lost."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from session.treatment_process import Order
from simulators.priority import TABLE_NICENESS, answer_like_a_table


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
    assert Order.__dataclass_fields__["niceness"].default == TABLE_NICENESS


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
from session.treatment_process import isolate
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

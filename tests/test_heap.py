"""A process that serves a simulated table sets its start-up heap aside from garbage collection
(devices/heap.py): the table's thread waits out every collection, which must not traverse it. The
treatment process sets its heap aside once, at its first session: what later sessions make and
leave behind stays collectable."""

from __future__ import annotations

import subprocess
import sys

OPEN_A_TABLE = """
import gc
from simulators.hosting import simulator_thread

before = gc.get_freeze_count()
simulator_thread()
print(before, gc.get_freeze_count())
"""


def test_the_first_simulated_table_of_a_process_sets_its_heap_aside() -> None:
    """In a process of its own: a test worker sets its heap aside for its own reasons."""
    done = subprocess.run(
        [sys.executable, "-c", OPEN_A_TABLE], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    before, after = map(int, done.stdout.split())
    assert before == 0
    assert after > 10_000  # the simulators' modules and what they import, at least


SESSION_AFTER_SESSION = """
import gc, weakref
from devices.heap import set_aside_once

class Node:
    pass

first = set_aside_once()          # the first session's start
cycle = Node(); cycle.me = cycle  # what a session leaves in a reference cycle
gone = weakref.ref(cycle)
del cycle
second = set_aside_once()         # the next session's start
gc.collect()
print(first, second, gone() is None)
"""


def test_the_treatment_process_sets_its_heap_aside_once_and_later_garbage_stays_collectable() -> (
    None
):
    done = subprocess.run(
        [sys.executable, "-c", SESSION_AFTER_SESSION], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    first, second, collected = done.stdout.split()
    assert int(first) > 1_000 and int(second) == int(first)
    assert collected == "True"  # set aside again, the cycle would never be freed

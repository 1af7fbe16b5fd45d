"""A thread and event loop of their own for simulated tables, as a real table has its own controller.

A simulator started on the event loop of the process that also serves the HTTP service, records,
renders a live view or runs the code under test answers only when that loop is free: on a loaded
machine a page render or a burst of database work made a simulated table miss the host's heartbeat
or reading deadlines, and the host rightly tripped, on a fault of the simulation. Here simulators
run on one thread per process whose only work is answering the wire, at the table's raised priority
(:mod:`simulators.priority`); the interpreter lock still makes it wait for its turn, but for a
switch interval (5 ms), not for whatever the other loop is doing, provided the thread holding the
lock is not itself descheduled: a process hosting simulators raises the thread that starts them too.

The thread lives as long as the process. Its loop outlives every simulator it served, so a
connection a client opened just as its simulator stopped still closes cleanly when the client lets
go, as it did when simulators ran on the process's own loop.

Physics that other threads change (a switch pressed, a fault applied) is changed through
:meth:`SimulatorThread.call`, between two steps of the simulation, never in the middle of one.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from devices.heap import set_aside_start_up_heap
from simulators.priority import answer_like_a_table

T = TypeVar("T")


class SimulatorThread:
    """The process's simulator thread: coroutines and calls handed to it run on its loop."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="simulated tables", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        answer_like_a_table()
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` (start or stop a simulator) on the simulator thread; return its result."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    async def call(self, action: Callable[[], T]) -> T:
        """Call ``action`` on the simulator thread, between two steps of the physics."""

        async def called() -> T:
            return action()

        return await self.run(called())


_shared: SimulatorThread | None = None
_shared_lock = threading.Lock()


def _forget_in_child() -> None:
    global _shared
    _shared = None  # a forked child has the loop but not the thread that ran it


os.register_at_fork(after_in_child=_forget_in_child)


def simulator_thread() -> SimulatorThread:
    """The process's simulator thread, started on first use. The process's heap is set aside from
    garbage collection then (:mod:`devices.heap`): the thread waits out every collection, and a
    full one of a service's or a command's start-up heap silenced a table for hundreds of ms."""
    global _shared
    with _shared_lock:
        if _shared is None:
            set_aside_start_up_heap()
            _shared = SimulatorThread()
        return _shared

"""Raising a thread's scheduling priority, for work that must not wait behind the workstation's.

Used by the treatment process (it drives a table) and by the thread that serves a simulated table
(it stands in for the table's own controller). Both set one priority, never add to it, and never
lower a priority already higher.

Two steps, each kept where the system refuses the next. A niceness puts the thread ahead of
ordinary work in the fair scheduler, but a fair scheduler still shares: on two busy cores a
woken treatment can wait behind twenty busy threads for most of a tick. Real-time scheduling
(``SCHED_FIFO``) runs a woken thread at once, ahead of every ordinary one; the kernel's real-time
throttling (by default 95% of each second, ``/proc/sys/kernel/sched_rt_runtime_us``) keeps the
machine usable should such a thread ever spin.
"""

from __future__ import annotations

import os

# Linux has real-time scheduling calls; elsewhere the niceness alone stands.
_CAN_REAL_TIME = hasattr(os, "sched_setscheduler")
_REAL_TIME = (os.SCHED_FIFO, os.SCHED_RR) if _CAN_REAL_TIME else ()


def run_at_niceness(niceness: int) -> bool:
    """Raise the calling thread's priority to ``niceness`` (on Linux niceness is per thread, and
    threads started from this one inherit it); never lower it. An unprivileged process keeps its
    priority: that is not an error. Returns whether the thread now runs at ``niceness`` or higher."""
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) <= niceness:
            return True
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    except PermissionError:
        return False
    return True


def run_in_real_time(priority: int) -> bool:
    """Run the calling thread (and the threads it starts: they inherit it, so none of them can
    hold the interpreter lock while descheduled behind ordinary work) under ``SCHED_FIFO`` at
    ``priority`` (1-99); never lower a real-time priority already higher. Where the system does
    not allow it (an unprivileged user without ``RLIMIT_RTPRIO``, a container without
    ``CAP_SYS_NICE``) the thread keeps its scheduling: that is not an error. Returns whether the
    thread now runs in real time at ``priority`` or higher."""
    if not _CAN_REAL_TIME:
        return False
    try:
        if (
            os.sched_getscheduler(0) in _REAL_TIME
            and os.sched_getparam(0).sched_priority >= priority
        ):
            return True
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except PermissionError:
        return False
    return True


def leave_real_time() -> None:
    """Put every thread of this process back under ordinary scheduling (their niceness stays):
    what a process does after its real-time work (writing up, closing, exiting) is a burst of
    CPU that must not hold a core from everything else. Lowering needs no privilege."""
    if not _CAN_REAL_TIME:
        return
    for tid in os.listdir("/proc/self/task"):
        try:
            if os.sched_getscheduler(int(tid)) in _REAL_TIME:
                os.sched_setscheduler(int(tid), os.SCHED_OTHER, os.sched_param(0))
        except (ProcessLookupError, PermissionError):  # a thread that ended meanwhile
            continue


def scheduling() -> str:
    """How the calling thread is scheduled, for the session's record: ``"real-time (FIFO 10)"``
    or ``"niceness -10"``."""
    policy = os.sched_getscheduler(0) if _CAN_REAL_TIME else None
    if policy in _REAL_TIME:
        name = "FIFO" if policy == os.SCHED_FIFO else "RR"
        return f"real-time ({name} {os.sched_getparam(0).sched_priority})"
    return f"niceness {os.getpriority(os.PRIO_PROCESS, 0)}"

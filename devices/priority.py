"""Raising a thread's scheduling priority, for work that must not wait behind the workstation's.

Used by the treatment process (it drives a table) and by the thread that serves a simulated table
(it stands in for the table's own controller). Both set one niceness, never add to it, and never
lower a priority already higher.
"""

from __future__ import annotations

import os


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

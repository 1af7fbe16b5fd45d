"""Setting a process's start-up heap aside from garbage collection, for a process that must answer on time.

CPython's cyclic garbage collector holds the interpreter lock for the whole of a collection, and a
full collection traverses every object it tracks. Most of those in a process of this product were
made at start-up and live as long as the process: modules, classes, functions, the ORM's and the
validators' metadata. Traversing them is most of what a full collection costs, and while it runs
no other thread of the process runs: not the control loop's tick, not a simulated table's reply.
``gc.freeze`` moves every object alive now into a generation that collections skip; they are still
freed when nothing refers to them, but never traversed again. Collections then cost what the
process makes while it works.
"""

from __future__ import annotations

import gc


def set_aside_start_up_heap() -> int:
    """Collect once, then set every surviving object aside from later collections; returns how
    many are set aside. Call when start-up is over (imports done, connections open), before the
    work that must not pause. Calling it again sets aside what was made since."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def set_aside_once() -> int:
    """:func:`set_aside_start_up_heap` the first time it is called in this process; after that
    only how many objects are set aside. For a process whose work comes and goes (the treatment
    process runs session after session): what a finished piece of work leaves in a reference
    cycle must stay collectable, and frozen objects never are."""
    return gc.get_freeze_count() or set_aside_start_up_heap()

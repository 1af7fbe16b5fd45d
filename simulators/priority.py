"""A simulated table answers like one with a processor of its own.

A real table's firmware runs on its own controller: nothing the workstation does delays its
replies. A simulator shares the workstation's processors with the host that controls it, and the
host's control process raises its own priority (``session.control_host``), so on a loaded
machine the simulated table would answer late and the host would rightly trip on a missing
reading: a fault of the simulation, not of the host or the link. So the thread that serves
simulated tables runs at the same raised priority where the system allows it. An unprivileged
process keeps its priority (not an error): the simulation is then only as prompt as the load lets it
be, and a late reply is still a trip, never a pull.
"""

from __future__ import annotations

from devices.priority import run_at_niceness, run_in_real_time

# The control host's niceness (session.control_host.NICENESS): equal, not higher,
# so neither side of the wire starves the other.
TABLE_NICENESS = -10
# ... and its real-time priority (Order.real_time_priority), for the same reason.
TABLE_REAL_TIME_PRIORITY = 10


# The threads that share the interpreter with a simulated table (those of the process that opened
# it: a service, `traction run`, a demo): above ordinary programs, so that a busy machine does not
# deschedule one while it holds the interpreter lock the simulator waits for; below the treatment
# process, so that they never take its processor.
BESIDE_A_TABLE_NICENESS = -5


def answer_like_a_table(niceness: int = TABLE_NICENESS, real_time: bool = False) -> bool:
    """Serve simulated tables from this thread (and the threads it starts) at ``niceness`` and,
    if asked and the system allows it, in real time at the treatment's priority. Ask only for a
    thread that does nothing but answer tables on a x1 clock (a process of its own), as the
    treatment process runs in real time only then: a scaled clock's tables answer ``scale`` times
    as often, and a thread shared with other work would hold a core for that work too. Returns
    whether the thread runs at ``niceness`` or higher."""
    held = run_at_niceness(niceness)
    if real_time:
        run_in_real_time(TABLE_REAL_TIME_PRIORITY)
    return held


def share_with_a_table() -> bool:
    """Run this thread (and the threads it starts) beside a simulated table, at
    :data:`BESIDE_A_TABLE_NICENESS`; whether it now runs at that priority or higher."""
    return run_at_niceness(BESIDE_A_TABLE_NICENESS)

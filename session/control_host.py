"""The control host: one process that runs every treatment of one workstation process.

The workstation (:mod:`session.treatment_proxy`) starts it on its first treatment, with one end
of a private Unix socket. For each session it sends, over that socket, the host's ends of two pipes
(commands in, records out) and the session's locked journal; the host runs the session
(:func:`session.treatment_process.serve`) beside the others on one event loop. One process for all
of them, not one each: a tick's Python work then costs about a third as much (one wake-up, one
heap, one set of caches for every table), which is what lets a workstation drive as many tables
as a plain asyncio loop would.

What a failure takes with it:

- The workstation dies: every session's commands reach their end, each stops (controlled) and
  releases, and the host ends once the last has (its socket has reached its end too).
- The host dies: every session's records reach their end without an exit status; the workstation
  records each as interrupted from its journal, and every table's watchdog releases.
- A SIGTERM releases every table at once; the sessions then end as released.

The host runs ahead of the workstation's other work at :data:`NICENESS` and in real time while
it holds a session on a x1 clock (:class:`session.treatment_process.Ahead`), under one address-space
limit.

Usage (by the workstation only): ``python -m session.control_host SOCKET_FD MEMORY_LIMIT_BYTES``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import resource
import signal
import socket
import sys

import structlog

from devices.loop import ControlLoop
from devices.priority import run_at_niceness
from session.treatment_process import EXIT_ERROR, Ahead, Order, Outbox, open_channel, serve

log = structlog.get_logger(__name__)

MIN_MEMORY_LIMIT = 256 * 1024 * 1024  # the interpreter and its libraries need about this much
NICENESS = -10  # ahead of the workstation's other work, level with a simulated table's thread
HANDOVER_FDS = 3  # commands (read end), records (write end), the journal


def isolate(memory_limit_bytes: int, niceness: int) -> None:
    """Cap this process's address space, and run ahead of the workstation's other work at
    ``niceness`` where the system allows it (an unprivileged process keeps its priority: that is
    not an error). The niceness is set, not added: a parent already raised (one that serves a
    simulated table, ``simulators.priority``) must not push its treatments further ahead of it."""
    limit = max(memory_limit_bytes, MIN_MEMORY_LIMIT)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    run_at_niceness(niceness)


async def _session(fds: list[int], ahead: Ahead, running: set[ControlLoop]) -> None:
    """One session, from its handed-over descriptors to its end. The first line on its commands
    is its order."""
    commands_fd, records_fd, journal_fd = fds
    reader, incoming, writer = await open_channel(commands_fd, records_fd)
    try:
        try:
            order = dataclasses.replace(
                Order.from_line(await reader.readline()), journal_fd=journal_fd
            )
        except (ValueError, TypeError, KeyError) as exc:
            os.close(journal_fd)
            outbox = Outbox(writer)
            outbox.send_doc({"k": "error", "message": f"unreadable order: {exc}"})
            outbox.send_doc({"k": "end", "status": EXIT_ERROR})
            await outbox.close()
            return
        await serve(order, reader, writer, ahead, running)
    except Exception:  # a bug: the session's channel closes without an end, so it counts as lost
        log.exception("session failed in the control host")
        writer.close()
    finally:
        incoming.close()


async def host(control: socket.socket) -> int:
    """Take sessions from ``control`` until it reaches its end (the workstation is gone), then
    finish the sessions under way."""
    running_loop = asyncio.get_running_loop()
    ahead = Ahead()
    running: set[ControlLoop] = set()
    sessions: set[asyncio.Task[None]] = set()
    workstation_gone = asyncio.Event()

    def release_all() -> None:
        for loop in list(running):
            loop.release("control process terminated (SIGTERM)")

    def take() -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(control, 16, HANDOVER_FDS)
            except BlockingIOError:
                return
            except OSError as exc:
                log.error("control socket failed", error=str(exc))
                data, fds = b"", []
            if not data:
                running_loop.remove_reader(control.fileno())
                workstation_gone.set()
                return
            if len(fds) != HANDOVER_FDS:
                log.error("a hand-over without its descriptors ignored", fds=len(fds))
                for fd in fds:
                    os.close(fd)
                continue
            task = asyncio.create_task(_session(fds, ahead, running), name="session")
            sessions.add(task)
            task.add_done_callback(sessions.discard)

    running_loop.add_signal_handler(signal.SIGTERM, release_all)
    control.setblocking(False)
    running_loop.add_reader(control.fileno(), take)
    await workstation_gone.wait()
    while sessions:
        await asyncio.wait(set(sessions))
    return 0


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the workstation relays Ctrl-C as stop or release
    os.dup2(2, 1)  # nothing printed can land anywhere but the log
    control_fd, memory_limit = int(sys.argv[1]), int(sys.argv[2])
    isolate(memory_limit, NICENESS)
    control = socket.socket(fileno=control_fd)
    runner = asyncio.Runner()
    try:
        return runner.run(host(control))
    finally:
        with contextlib.suppress(Exception):  # out of memory, say: every journal is written
            runner.close()
        control.close()


if __name__ == "__main__":
    sys.exit(main())

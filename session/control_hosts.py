"""The workstation's side of its control host (:mod:`session.control_host`).

One host per workstation process and memory limit (a workstation configures one), started on the
first treatment and kept while it lives: each later session is handed to it over a private Unix
socket, as its two pipes and its journal. A host that has died is replaced on the next
treatment; one that is alive when the workstation ends sees its socket reach the end and ends
once its sessions have.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import socket
import subprocess
import sys


class ControlHost:
    """A running control host and the workstation's end of its socket."""

    def __init__(self, memory_limit_bytes: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "session.control_host",
                    str(theirs.fileno()),
                    str(memory_limit_bytes),
                ],
                stdin=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # a Ctrl-C at the terminal reaches the workstation only
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)  # a host that does not read never holds the workstation's loop
        self._socket = ours

    @property
    def pid(self) -> int:
        return self._process.pid

    def alive(self) -> bool:
        return self._process.poll() is None

    def hand_over(self, commands_fd: int, records_fd: int, journal_fd: int) -> None:
        """Give the host a session's descriptors (it gets copies; close ours after). Raises
        OSError if the host cannot take it (gone, or not reading)."""
        socket.send_fds(self._socket, [b"s"], [commands_fd, records_fd, journal_fd])

    async def exit_status(self, within: float) -> int | None:
        """The host's exit status once it has ended (negative: the signal that killed it), or
        ``None`` if it is still running after ``within`` seconds."""
        try:
            return await asyncio.to_thread(self._process.wait, within)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """Let the host end once its sessions have (it sees its socket reach the end)."""
        self._socket.close()
        self._process.poll()

    def reap(self, within: float) -> None:
        """Wait up to ``within`` seconds for the host to end (it ends at once without sessions)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(within)


AT_EXIT_S = 2.0

_hosts: dict[int, ControlHost] = {}
_retired: list[ControlHost] = []  # closed, perhaps still finishing: kept until reaped


def control_host(memory_limit_bytes: int) -> ControlHost:
    """This process's control host for ``memory_limit_bytes``, started if there is none running."""
    _retired[:] = [host for host in _retired if host.alive()]
    host = _hosts.get(memory_limit_bytes)
    if host is None or not host.alive():
        if host is not None:
            host.close()
        host = _hosts[memory_limit_bytes] = ControlHost(memory_limit_bytes)
    return host


def close_control_hosts() -> None:
    """Let every host of this process end once its sessions have (and start afresh next time)."""
    while _hosts:
        _, host = _hosts.popitem()
        host.close()
        _retired.append(host)


@atexit.register
def _at_exit() -> None:
    """The workstation is ending: close its end of every host's socket, and give each host a
    moment to end (with no session left it ends at once; with sessions it stops and releases
    them on its own, and this process does not wait for that)."""
    close_control_hosts()
    for host in _retired:
        host.reap(AT_EXIT_S)

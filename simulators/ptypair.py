"""Two pseudo-terminals joined like a null-modem cable, so real serial code runs without hardware.

The host side (driver) opens ``host_port``, the simulator opens ``device_port``; a relay thread
copies bytes both ways. ``cut()`` and ``mend()`` drop and restore the link to inject a dead cable.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty
from types import TracebackType


class PtyPair:
    def __init__(self) -> None:
        self._host_master, self._host_slave = os.openpty()
        self._dev_master, self._dev_slave = os.openpty()
        for fd in (self._host_slave, self._dev_slave):
            tty.setraw(fd)
        self.host_port = os.ttyname(self._host_slave)
        self.device_port = os.ttyname(self._dev_slave)
        self._connected = True
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._relay, name="pty-relay", daemon=True)
        self._running = False

    def start(self) -> PtyPair:
        self._running = True
        self._thread.start()
        return self

    def cut(self) -> None:
        """Stop carrying bytes (bytes sent meanwhile are lost, as on a pulled cable)."""
        self._connected = False

    def mend(self) -> None:
        self._connected = True

    def close(self) -> None:
        if self._running:
            self._running = False
            os.write(self._wake_w, b"x")
            self._thread.join(timeout=2)
        for fd in (
            self._host_master,
            self._host_slave,
            self._dev_master,
            self._dev_slave,
            self._wake_r,
            self._wake_w,
        ):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> PtyPair:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _relay(self) -> None:
        peers = {self._host_master: self._dev_master, self._dev_master: self._host_master}
        while self._running:
            readable, _, _ = select.select(
                [self._host_master, self._dev_master, self._wake_r], [], []
            )
            for fd in readable:
                if fd == self._wake_r:
                    return
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if data and self._connected:
                    os.write(peers[fd], data)

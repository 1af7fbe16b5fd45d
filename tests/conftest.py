"""Shared fixtures: pseudo-terminal serial pairs, free ports, clocks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devices.clock import ScaledClock
from simulators.ptypair import PtyPair

pytest_plugins = ["conftest_db"]  # database fixtures (SQLite and PostgreSQL)


@pytest.fixture
def pty_pair() -> Iterator[PtyPair]:
    """A null-modem pair of pseudo-terminals: host side for the driver, device side for a simulator."""
    with PtyPair() as pair:
        yield pair


@pytest.fixture
def clock() -> ScaledClock:
    """Real-time session clock."""
    return ScaledClock(1.0)

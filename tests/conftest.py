"""Shared fixtures: pseudo-terminal serial pairs, free ports, clocks."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator

import pytest
from rich.console import Console

from devices.clock import ScaledClock
from simulators.priority import share_with_a_table
from simulators.ptypair import PtyPair

pytest_plugins = ["conftest_db"]  # database fixtures (SQLite and PostgreSQL)

# A worker hosts simulated tables beside the code under test, on threads it starts at any point
# (a test's own, an app's server, a command run in-process). All of them share the interpreter
# lock with the simulator, so all run, from the start, where traction/tables.py raises the thread
# that opens a table: above ordinary programs, below the treatment processes. A run started below
# ordinary programs on purpose (.ci/mutation runs at nice 19) stays there.
if os.getpriority(os.PRIO_PROCESS, 0) <= 0:
    share_with_a_table()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Set the worker's start-up heap (modules, collected tests) aside from garbage collection.

    A simulated table answers from a thread of this process, so it waits out every collection,
    which holds the interpreter lock from start to end. A worker's heap holds 400,000 to 700,000
    objects, and a full collection took 300 to 800 ms on a loaded two-core machine, every few
    seconds (gc.callbacks, 2026-11-29): a table silent that long trips its session on a missing
    reading. Objects set aside (``gc.freeze``) are no longer traversed, so a collection costs what
    the current test made, not what the worker has accumulated."""
    gc.collect()
    gc.freeze()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After each test, collect what it made (between tests, when its tables are stopped) and set
    the survivors aside too. After a file's last test, first take everything back: its
    module-scoped fixtures are now garbage, possibly in cycles with what was set aside."""
    yield
    if nextitem is None or nextitem.path != item.path:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest files first. pytest-xdist (``--dist loadfile``, ``--no-loadscope-reorder``: see
    pyproject.toml) hands whole files to workers in collection order; a file of a few long tests
    (the fault matrix, the API contract) handed out last leaves the other workers idle while it
    runs. Files with tests marked ``slow`` go first, the most slow tests first; the rest follow,
    the most tests first, which is xdist's own order."""
    by_file: dict[str, list[pytest.Item]] = {}
    for item in items:
        by_file.setdefault(item.nodeid.split("::")[0], []).append(item)

    def longest_first(file_items: list[pytest.Item]) -> tuple[int, int]:
        slow = sum(item.get_closest_marker("slow") is not None for item in file_items)
        return (-slow, -len(file_items))

    items[:] = [item for file in sorted(by_file.values(), key=longest_first) for item in file]


@pytest.fixture(autouse=True)
def consoles_read_columns_when_used() -> None:
    """Rich fixes a console's width from COLUMNS when the console is made, and the command modules
    make theirs as they are imported: in one test process, during whichever test imports them
    first (which differs with how the files are spread over workers). Each test's COLUMNS (or the
    terminal) decides instead, as it does for a command in a process of its own."""
    # copy(): one step under the GIL, while a simulated table's thread may be importing
    for name, module in sys.modules.copy().items():
        if name == "traction" or name.startswith("traction."):
            for value in vars(module).copy().values():
                if isinstance(value, Console):
                    value._width = None  # what a console made without COLUMNS has


@pytest.fixture
def pty_pair() -> Iterator[PtyPair]:
    """A null-modem pair of pseudo-terminals: host side for the driver, device side for a simulator."""
    with PtyPair() as pair:
        yield pair


@pytest.fixture
def clock() -> ScaledClock:
    """Real-time session clock."""
    return ScaledClock(1.0)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show what the OpenAPI contract test (tests/test_api_contract.py) ran and found."""
    from served import SUMMARY

    summaries: dict[str, str] = {}  # by test: each phase's report carries the test's properties
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, value in getattr(report, "user_properties", ()):
                if name == SUMMARY:
                    summaries[report.nodeid] = value
    if summaries:
        terminalreporter.section("schemathesis (OpenAPI contract, every check, every role)")
        for text in summaries.values():
            terminalreporter.write_line(text)

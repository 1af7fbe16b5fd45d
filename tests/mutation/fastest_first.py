"""pytest plugin for mutation runs: run each mutant's tests fastest first.

mutmut runs a mutant's tests with ``-x`` and records every test's duration in its stats file;
ordering by that duration lets the quick tests kill most mutants before a slow wire test starts.
.ci/mutation copies this file beside the mutated tree and loads it with ``-p fastest_first``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STATS = Path("mutmut-stats.json")  # mutmut runs the tests from its mutants/ directory


def pytest_collection_modifyitems(items: list[Any]) -> None:
    if not STATS.exists():
        return
    durations: dict[str, float] = json.loads(STATS.read_text()).get("duration_by_test", {})
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))

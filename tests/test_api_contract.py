"""The OpenAPI document matches every response: schemathesis with every check (``--checks all``)
over every route, once per caller (no token, then each role), against the API served over TLS by
a real uvicorn with a certificate from ``traction tls self-signed``'s code. The summaries are
printed at the end of the pytest run (see conftest.py), so CI shows what was tried.

The number of examples per operation is bounded (``SCHEMATHESIS_EXAMPLES``, default 5) and the
seed fixed, so a run takes about a minute per caller on two cores and a failure reproduces.
tests/contract/schemathesis.toml says where a schema-valid request may still get a 422 (rules
JSON Schema cannot state: safety limits, references that must exist, configs/ keys).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import World, make_world
from served import SUMMARY, Served, serving, with_tls

CALLERS = ["none", "technician", "clinician", "billing", "admin"]
CONFIG = Path(__file__).parent / "contract" / "schemathesis.toml"
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "5"))


# A PostgreSQL connection another module's in-process command dropped may be collected while this
# module starts its server; it is that module's leak, not this contract's finding.
pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, World]]:
    folder = tmp_path_factory.mktemp("api-contract")
    # TLS, logs and the contract are the HTTP layer's: one backend is enough here
    world = with_tls(make_world(folder, f"sqlite:///{folder / 'traction.db'}"), folder / "tls")
    with serving(world) as server:
        yield server, world


def summary(output: str) -> str:
    """The SUMMARY block of a schemathesis run (operations, phases, failures, case counts)."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if "SUMMARY" in line), 0)
    return "\n".join(line for line in lines[start:] if line.strip())


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("caller", CALLERS)
def test_schemathesis_with_every_check_finds_nothing(
    served: tuple[Served, World], caller: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server, world = served
    headers = [] if caller == "none" else ["-H", f"Authorization: Bearer {world.tokens[caller]}"]
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--no-color",
        "--config-file",
        str(CONFIG),
        "run",
        f"{server.base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        "20261128",
        "--workers",
        "1",
        "--tls-verify",
        str(server.ca),
        "--request-timeout",
        "30",
        *headers,
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
        cwd=tmp_path,  # schemathesis keeps a cache folder where it runs
    )
    # a report property, not the session's stash: it reaches the summary from an xdist worker too
    request.node.user_properties.append(
        (SUMMARY, f"schemathesis as {caller}:\n{summary(done.stdout)}")
    )
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", done.stdout)
    tested = re.search(r"Tested: (\d+)", done.stdout)
    assert selected and tested, done.stdout[-3000:]
    assert selected[1] == selected[2] == tested[1], "every documented operation is tested"

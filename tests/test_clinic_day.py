"""README's "A day at the clinic", run as it stands: every command of its fenced block, in order,
on the workstation's simulated table, on SQLite and PostgreSQL (``db_url``).

Only what a test cannot do like a person is changed: passwords are typed through standard input,
the example session id ``3f2a91`` becomes the id the run printed, ``/mnt/usb`` is a temporary
folder, and the treatment is shortened for this session with the options the README names
(``--hold-s 5 --rest-s 5 --minutes 1.6``) on a simulated table running 5 times faster."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from bounds_support import steady_command_line
from conftest_db import CommandRunner, dispose_engines, query

from traction.cli import app
from traction.exitcodes import Exit

README = Path(__file__).resolve().parent.parent / "README.md"
PASSWORD = "a long clinic passphrase"
EXAMPLE_ID = "3f2a91"
SHORTER = ["--hold-s", "5", "--rest-s", "5", "--minutes", "1.6", "--time-scale", "5"]


def day_commands() -> list[list[str]]:
    """The commands of the section's fenced block, in order (``&&`` splits a line in two)."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## A day at the clinic") :]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the section has no ```sh block"
    commands = []
    for line in block.group(1).splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            commands.append(words[:cut])
            words = words[cut + 1 :]
    assert all(c[0] == "traction" for c in commands), commands
    return [c[1:] for c in commands]


@pytest.fixture
def clinic(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("TRACTION_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRACTION_DATABASE_URL", db_url)
    steady_command_line(monkeypatch)
    monkeypatch.setenv("TRACTION_TIME_ZONE", "America/Chicago")
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    dispose_engines()


@pytest.mark.backend("sqlite")
def test_the_readme_day_runs_command_by_command(clinic: Path) -> None:
    commands = day_commands()
    names = [" ".join(c[:2]) for c in commands]
    for step in ("login lee", "patients add", "plans set", "run --patient", "sessions amend",
                 "sessions sign", "sessions cosign", "today", "export --new", "verify", "backup "):  # fmt: skip
        assert any(n.startswith(step.strip()) for n in names), f"the day lacks {step!r}"
    session_id = ""
    for args in commands:
        if args[0] == "run":
            args = [*args, *SHORTER]
        args = [a.replace(EXAMPLE_ID, session_id) if session_id else a for a in args]
        args = [a.replace("/mnt/usb", str(clinic)) for a in args]
        prompted = args[:2] == ["users", "passwd"] or args[0] == "login"
        typed = f"{PASSWORD}\n{PASSWORD}\n" if prompted else None
        result = CommandRunner().invoke(app, args, input=typed)
        assert result.exit_code == Exit.OK, f"traction {shlex.join(args)}\n{result.output}"
        if args[0] == "run":
            [(session_id,)] = query(os.environ["TRACTION_DATABASE_URL"], "SELECT id FROM sessions")
            session_id = session_id[:12]
            assert "plan of care v1: if tolerated, next session hold 45.0 lbf" in result.output
        if args[0] == "export":  # the table is simulated: documented, never billed
            assert "nothing new" in result.output
    [(signed, cosigned)] = query(
        os.environ["TRACTION_DATABASE_URL"], "SELECT signed_by_id, cosigned_by_id FROM sessions"
    )
    assert (signed, cosigned) == (2, 1)  # the assistant signed, the supervising PT co-signed
    versions = query(os.environ["TRACTION_DATABASE_URL"], "SELECT version FROM plan_versions")
    assert sorted(v for (v,) in versions) == [1, 2]  # set, then the step the PT confirmed
    assert (clinic / "traction-2026-11-28.db").is_file()

"""Command-line helpers for tests: sign a person in the way a clinic does (user, password, login)."""

from __future__ import annotations

from pathlib import Path

from conftest_db import CommandRunner

from traction.cli import app

PASSWORD = "a long clinic passphrase"
# A 60 s demo-shaped profile and the clock scale it runs at in tests: 12 s of real time. Tests that
# start sessions from their own process run them on bounds_support's steady bounds.
QUICK_PROFILE = str(Path(__file__).parent / "profiles" / "quick-lumbar.toml")
QUICK_SCALE = "5"


def cli(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CommandRunner().invoke(app, list(args), input=stdin)
    return result.exit_code, result.output


def sign_in(name: str, role: str = "clinician", clinician: int | None = None) -> None:
    """Create the user (linked to ``clinician``), set a password and `traction login` as them."""
    link = ["--clinician", str(clinician)] if clinician is not None else []
    code, out = cli("users", "add", name, "--role", role, *link)
    assert code == 0, out
    code, out = cli("users", "passwd", name, "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, out
    code, out = cli("login", name, "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0 and f"signed in as {name}" in out, out

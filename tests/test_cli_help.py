"""Every command's --help: each paragraph of its docstring reads as one, wrapped at the terminal's
width, not at the source's (traction/cli.py, ``paragraphs``)."""

from __future__ import annotations

import pytest
from cli_support import cli

from traction.cli import COMMANDS, paragraphs


def test_a_paragraphs_lines_are_joined_and_list_items_keep_their_own() -> None:
    text = """Summary line.

    First paragraph, wrapped
    in the source.

    - an item
    - another,
      continued
    Try: this"""
    assert paragraphs(text) == (
        "Summary line.\n\nFirst paragraph, wrapped in the source.\n\n"
        "- an item\n- another,\n  continued Try: this"
    )


@pytest.mark.parametrize("columns", ["80", "200"])
def test_the_demos_help_reads_in_sentences_at_any_width(
    monkeypatch: pytest.MonkeyPatch, columns: str
) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    code, out = cli("demo", "--help")
    assert code == 0, out
    # The source breaks this sentence after "a demo patient". At any width all of it is there ...
    assert "a demo patient and clinician are registered" in " ".join(out.split()), out
    if columns == "200":  # ... and where the terminal is wide enough, on one line
        assert any(
            "a demo patient and clinician are registered" in line for line in out.splitlines()
        )


def test_every_command_has_a_help_that_loads() -> None:
    for name in COMMANDS:
        code, out = cli(name, "--help")
        assert code == 0, f"{name}: {out}"
        assert "Usage: traction" in " ".join(out.split()), name

"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Settings file (TOML); default: TRACTION_CONFIG or built-in defaults.",
        exists=True,
        dir_okay=False,
    ),
]

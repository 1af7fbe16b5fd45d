"""Turning known errors into one clear line and an exit code, for every command alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from devices.errors import ConfigError, TableError, TractionError
from session.errors import (
    DocumentationError,
    IdentityError,
    SchemaError,
    StoreError,
    TableLocked,
)
from traction.exitcodes import Exit

_stderr = Console(stderr=True)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Wrap a command body: bad input and table failures print what to do next, not a traceback."""
    try:
        yield
    except ConfigError as exc:
        _stderr.print(f"[red]error:[/] {exc}")
        raise typer.Exit(Exit.USAGE) from None
    except TableLocked as exc:
        _stderr.print(f"[red]locked:[/] {exc}")
        raise typer.Exit(Exit.REFUSED) from None
    except TableError as exc:
        _stderr.print(
            f"[red]table error:[/] {exc}\nCheck the cable, address and power, then retry."
        )
        raise typer.Exit(Exit.TABLE) from None
    except (SchemaError, StoreError, DocumentationError, IdentityError) as exc:
        _stderr.print(f"[red]error:[/] {exc}")
        raise typer.Exit(Exit.USAGE) from None
    except TractionError as exc:
        _stderr.print(f"[red]error:[/] {exc}")
        raise typer.Exit(Exit.FAILED) from None

"""Finding the data files in ``configs/``, from a source checkout or an installed package."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable


def config_root() -> Traversable:
    """The ``configs`` folder shipped with the product."""
    return files("configs")


def config_file(*parts: str) -> Traversable:
    """A file below ``configs/``, e.g. ``config_file("devices", "generic-v1.toml")``."""
    node = config_root()
    for part in parts:
        node = node.joinpath(part)
    return node

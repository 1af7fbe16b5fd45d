"""The documentation as JSON, validated against the published, versioned schema.

The schema file ``session/schemas/documentation-v2.json`` is generated from the model
(:func:`schema`) and committed; a test keeps the two identical, so a change to the model that changes
the schema fails until the schema version is raised.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from session.documentation import Documentation

SCHEMA_ID = "https://traction.invalid/schemas/documentation-v2.json"
SCHEMA_FILE = "documentation-v2.json"


def schema() -> dict[str, Any]:
    """The JSON Schema of documentation v2, as the model defines it."""
    generated = Documentation.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **generated,
        "title": "CPT 97012 mechanical traction session documentation, version 2",
    }


@lru_cache(maxsize=1)
def published_schema() -> dict[str, Any]:
    """The schema file shipped with the package."""
    # beside the package's modules (package data), so it works from a checkout and when installed
    text = (Path(__file__).resolve().parent.parent / "schemas" / SCHEMA_FILE).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def to_dict(doc: Documentation) -> dict[str, Any]:
    return doc.model_dump(mode="json")


def render_json(doc: Documentation) -> str:
    """The documentation as indented JSON; checked against the published schema before returning."""
    data = to_dict(doc)
    jsonschema.validate(data, published_schema())
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_schema_text() -> str:
    """The text of the schema file (used to regenerate it after a version bump)."""
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"

"""Upper bounds on everything the API accepts, in one place, so each appears in the OpenAPI document.

Every string and list has a maximum, every integer fits the store's columns (PostgreSQL
``integer`` ids: 2^31 - 1) and every number is finite: a request past a bound is a 422 naming the
field before any work grows with it. The request body as a whole is bounded by the
``max_request_bytes`` setting (413).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Path
from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, Strict

MAX_ID = 2**31 - 1
"""Ids are PostgreSQL ``integer`` columns; SQLite holds 64 bits, PostgreSQL 32."""
MAX_NAME = 64
"""References, names, keys, labels: a patient reference, a user, a table, a profile, a payer."""
MAX_TEXT = 4000
"""Free documentation text (medical necessity, patient response, an amendment's value)."""
MAX_REASON = 500
"""Why something changed (a live settings change, an amendment)."""
MAX_REGIONS = 4
MAX_DIAGNOSES = 12
"""An 837P claim carries at most 12 diagnosis codes."""
MAX_DIAGNOSIS_CODE = 8
"""ICD-10-CM: at most 7 characters and a dot."""
MAX_CONTRAINDICATIONS = 32
MAX_PROFILE_KEYS = 24
MAX_PROFILE_NUMBER = 1_000_000.0
"""No profile setting (seconds, newtons, steps) is anywhere near a million."""
MAX_SEQ = 2**31 - 1
MAX_VALUE_ITEMS = 64
"""Items in a list or keys in an object inside a free-form value (an amendment's value)."""

Id = Annotated[int, Strict(), Field(ge=1, le=MAX_ID)]
"""An id in a body: a JSON integer (not "1", not true), 1 to MAX_ID."""
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
Number = Annotated[float, Strict()]
"""A number in a body: a finite JSON number (not "3", not false)."""


def unique(values: list[Any]) -> list[Any]:
    """Refuse a list that names something twice (10,000 copies of one code are one code)."""
    seen: set[str] = set()
    for value in values:
        key = json.dumps(value, sort_keys=True, default=str)
        if key in seen:
            raise ValueError(f"{value!r} is listed twice")
        seen.add(key)
    return values


def finite_and_bounded(value: Any, where: str = "value", depth: int = 0) -> Any:
    """Refuse non-finite numbers (NaN, Infinity) and numbers beyond any setting's range anywhere
    in a free-form JSON value, and nesting deeper than a profile or documentation value needs."""
    if depth > 4:
        raise ValueError(f"{where} is nested deeper than 4 levels")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where} must be a finite number, not {value}")
        if abs(value) > MAX_PROFILE_NUMBER:
            raise ValueError(f"{where} {value:g} is beyond {MAX_PROFILE_NUMBER:g}")
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise ValueError(f"{where} is longer than {MAX_TEXT} characters")
        return value
    if isinstance(value, Mapping | list) and len(value) > MAX_VALUE_ITEMS:
        raise ValueError(f"{where} holds more than {MAX_VALUE_ITEMS} items")
    if isinstance(value, Mapping):
        for key, item in value.items():
            finite_and_bounded(item, f"{where}.{key}", depth + 1)
        return value
    if isinstance(value, list):
        for index, item in enumerate(value):
            finite_and_bounded(item, f"{where}[{index}]", depth + 1)
        return value
    return value


class OutOfBounds(ValueError):
    """A profile setting past its bound; ``key`` names the setting."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def check_profile_settings(settings: Mapping[str, Any]) -> None:
    """A profile's settings are flat, finite and short, before the profile reader judges their
    ranges (raises :class:`OutOfBounds` naming the setting)."""
    for key, item in settings.items():
        if len(key) > MAX_NAME:
            raise OutOfBounds(key[:MAX_NAME], f"a setting name is at most {MAX_NAME} characters")
        if isinstance(item, str) and len(item) > MAX_NAME:
            raise OutOfBounds(key, f"{key} is longer than {MAX_NAME} characters")
        if isinstance(item, dict | list):
            raise OutOfBounds(key, f"{key} must be a number or text, not a {type(item).__name__}")
        if isinstance(item, float) and not math.isfinite(item):
            raise OutOfBounds(key, f"{key} must be a finite number, not {item}")
        # ranges are the profile reader's: it names every setting out of range at once


ProfileSettings = Annotated[dict[str, Any], Field(max_length=MAX_PROFILE_KEYS)]
"""A profile's settings as in configs/profiles/*.toml: at most 24, flat, finite (checked by
:func:`check_profile_settings` so the refusal names the setting)."""

AnyValue = Annotated[Any, AfterValidator(finite_and_bounded)]

_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _not_a_number(value: Any) -> Any:
    """Pydantic reads ``0.5`` as a Unix time; a moment given to the API is written out in full."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError(
            f"{value!r} is not a date-time: write ISO 8601 with a timezone, like 2025-03-01T00:00Z"
        )
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]
"""An ISO 8601 date-time with a timezone (a bare number or a naive time is refused)."""

SessionId = Annotated[str, Path(min_length=1, max_length=MAX_NAME, description="A session id")]

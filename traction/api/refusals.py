"""Every refused input becomes one documented shape: a 422 :class:`RefusedOut` naming each field.

FastAPI's own validation errors echo the input back, which breaks on the values that most need
refusing (NaN and Infinity cannot be written as JSON) and differs from the shape the safety
refusals use. Here every violation is ``{field, value, limit, message, severity}``, the value
shown short and as text, so a refusal can always be rendered.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from devices.errors import ConfigError

_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60
_SHORT.maxlevel = 2
_SHORT.maxdict = _SHORT.maxlist = 4

UNPARSABLE_BODY = "There was an error parsing the body"
"""FastAPI's 400 for a body that is not JSON at all (e.g. nested past the parser's depth)."""

_RULES = {
    "gt": "> {}",
    "ge": ">= {}",
    "lt": "< {}",
    "le": "<= {}",
    "max_length": "at most {}",
    "min_length": "at least {}",
    "pattern": "matches {}",
    "expected": "one of {}",
}


def shown(value: Any) -> str:
    """A short, always-renderable text for a refused value."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return _SHORT.repr(value).strip("'\"") if len(value) > 60 else value
    return _SHORT.repr(value)


def _rule(error: Mapping[str, Any]) -> str:
    context = error.get("ctx") or {}
    for key, template in _RULES.items():
        if key in context:
            return template.format(context[key])
    return str(error.get("type", "value_error"))


def _field(loc: Iterable[Any]) -> str:
    return ".".join(str(part) for part in loc)


def violation(loc: Iterable[Any], message: str, value: Any, limit: str) -> dict[str, str]:
    return {
        "field": _field(loc),
        "value": shown(value),
        "limit": limit,
        "message": message,
        "severity": "block",
    }


def refusal(violations: list[dict[str, str]]) -> JSONResponse:
    first = violations[0]
    more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
    detail = f"{first['field']}: {first['message']}{more}"
    return JSONResponse({"detail": detail, "violations": violations}, status_code=422)


def _message(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    # pydantic's "Value error, ..." prefix adds nothing for a reader
    return message.removeprefix("Value error, ")


async def validation_refused(request: Request, exc: Exception) -> JSONResponse:
    """A :class:`RequestValidationError` (FastAPI's or a route's own) as a refusal."""
    assert isinstance(exc, RequestValidationError)
    violations = [
        violation(e.get("loc", ()), _message(e), e.get("input"), _rule(e)) for e in exc.errors()
    ]
    return refusal(violations or [violation(("body",), "invalid request", None, "valid JSON")])


async def config_refused(request: Request, exc: Exception) -> JSONResponse:
    """A configuration-shaped refusal (a profile setting) naming where it was found."""
    assert isinstance(exc, ConfigError)
    where = [part for part in exc.where.split(": ") if part]
    return refusal([violation(where, exc.message, None, "see the message")])


async def http_refused(request: Request, exc: Exception) -> JSONResponse:
    """HTTP errors as ``{"detail": ...}``; a body the JSON parser gives up on is a refused body,
    like any other body that is not valid JSON, rather than an undocumented 400."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and exc.detail == UNPARSABLE_BODY:
        return refusal([violation(("body",), "the body is not parsable JSON", None, "JSON")])
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

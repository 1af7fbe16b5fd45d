"""Structured logging through structlog: readable on a terminal, JSON lines when asked."""

from __future__ import annotations

import logging
import re
import sys

import structlog

TOKEN = re.compile(r"trk_[A-Za-z0-9_-]{8,}")


def redact_tokens(
    logger: object, method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """No bearer token reaches a log line, whoever wrote the line (a library's message, an
    exception's text): each becomes ``trk_[redacted]``."""
    for key, value in event.items():
        if isinstance(value, str) and "trk_" in value:
            event[key] = TOKEN.sub("trk_[redacted]", value)
    return event


def configure_logging(level: str = "info", json: bool = False) -> None:
    """Set up structlog and the standard library root logger (pymodbus, uvicorn) alike."""
    numeric = getattr(logging, level.upper(), None)
    if not isinstance(numeric, int):
        raise ValueError(f"log level {level!r} is not one of debug, info, warning, error")
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[structlog.typing.Processor] = [
        redact_tokens,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # pymodbus logs every retry at warning/error; our typed errors already say it.
    logging.getLogger("pymodbus").setLevel(max(numeric, logging.CRITICAL))

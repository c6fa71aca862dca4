"""structlog, configured once: JSON when not on a terminal, readable when on one. Every line
carries what was bound to the context (request_id, merchant_id, case_id). Keys that could hold
secrets or customer e-mail addresses are masked before rendering."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRET_KEYS = {"authorization", "api_key", "key", "password", "secret", "email", "stripe_api_key"}
_EMAIL = re.compile(r"[^@\s\"']+@[^@\s\"']+\.[A-Za-z]{2,}")


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if key.lower() in _SECRET_KEYS:
            event[key] = "[redacted]"
        elif isinstance(value, str) and "@" in value:
            event[key] = _EMAIL.sub("[email]", value)
    return event


def configure_logging(log_format: str = "auto", level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Once per process; ``stream`` (default stderr) is where the lines go."""
    stream = stream or sys.stderr
    as_json = log_format == "json" or (log_format == "auto" and not stream.isatty())
    renderer = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )

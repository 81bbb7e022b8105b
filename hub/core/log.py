"""Logging for the hub and the connectors: structlog, configured once.

Events are snake_case nouns with key-value context (``log.info("batch_delivered", records=12)``).
Output is JSON lines when stderr is not a terminal (for collectors), readable key=value on one.
Personal data must never be passed as a value: log counts, keys' hashes, field *names*.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

_configured = False


def configure_logging(level: str | None = None, *, json: bool | None = None) -> None:
    """Configure structlog and the stdlib root logger. Safe to call more than once."""
    global _configured  # noqa: PLW0603 - logging is process-wide by nature
    level_name = (level or os.environ.get("XHUB_LOG_LEVEL", "INFO")).upper()
    numeric = logging.getLevelName(level_name)
    if not isinstance(numeric, int):
        numeric = logging.INFO
    as_json = json if json is not None else not sys.stderr.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if as_json
        else (structlog.dev.ConsoleRenderer(colors=False))
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # Resolve sys.stderr at each write, not once: test runners and daemons replace it.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    # kafka-python logs through stdlib logging; keep it quiet unless asked.
    logging.basicConfig(
        level=max(numeric, logging.WARNING), stream=sys.stderr, format="%(name)s %(levelname)s %(message)s"
    )
    logging.getLogger("kafka").setLevel(max(numeric, logging.ERROR))
    _configured = True


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    return structlog.PrintLogger(file=sys.stderr)


def get_logger(name: str, **context: Any) -> structlog.stdlib.BoundLogger:
    """Return a logger bound to ``component=name`` and any extra context."""
    if not _configured:
        configure_logging()
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(component=name, **context)
    return logger

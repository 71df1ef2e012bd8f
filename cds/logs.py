"""Structured logs: one JSON line per call, never patient data, never tokens."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

__all__ = ["configure_logging", "log_call", "logger"]

logger = logging.getLogger("cds")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            payload["error"] = record.exc_info[0].__name__
        return orjson.dumps(payload).decode()


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


def log_call(**fields: Any) -> None:
    """Log one hook call. Callers pass only ids, counts, statuses and durations."""
    logger.info("call", extra={"fields": fields})

"""Structured logging: one line per event, ``key=value`` pairs after the message."""

from __future__ import annotations

import logging
import sys
from typing import Any


class KeyValueFormatter(logging.Formatter):
    """Render ``extra={"kv": {...}}`` as sorted ``key=value`` pairs after the message."""

    def format(self, record: logging.LogRecord) -> str:
        when = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        base = f"{when} {record.levelname:<7} {record.name} {record.getMessage()}"
        kv = getattr(record, "kv", None)
        if kv:
            base += " " + " ".join(f"{k}={_fmt(v)}" for k, v in kv.items())
        if record.exc_info:
            base += "\n" + self.formatException(record.exc_info)
        return base


def _fmt(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="'):
        return '"' + text.replace('"', '\\"') + '"'
    return text


def kv(**pairs: Any) -> dict[str, Any]:
    """``log.info("stored", extra=kv(site=..., n=...))``: the context of one log line."""
    return {"kv": pairs}


class _CurrentStderr(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is at each record, not as it was at setup: a stream that
    was swapped and closed since (a test's captured output) would make every later record a
    "Logging error" with a traceback printed."""

    # Marks the handler setup_logging installed, so a second call does not add another.
    _farsight = True

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def setup_logging(level: str = "INFO") -> None:
    """Send Farsight's logs to stderr in key=value form (idempotent)."""
    root = logging.getLogger()
    for h in root.handlers:
        if getattr(h, "_farsight", False):
            root.setLevel(level)
            return
    handler = _CurrentStderr()
    handler.setFormatter(KeyValueFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    # amqtt and uvicorn access logs drown the platform's own lines at INFO.
    for noisy in ("amqtt", "transitions", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

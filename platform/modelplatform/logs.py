"""Structured logs: one JSON object per line.

:class:`JsonFormatter` is wired in by ``gunicorn_conf.logconfig_dict`` (it has no dependencies, so
the gunicorn master can load it). The per-request line is written by :mod:`modelplatform.http.observe`.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

# the attributes every LogRecord has; anything else was passed through ``extra=`` and is a field
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "pid", ...extra fields, "exc"}`` on one line.

    Control characters in any value are escaped by the JSON encoder, so a hostile string can never
    forge a second log line.
    """

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,  # which gunicorn worker (or the master) wrote it
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


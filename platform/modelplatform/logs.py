"""Structured logs: one JSON object per line, and the fields of the per-request line.

:class:`JsonFormatter` is wired in by ``gunicorn_conf.logconfig_dict`` (it has no dependencies, so
the gunicorn master can load it). The request line is written by :mod:`modelplatform.http.observe`;
the data plane's audit wrapper adds the model, version and outcome of the request being served
through :func:`note_inference`, via a context variable, so the data plane stays free of HTTP.
"""
from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

import orjson

from modelplatform.audit.records import InferenceRecord

# the attributes every LogRecord has; anything else was passed through ``extra=`` and is a field
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}

_request_fields: ContextVar[dict[str, Any] | None] = ContextVar("modelplatform_request_fields", default=None)


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "pid", ...extra fields, "exc"}`` on one line.

    Control characters in any value are escaped by the JSON encoder, so a hostile string can never
    forge a second log line.
    """

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
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


def start_request() -> None:
    """Begin collecting the fields of the current request's log line."""
    _request_fields.set({})


def end_request() -> dict[str, Any]:
    """Stop collecting; the fields noted since :func:`start_request` (empty if none)."""
    fields = _request_fields.get() or {}
    _request_fields.set(None)
    return fields


def note_inference(record: InferenceRecord) -> None:
    """Add what the data plane decided to the current request's line (shadow calls are not the answer)."""
    fields = _request_fields.get()
    if fields is None or record.routed_by == "shadow":
        return
    fields.update(model=record.model, version=record.version, routed_by=record.routed_by,
                  outcome=record.status, inference_id=record.id)

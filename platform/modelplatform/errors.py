"""Every error the platform can answer with, each carrying its HTTP status and problem type.

One handler (:mod:`modelplatform.http.problems`) renders any :class:`ProblemError` as RFC 9457
``application/problem+json``; the data plane and adapters raise these and never build responses.
"""
from __future__ import annotations

from typing import Any, ClassVar

from modelplatform.audit.records import InferenceSummary

PROBLEM_BASE = "urn:modelplatform:problem:"
# what a problem echoes from the request (a model name from the URL, a media type) is cut to this
MAX_ECHO_CHARS = 80


def echo(text: str) -> str:
    """``text`` taken from a request, cut to :data:`MAX_ECHO_CHARS` (marked with "…") for a problem body:
    a 4 KB model name in the URL must not come back whole."""
    return text if len(text) <= MAX_ECHO_CHARS else text[:MAX_ECHO_CHARS - 1] + "…"


class ModelRejected(Exception):
    """Raised by a model's ``predict`` to refuse an input on business grounds.

    Answered as 422 with ``code`` so callers can branch on it (e.g. ``unknown_vehicle``).
    """

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(code, message)
        self.code = str(code)
        self.message = str(message)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


class ProblemError(Exception):
    """Base of every error that becomes a problem+json response.

    ``recorded`` is set when the request's inference was recorded before the error was raised (invalid input,
    a rejection, a model failure, a deadline): the problem then carries its ``inference_id``, and the request's
    log line its model, version, routing and outcome.
    """

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"
    # response headers that belong to this problem (e.g. WWW-Authenticate on a 401)
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, detail: str, *, recorded: InferenceSummary | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.recorded = recorded
        self.extra = extra

    @property
    def inference_id(self) -> str | None:
        return self.recorded.inference_id if self.recorded is not None else None

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def to_problem(self) -> dict[str, Any]:
        """The RFC 9457 body: ``type``, ``title``, ``status``, ``detail`` plus extension members."""
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.inference_id is not None:
            body["inference_id"] = self.inference_id
        body.update(self.extra)
        return body


class MalformedJSON(ProblemError):
    status, slug, title = 400, "malformed-json", "Request body is not valid JSON"


class MalformedBody(ProblemError):
    """The body itself did not arrive intact: bad chunked framing, or the connection ended before the
    announced ``Content-Length``. Nothing of it is used."""

    status, slug, title = 400, "malformed-body", "Request body is malformed or incomplete"


class BadRequest(ProblemError):
    status, slug, title = 400, "bad-request", "Bad request"


class NumberPrecision(ProblemError):
    """Numbers a 64-bit float cannot hold exactly; ``errors`` lists each as ``{"path", "message"}``.

    Refused because the validator and the model would see a rounded value while the audit row kept the
    digits as written (docs/validation.md, "Numbers").
    """

    status, slug, title = 400, "number-precision", "A number cannot be represented exactly"


class Unauthorized(ProblemError):
    """No, malformed or unknown API key (only when API keys are configured)."""

    status, slug, title = 401, "unauthorized", "A valid API key is required"
    headers = {"WWW-Authenticate": 'Bearer realm="modelplatform"'}


class UnsupportedMediaType(ProblemError):
    status, slug, title = 415, "unsupported-media-type", "Request body must be application/json"


class PayloadTooLarge(ProblemError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class UnknownModel(ProblemError):
    status, slug, title = 404, "unknown-model", "Unknown model"


class UnknownVersion(ProblemError):
    status, slug, title = 404, "unknown-version", "Unknown model version"


class InvalidInput(ProblemError):
    """Schema violations; ``errors`` lists every one as ``{"path": <JSON Pointer>, "message": ...}``."""

    status, slug, title = 422, "invalid-input", "Input does not match the model version's schema"


class Rejected(ProblemError):
    """The model refused the input (:class:`ModelRejected`); ``code`` is the model's own code."""

    status, slug, title = 422, "rejected", "The model rejected the input"


class ModelFailed(ProblemError):
    """The model raised, or returned something that cannot be encoded. No trace is sent."""

    status, slug, title = 500, "model-error", "The model failed on this input"


class RequestTimeout(ProblemError):
    """The client did not send its request head or body within the server's read deadline
    (``WEB_HEADER_TIMEOUT``/``WEB_BODY_TIMEOUT``). ``phase`` says which: ``idle``, ``head`` or ``body``."""

    status, slug, title = 408, "request-timeout", "The request was not received in time"

    def __init__(self, detail: str, *, phase: str = "body", **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.phase = phase


class DeadlineExceeded(ProblemError):
    """The model did not answer within ``PREDICT_TIMEOUT``; the inference is recorded with status ``error``."""

    status, slug, title = 504, "deadline-exceeded", "The model did not answer in time"


class NotReady(ProblemError):
    status, slug, title = 503, "not-ready", "Service not ready"


class AuditUnavailable(ProblemError):
    """The inference could not be durably recorded, so no answer is given."""

    status, slug, title = 503, "audit-unavailable", "The inference could not be recorded"


class StartupError(Exception):
    """The service cannot start; ``problems`` lists every reason (model, version, why)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("cannot start:\n" + "\n".join(f"  - {p}" for p in self.problems))

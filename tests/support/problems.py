"""The one check every error test makes: an RFC 9457 problem+json with the expected status and type."""
from __future__ import annotations

import json
from typing import Any

from modelplatform.errors import PROBLEM_BASE


def problem_type(slug: str) -> str:
    """``about:blank`` as is (Werkzeug's and gunicorn's own errors), else our URN for ``slug``."""
    return slug if slug == "about:blank" else PROBLEM_BASE + slug


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    """Assert a response is problem+json (never HTML) of ``status`` and type ``slug``; return its document.

    ``response`` is a Flask test client's or, for a real server, a ``requests`` response.
    """
    body = response.get_data() if hasattr(response, "get_data") else response.content
    assert response.status_code == status, body[:300]
    assert response.headers["Content-Type"] == "application/problem+json"
    assert b"<html" not in body.lower()
    doc = json.loads(body)
    assert doc["status"] == status
    assert doc["type"] == problem_type(slug), doc
    assert doc["title"] and doc["detail"]
    return doc

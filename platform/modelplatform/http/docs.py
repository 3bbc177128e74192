"""``GET /docs``: a browsable page over ``/openapi.json`` where a user can try every call.

Everything it needs ships in the package (``http/static/``): the machines running the service may
have no internet, so there is no CDN. It is a small self-written page rather than Swagger UI, whose
last PyPI-packaged bundle predates OpenAPI 3.1.
"""
from __future__ import annotations

from flask import Blueprint, Response

bp = Blueprint("docs", __name__, static_folder="static", static_url_path="/docs/static")


@bp.get("/docs")
def docs() -> Response:
    page = bp.open_resource("static/docs.html").read()
    resp = Response(page, mimetype="text/html")
    # the page only talks to this origin; forbid anything else it could be tricked into loading
    resp.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:")
    return resp

"""The ceiling: a bare Flask JSON endpoint (parse the body, answer JSON), no validation, model or audit."""
from __future__ import annotations

from flask import Flask, jsonify, request


def create_app() -> Flask:
    app = Flask("bare")

    @app.post("/predict")
    def predict():  # noqa: ANN202
        body = request.get_json()
        return jsonify({"ok": True, "echo": body})

    return app

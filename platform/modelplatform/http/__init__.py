"""The HTTP layer: blueprints parse requests and shape responses; all work is delegated to the data plane."""
from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, current_app

if TYPE_CHECKING:
    from modelplatform.dataplane import DataPlane

DATAPLANE = "modelplatform.dataplane"  # where create_app puts the app's data plane, in ``app.extensions``


def dataplane(app: Flask | None = None) -> DataPlane:
    """The data plane ``app`` (default: the app handling the current request) serves from."""
    plane: DataPlane = (app if app is not None else current_app).extensions[DATAPLANE]
    return plane

"""modelplatform: S3-backed, versioned model serving with A/B routing and an audit trail.

Importing this package loads nothing: no config, no models, no connections. Model authors
need only :class:`ModelRejected`; the service is built by :func:`modelplatform.app.create_app`.
"""
from modelplatform.errors import ModelRejected

__all__ = ["ModelRejected"]

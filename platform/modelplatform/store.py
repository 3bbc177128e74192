"""The S3 model store adapter: ``s3://bucket/prefix`` → ``<prefix>/<name>/<version>.dill``.

boto3 honours ``AWS_ENDPOINT_URL`` itself, so the same code talks to AWS S3 or any S3-compatible
endpoint (MinIO, moto's server in the demo and tests).
"""
from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from modelplatform.settings import StoreLocation


class ArtifactError(Exception):
    """A model file could not be fetched; the message names model, version and reason."""

    def __init__(self, model: str, version: str, reason: str) -> None:
        self.model, self.version, self.reason = model, version, reason
        super().__init__(f"{model} {version}: {reason}")


_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


class S3ModelStore:
    """Reads (and, for publishing, writes) immutable model files. Thread-safe."""

    def __init__(self, location: StoreLocation | str, client: Any | None = None) -> None:
        self.location = StoreLocation.parse(location) if isinstance(location, str) else location
        self.client = client if client is not None else boto3.client("s3")

    def url(self, model: str, version: str) -> str:
        return f"s3://{self.location.bucket}/{self.location.key(model, version)}"

    def fetch(self, model: str, version: str) -> bytes:
        """The bytes of ``model`` ``version``. Raises :class:`ArtifactError` when missing or unreachable."""
        key = self.location.key(model, version)
        try:
            response = self.client.get_object(Bucket=self.location.bucket, Key=key)
            return response["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _MISSING_CODES:
                raise ArtifactError(model, version, f"no model file at {self.url(model, version)}") from None
            if code == "NoSuchBucket":
                raise ArtifactError(model, version, f"bucket {self.location.bucket!r} does not exist") from None
            raise ArtifactError(model, version, f"cannot read {self.url(model, version)}: {code} {exc}") from None
        except BotoCoreError as exc:
            raise ArtifactError(model, version, f"cannot reach the model store: {exc}") from None

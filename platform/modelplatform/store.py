"""The S3 model store adapter: ``s3://bucket/prefix`` → ``<prefix>/<name>/<version>.dill``.

boto3 honours ``AWS_ENDPOINT_URL`` itself, so the same code talks to AWS S3 or any S3-compatible
endpoint (MinIO, moto's server in the demo and tests).
"""
from __future__ import annotations

import base64
import io
from typing import IO, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from modelplatform.settings import StoreLocation


class ArtifactError(Exception):
    """A model file could not be fetched; the message names model, version and reason."""

    def __init__(self, model: str, version: str, reason: str, *, missing: bool = False) -> None:
        self.model, self.version, self.reason = model, version, reason
        self.missing = missing  # the store answered: there is no such object (as opposed to: could not ask)
        super().__init__(f"{model} {version}: {reason}")


class VersionExists(ArtifactError):
    """A publish was refused because the version is already in the store (published versions never change)."""

    def __init__(self, model: str, version: str, url: str) -> None:
        super().__init__(model, version, f"{url} already exists; published versions are immutable, "
                                         "publish under a new version number")


_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
# 412: the key exists; 409: another conditional write to the same key is in flight (S3 lets one win)
_EXISTS_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
SHA256_METADATA_KEY = "sha256"


def make_client(config: Any | None = None) -> Any:
    """A boto3 S3 client from the usual environment (credentials, region, ``AWS_ENDPOINT_URL``)."""
    return boto3.client("s3", config=config)


class S3ModelStore:
    """Reads (and, for publishing, writes) immutable model files. Thread-safe."""

    def __init__(self, location: StoreLocation | str, client: Any | None = None) -> None:
        self.location = StoreLocation.parse(location) if isinstance(location, str) else location
        self.client = client if client is not None else boto3.client("s3")

    def url(self, model: str, version: str) -> str:
        return f"s3://{self.location.bucket}/{self.location.key(model, version)}"

    def fetch(self, model: str, version: str) -> bytes:
        """The bytes of ``model`` ``version``. Raises :class:`ArtifactError` when missing or unreachable."""
        buffer = io.BytesIO()
        self.download(model, version, buffer)
        return buffer.getvalue()

    def download(self, model: str, version: str, out: IO[bytes], *, chunk_size: int = 1 << 20) -> None:
        """Write the bytes of ``model`` ``version`` to ``out`` as they arrive: one GET, never the whole file in
        memory. Raises :class:`ArtifactError` when missing or unreachable (also when the connection breaks
        mid-body; ``out`` then holds a prefix, which the caller discards)."""
        key = self.location.key(model, version)
        try:
            response = self.client.get_object(Bucket=self.location.bucket, Key=key)
            for chunk in response["Body"].iter_chunks(chunk_size):
                out.write(chunk)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _MISSING_CODES:
                raise ArtifactError(model, version, f"no model file at {self.url(model, version)}",
                                    missing=True) from None
            if code == "NoSuchBucket":
                raise ArtifactError(model, version, f"bucket {self.location.bucket!r} does not exist",
                                    missing=True) from None
            raise ArtifactError(model, version, f"cannot read {self.url(model, version)}: {code} {exc}") from None
        except BotoCoreError as exc:
            raise ArtifactError(model, version, f"cannot reach the model store: {exc}") from None

    def exists(self, model: str, version: str) -> bool:
        """Whether ``model`` ``version`` is in the store. Raises :class:`ArtifactError` when unreachable."""
        try:
            self.client.head_object(Bucket=self.location.bucket, Key=self.location.key(model, version))
            return True
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _MISSING_CODES:  # a HEAD has no body: a missing bucket looks the same
                return False
            raise ArtifactError(model, version, f"cannot read {self.url(model, version)}: {code} {exc}") from None
        except BotoCoreError as exc:
            raise ArtifactError(model, version, f"cannot reach the model store: {exc}") from None

    def publish(self, model: str, version: str, body: bytes | IO[bytes], sha256: str) -> None:
        """Upload a new version, storing ``sha256`` as object metadata.

        The write is conditional (``If-None-Match: *``): S3 refuses it when the key already exists,
        so a published version is never overwritten, even by racing publishers. ``sha256`` is also sent
        as the S3 checksum, so S3 refuses bytes that do not match it (moto's server does not check). Raises
        :class:`VersionExists` when refused, :class:`ArtifactError` for any other failure.
        """
        key = self.location.key(model, version)
        try:
            self.client.put_object(Bucket=self.location.bucket, Key=key, Body=body, IfNoneMatch="*",
                                   Metadata={SHA256_METADATA_KEY: sha256}, ContentType="application/octet-stream",
                                   ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode())
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code in _EXISTS_CODES or status in _EXISTS_CODES:
                raise VersionExists(model, version, self.url(model, version)) from None
            if code == "NoSuchBucket":
                raise ArtifactError(model, version, f"bucket {self.location.bucket!r} does not exist") from None
            raise ArtifactError(model, version, f"cannot write {self.url(model, version)}: {code} {exc}") from None
        except BotoCoreError as exc:
            raise ArtifactError(model, version, f"cannot reach the model store: {exc}") from None

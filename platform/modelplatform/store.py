"""The S3 model store adapter: ``s3://bucket/prefix`` → ``<prefix>/<name>/<version>.dill``.

boto3 honours ``AWS_ENDPOINT_URL`` itself, so the same code talks to AWS S3 or any S3-compatible
endpoint (MinIO, moto's server in the demo and tests).
"""
from __future__ import annotations

import base64
import hashlib
import io
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import IO, TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from modelplatform.settings import StoreLocation

if TYPE_CHECKING:  # boto3-stubs (the test extra); nothing imported at run time
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef


class ArtifactError(Exception):
    """A model file could not be fetched; the message names model, version and reason."""

    def __init__(self, model: str, version: str, reason: str, *, missing: bool = False) -> None:
        self.model, self.version, self.reason = model, version, reason
        self.missing = missing  # the store answered: there is no such object (as opposed to: could not ask)
        super().__init__(f"{model} {version}: {reason}")


class WriteNotConfirmed(ArtifactError):
    """After a publish, the key holds bytes other than the publisher's: the store ignored the conditional
    write (``If-None-Match: *``) or another publisher won the race. The version is not published as
    this file."""

    def __init__(self, model: str, version: str, url: str, expected: str, found: str | None) -> None:
        super().__init__(model, version, (
            f"NOT PUBLISHED: after writing, {url} holds other bytes (sha256 {found or 'unknown'}, "
            f"this file is {expected}): the store does not honour conditional writes (If-None-Match: *), "
            "or someone else published this version at the same moment and won the race. Do not use this "
            "version's digest; check what the store holds, and use a store that honours conditional "
            "writes (AWS S3, MinIO, LocalStack do; see docs/models.md)"))


class VersionExists(ArtifactError):
    """A publish was refused because the version is already in the store (published versions never change)."""

    def __init__(self, model: str, version: str, url: str) -> None:
        super().__init__(model, version, f"{url} already exists; published versions are immutable, "
                                         "publish under a new version number")


_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
# 412: the key exists; 409: another conditional write to the same key is in flight (S3 lets one win)
_EXISTS_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
SHA256_METADATA_KEY = "sha256"
MIB = 1024 * 1024
# a single PUT is limited to 5 GiB; far below that, parts also resume and parallelise better
MULTIPART_THRESHOLD = 64 * MIB
PART_BYTES = 16 * MIB  # S3: at least 5 MiB (except the last), at most 10,000 parts
MAX_PARTS = 10_000
UPLOAD_THREADS = 4


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

    def publish(self, model: str, version: str, body: bytes | IO[bytes], sha256: str, *,
                multipart_threshold: int = MULTIPART_THRESHOLD, part_bytes: int | None = None) -> None:
        """Upload a new version, storing ``sha256`` as object metadata, then read back what the store holds.

        The write is conditional (``If-None-Match: *``): S3 refuses it when the key already exists, so a
        published version is never overwritten, even by racing publishers. A body larger than
        ``multipart_threshold`` bytes (a single PUT is limited to 5 GiB) goes up as a multipart upload
        whose completing request carries the same condition. ``sha256`` is sent as the S3 checksum (of
        the whole object, or of each part), so S3 refuses bytes that do not match it.

        A store that accepts ``If-None-Match`` and ignores it would let a racing publisher overwrite
        this one unnoticed, so the write is confirmed by reading back what the key holds: its S3
        checksum when the store reports one, else its bytes, hashed.

        Raises :class:`VersionExists` when refused, :class:`WriteNotConfirmed` when the key holds other
        bytes after the write, :class:`ArtifactError` for any other failure.
        """
        key = self.location.key(model, version)
        size = _size_of(body)
        try:
            if size > multipart_threshold:
                expected = self._put_multipart(key, body, size, sha256, part_bytes or part_size_for(size))
            else:
                self._put_single(key, body, sha256)
                expected = _b64(bytes.fromhex(sha256))
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
        self._confirm_write(model, version, sha256, expected)

    def _put_single(self, key: str, body: bytes | IO[bytes], sha256: str) -> None:
        self.client.put_object(Bucket=self.location.bucket, Key=key, Body=body, IfNoneMatch="*",
                               Metadata={SHA256_METADATA_KEY: sha256}, ContentType="application/octet-stream",
                               ChecksumSHA256=_b64(bytes.fromhex(sha256)))

    def _put_multipart(self, key: str, body: bytes | IO[bytes], size: int, sha256: str, part_bytes: int) -> str:
        """Upload ``body`` in parts of ``part_bytes`` (read in order, sent by :data:`UPLOAD_THREADS` threads);
        the completing request is conditional. Returns the composite checksum S3 will report for the
        object (the SHA-256 of the parts' SHA-256 digests). The upload is aborted on any failure."""
        bucket = self.location.bucket
        upload = self.client.create_multipart_upload(
            Bucket=bucket, Key=key, Metadata={SHA256_METADATA_KEY: sha256},
            ContentType="application/octet-stream", ChecksumAlgorithm="SHA256")
        upload_id = upload["UploadId"]
        stream = io.BytesIO(body) if isinstance(body, (bytes, bytearray)) else body
        digests: dict[int, bytes] = {}

        def send(number: int, data: bytes) -> CompletedPartTypeDef:
            digest = hashlib.sha256(data).digest()
            digests[number] = digest
            answer = self.client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                             Body=data, ChecksumSHA256=_b64(digest))
            return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": _b64(digest)}

        try:
            with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
                pending: set[Future[CompletedPartTypeDef]] = set()
                done: list[Future[CompletedPartTypeDef]] = []
                for number in range(1, -(-size // part_bytes) + 1):
                    if len(pending) >= UPLOAD_THREADS:  # bounds memory: parts in flight, not the file
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        done.extend(finished)
                        for future in finished:
                            future.result()  # fail fast
                    pending.add(pool.submit(send, number, stream.read(part_bytes)))
                done.extend(pending)
                parts = sorted((future.result() for future in done), key=lambda p: p["PartNumber"])
            self.client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts}, IfNoneMatch="*")
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except (ClientError, BotoCoreError):
                pass  # best effort: a bucket lifecycle rule should clean incomplete uploads too
            raise
        return _b64(hashlib.sha256(b"".join(digests[n] for n in sorted(digests))).digest())

    def _confirm_write(self, model: str, version: str, sha256: str, expected_checksum: str) -> None:
        """Raise :class:`WriteNotConfirmed` unless the key now holds the bytes whose digest is ``sha256``."""
        key = self.location.key(model, version)
        try:
            head = self.client.head_object(Bucket=self.location.bucket, Key=key, ChecksumMode="ENABLED")
            found_sha256 = head.get("Metadata", {}).get(SHA256_METADATA_KEY)
            checksum = (head.get("ChecksumSHA256") or "").split("-")[0]  # S3 adds "-<parts>" to a composite
            if found_sha256 not in (None, sha256):
                raise WriteNotConfirmed(model, version, self.url(model, version), sha256, found_sha256)
            if checksum:
                if checksum == expected_checksum:
                    return
            found = self._stored_sha256(key)
        except (ClientError, BotoCoreError) as exc:
            raise ArtifactError(model, version, f"wrote {self.url(model, version)} but could not read it back "
                                                f"to confirm it: {exc}; check the object before using it") from None
        if found != sha256:
            raise WriteNotConfirmed(model, version, self.url(model, version), sha256, found)

    def _stored_sha256(self, key: str) -> str:
        # the store reports no checksum (or one of another kind): hash what it serves
        body = self.client.get_object(Bucket=self.location.bucket, Key=key)["Body"]
        digest = hashlib.sha256()
        for chunk in iter(lambda: body.read(1024 * 1024), b""):
            digest.update(chunk)
        return digest.hexdigest()

    def probe_conditional_writes(self) -> bool | None:
        """Whether the store honours ``If-None-Match: *``: True when it refuses a second conditional write
        of a scratch key (``<prefix>/.modelplatform-probe/<uuid>``, deleted afterwards), False when it
        accepts it, None when it cannot be probed (no permission to write, store unreachable)."""
        key = "/".join(p for p in (self.location.prefix, ".modelplatform-probe", uuid.uuid4().hex) if p)
        bucket = self.location.bucket
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=b"first", IfNoneMatch="*")
        except (ClientError, BotoCoreError):
            return None
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=b"second", IfNoneMatch="*")
            return False
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            return True if code in _EXISTS_CODES or status in _EXISTS_CODES else None
        except BotoCoreError:
            return None
        finally:
            try:
                self.client.delete_object(Bucket=bucket, Key=key)
            except (ClientError, BotoCoreError):
                pass  # a scratch object of a few bytes; nothing reads it


def part_size_for(size: int) -> int:
    """Part size for a multipart upload of ``size`` bytes: :data:`PART_BYTES`, or larger when S3's
    10,000-part limit needs it (in whole MiB)."""
    needed = -(-size // MAX_PARTS)
    return max(PART_BYTES, -(-needed // MIB) * MIB)


def _size_of(body: bytes | IO[bytes]) -> int:
    if isinstance(body, (bytes, bytearray)):
        return len(body)
    position = body.tell()
    end = body.seek(0, io.SEEK_END)
    body.seek(position)
    return end - position


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()

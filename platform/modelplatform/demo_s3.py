"""The demo's S3 endpoint: moto's server over HTTP, whose objects survive a restart.

moto keeps buckets and objects in memory. The demo mirrors its bucket to ``<data-dir>/s3/``: at start
it puts every mirrored object back into a fresh server (metadata and content type included), then a
thread copies each new or changed object to disk within about a second of its write, and forgets
deleted ones; a last pass runs when the demo stops. So a version published into the demo (with
``modelplatform publish``, multipart or not) is still there after ``make demo`` again.

Layout: ``objects/<key>`` holds the bytes, ``meta/<key>.json`` the ETag, metadata and content type,
``port`` the port, reused on the next run when free.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath
from typing import Any

log = logging.getLogger("modelplatform.demo")

SYNC_INTERVAL_S = 1.0
START_TIMEOUT_S = 30.0
PORT_FILE = "port"


class LocalS3Error(Exception):
    """The local S3 endpoint did not start or could not restore its objects."""


def free_port(host: str, preferred: int = 0) -> int:
    """``preferred`` when it can be bound on ``host``, else a free port."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise LocalS3Error(f"no free port on {host}")


def _safe_key(key: str) -> bool:
    """Whether ``key`` maps onto a path inside the mirror (no absolute paths, no ``..``, no empty parts)."""
    parts = PurePosixPath(key).parts
    return bool(parts) and not key.startswith("/") and all(p not in ("", ".", "..") for p in parts)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


class Mirror:
    """Copies one bucket of an S3 endpoint to ``root`` and back. ``client`` is a boto3 S3 client."""

    def __init__(self, root: Path, client: Any, bucket: str) -> None:
        self.root = root
        self.client = client
        self.bucket = bucket
        self.objects = root / "objects"
        self.meta = root / "meta"

    def _meta_path(self, key: str) -> Path:
        return self.meta / f"{key}.json"

    def restore(self) -> int:
        """Create the bucket and put every mirrored object into it; returns the number of objects."""
        with suppress(self.client.exceptions.BucketAlreadyOwnedByYou):
            self.client.create_bucket(Bucket=self.bucket)
        restored = 0
        files = sorted(p for p in self.objects.rglob("*") if p.is_file() and not p.name.endswith(".part")) \
            if self.objects.is_dir() else []
        for path in files:
            key = path.relative_to(self.objects).as_posix()
            try:
                meta = json.loads(self._meta_path(key).read_text())
            except (OSError, ValueError):
                meta = {}
            self.client.put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes(),
                                   Metadata=meta.get("metadata", {}),
                                   ContentType=meta.get("content_type", "binary/octet-stream"))
            restored += 1
        return restored

    def sync(self) -> None:
        """Make the mirror equal to the bucket: new or changed objects copied, deleted ones removed.

        Raises botocore's errors when the bucket cannot be listed; the mirror is then left as it was.
        """
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        listed = {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}
        for key, etag in listed.items():
            if not _safe_key(key):
                continue  # not a path we can mirror; the demo only writes <prefix>/<model>/<version>.dill
            meta_path = self._meta_path(key)
            with suppress(OSError, ValueError):
                if json.loads(meta_path.read_text()).get("etag") == etag:
                    continue
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            _write_atomically(self.objects / key, response["Body"].read())
            _write_atomically(meta_path, json.dumps({
                "etag": response["ETag"], "metadata": response.get("Metadata", {}),
                "content_type": response.get("ContentType", "binary/octet-stream")}).encode())
        if self.objects.is_dir():
            for path in [p for p in self.objects.rglob("*") if p.is_file()]:
                key = path.relative_to(self.objects).as_posix()
                if key not in listed:
                    path.unlink(missing_ok=True)
                    self._meta_path(key).unlink(missing_ok=True)


@contextmanager
def syncing(mirror: Mirror, interval: float = SYNC_INTERVAL_S) -> Iterator[None]:
    """Run :meth:`Mirror.sync` every ``interval`` seconds in a thread, and once more on exit."""
    stop = threading.Event()

    def sync() -> None:
        try:
            mirror.sync()
        except Exception:  # a failed pass leaves the mirror as it was; the next one tries again
            log.warning("could not mirror the demo's S3 objects to %s", mirror.root, exc_info=True)

    def loop() -> None:
        while not stop.wait(interval):
            sync()

    thread = threading.Thread(target=loop, name="demo-s3-mirror", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        sync()


@contextmanager
def persistent_s3(state_dir: Path, bucket: str, aws_env: dict[str, str], host: str = "127.0.0.1",
                  port: int = 0) -> Iterator[str]:
    """moto's S3 server with ``bucket`` and the objects mirrored in ``state_dir`` put back; yields its
    endpoint URL.

    ``aws_env`` holds the (dummy) credentials and region to reach it. ``port`` 0 reuses the port of the
    previous run when it is free (an endpoint someone noted stays valid), else any free port. Objects
    written while it runs are mirrored until it stops. Raises :class:`LocalS3Error`.
    """
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
    from moto.server import ThreadedMotoServer

    state_dir.mkdir(parents=True, exist_ok=True)
    port_file = state_dir / PORT_FILE
    if not port:
        with suppress(OSError, ValueError):
            port = int(port_file.read_text())
        port = free_port(host, port)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    # start() waits forever when the port cannot be bound (taken since we probed it): bound the wait
    starter = threading.Thread(target=server.start, daemon=True)
    starter.start()
    starter.join(START_TIMEOUT_S)
    if starter.is_alive():
        raise LocalS3Error(f"moto's S3 server could not listen on {host}:{port}")
    try:
        port_file.write_text(f"{port}\n")
        endpoint = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name=aws_env["AWS_DEFAULT_REGION"],
                              aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"])
        mirror = Mirror(state_dir, client, bucket)
        try:
            mirror.restore()
        except (BotoCoreError, ClientError, OSError) as exc:
            raise LocalS3Error(f"could not restore the demo's S3 objects from {state_dir}: {exc}") from None
        with syncing(mirror):
            yield endpoint
    finally:
        server.stop()

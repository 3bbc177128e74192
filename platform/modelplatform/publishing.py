"""Publishing a model file: validate the name and version, prove the file loads, upload it once.

A published version is immutable: the upload is a conditional write that S3 refuses when the key
exists, confirmed by reading back what the store holds (see :meth:`modelplatform.store.S3ModelStore.publish`).
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from modelplatform import loadcheck, versions
from modelplatform.store import MULTIPART_THRESHOLD, S3ModelStore, VersionExists

# the same pattern as model names in the shipped config JSON Schema
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_VERSION_COMPONENTS = 6  # the config JSON Schema's version pattern allows at most six components


class PublishError(Exception):
    """The file was not published; the message says why and what to do."""


@dataclass(frozen=True)
class Published:
    model: str
    version: str
    sha256: str
    size: int
    url: str

    def config_lines(self) -> str:
        """The two additions to the model's entry in ``config/models.json``, as exact JSON."""
        version = json.dumps(self.version)
        return (f'in "active_model_versions" add:  {version}\n'
                f'in "sha256" add:                 {version}: {json.dumps(self.sha256)}')

    def config_entry(self, existing: Mapping[str, Any] | None) -> dict[str, Any]:
        """The model's config entry with this version added (active, pinned), or a new entry to complete.

        Adding a version to ``active_model_versions`` changes nothing for unpinned traffic until
        ``default`` or an ``ab_test`` points at it.
        """
        if existing is None:
            return {"description": "", "active_model_versions": [self.version], "default": self.version,
                    "sha256": {self.version: self.sha256}, "schemas": {}}
        entry = copy.deepcopy(dict(existing))
        active = entry.setdefault("active_model_versions", [])
        if self.version not in active:
            active.append(self.version)
        entry.setdefault("sha256", {})[self.version] = self.sha256
        return entry


def validate_name(model: str) -> None:
    """Raise :class:`PublishError` unless ``model`` matches :data:`NAME_RE`."""
    if not NAME_RE.match(model):
        raise PublishError(f"invalid model name {model!r}: use lower-case letters, digits and underscores, "
                           "starting with a letter, at most 64 characters (pattern ^[a-z][a-z0-9_]{0,63}$)")


def validate_version(version: str) -> None:
    """Raise :class:`PublishError` unless ``version`` is dotted numbers without leading zeros (``2.1.1``)."""
    if not versions.is_version(version) or version.count(".") >= MAX_VERSION_COMPONENTS:
        raise PublishError(f"invalid version {version!r}: use dotted numbers without leading zeros, "
                           f"at most {MAX_VERSION_COMPONENTS} components, e.g. 2.1.1")


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class _ProgressReader:
    """A read-only file wrapper reporting the position reached, for a progress bar.

    botocore may read the body more than once (a checksum pass, then the send) and seeks back in
    between, so it reports the absolute position rather than summing reads.
    """

    def __init__(self, file: IO[bytes], on_position: Callable[[int], None]) -> None:
        self._file = file
        self._on_position = on_position

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._on_position(self._file.tell())
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._file.seek(offset, whence)
        self._on_position(position)
        return position

    def tell(self) -> int:
        return self._file.tell()

    def seekable(self) -> bool:
        return True


def publish_file(path: str | Path, model: str, version: str, store: S3ModelStore, *, load_check: bool = True,
                 load_timeout: float = loadcheck.DEFAULT_TIMEOUT_SECONDS,
                 on_position: Callable[[int], None] | None = None,
                 multipart_threshold: int = MULTIPART_THRESHOLD, part_bytes: int | None = None) -> Published:
    """Publish ``path`` as ``model`` ``version``.

    Unless ``load_check`` is false, first loads the file in a child process and refuses it when it does
    not deserialize into an object with ``predict`` (nothing is uploaded then). ``on_position`` receives
    the upload position in bytes. Files over ``multipart_threshold`` bytes go up in parts of
    ``part_bytes`` (see :meth:`~modelplatform.store.S3ModelStore.publish`, which also reads back what
    the store holds). Raises :class:`PublishError` for a bad name, version or file,
    :class:`~modelplatform.store.VersionExists` when the version is already published,
    :class:`~modelplatform.store.WriteNotConfirmed` when the store holds other bytes after the write,
    and :class:`~modelplatform.store.ArtifactError` when the store cannot be written.
    """
    validate_name(model)
    validate_version(version)
    path = Path(path)
    if not path.is_file():
        raise PublishError(f"{path}: no such file")
    # fail fast rather than after a load check and a long upload; the conditional write still decides
    if store.exists(model, version):
        raise VersionExists(model, version, store.url(model, version))
    if load_check:
        report = loadcheck.check_file(path, model, version, timeout=load_timeout)
        if not report.loaded:
            raise PublishError(f"refusing to publish {path}: {report.error} "
                               "(fix the file, or pass --skip-load-check if the server can load it and "
                               "this machine cannot)")
    sha256 = file_sha256(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        # _ProgressReader has the file methods botocore uses (read, seek, tell), not all of IO's
        body = f if on_position is None else cast(IO[bytes], _ProgressReader(f, on_position))
        store.publish(model, version, body, sha256, multipart_threshold=multipart_threshold, part_bytes=part_bytes)
    return Published(model=model, version=version, sha256=sha256, size=size, url=store.url(model, version))

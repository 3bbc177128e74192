"""The content-addressed artifact cache: whole or absent, verified on every read, many fillers, eviction."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from modelplatform.artifact_cache import CACHE, STORE, ArtifactCache, CacheDigestMismatch

DATA = b"model bytes " * 1000
SHA = hashlib.sha256(DATA).hexdigest()


def writes(data: bytes, calls: list[int] | None = None):
    def download(out) -> None:
        if calls is not None:
            calls.append(1)
        for i in range(0, len(data), 4096):
            out.write(data[i:i + 4096])
    return download


def leftovers(cache: ArtifactCache) -> list[Path]:
    return list((cache.directory / "tmp").iterdir())


def test_an_entry_is_named_by_its_sha256_read_only_and_read_back_verified(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "cache")
    assert cache.read(SHA) is None
    assert cache.ensure(SHA, writes(DATA)) == STORE
    path = cache.path(SHA)
    assert path == tmp_path / "cache" / "sha256" / SHA[:2] / SHA
    assert path.read_bytes() == DATA and oct(path.stat().st_mode & 0o777) == "0o444"
    assert cache.read(SHA) == DATA
    calls: list[int] = []
    assert cache.ensure(SHA, writes(DATA, calls)) == CACHE and calls == []  # a verified entry is never refetched
    assert leftovers(cache) == []


def test_bytes_that_do_not_match_are_refused_and_nothing_is_cached(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    with pytest.raises(CacheDigestMismatch) as raised:
        cache.ensure(SHA, writes(b"other bytes"))
    assert raised.value.expected == SHA and raised.value.found == hashlib.sha256(b"other bytes").hexdigest()
    assert not cache.path(SHA).exists() and cache.read(SHA) is None
    assert leftovers(cache) == []


def test_a_download_that_breaks_midway_leaves_no_entry_and_no_partial_file(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)

    def breaks(out) -> None:
        out.write(DATA[:5000])
        raise ConnectionResetError("connection lost mid-body")

    with pytest.raises(ConnectionResetError):
        cache.ensure(SHA, breaks)
    assert not cache.path(SHA).exists() and leftovers(cache) == []
    assert cache.ensure(SHA, writes(DATA)) == STORE  # the next attempt starts clean


@pytest.mark.parametrize("damage", ["truncated", "flipped", "emptied"])
def test_a_damaged_entry_is_never_returned_and_is_refetched(tmp_path: Path, damage: str) -> None:
    cache = ArtifactCache(tmp_path)
    cache.ensure(SHA, writes(DATA))
    path = cache.path(SHA)
    path.chmod(0o644)
    bad = {"truncated": DATA[:-1], "flipped": b"X" + DATA[1:], "emptied": b""}[damage]
    path.write_bytes(bad)

    assert cache.read(SHA) is None
    assert not cache.has(SHA)
    assert cache.ensure(SHA, writes(DATA)) == STORE
    assert cache.read(SHA) == DATA
    # and when the refetch brings the wrong bytes, the damaged file is gone rather than left in place
    path.chmod(0o644)
    path.write_bytes(bad)
    with pytest.raises(CacheDigestMismatch):
        cache.ensure(SHA, writes(b"still wrong"))
    assert not path.exists()


FILLER = """
import sys, time
from pathlib import Path
from modelplatform.artifact_cache import ArtifactCache
directory, sha, log, data = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]).read_bytes()
def slow(out):
    with log.open("a") as f:
        f.write("download\\n")
    for i in range(0, len(data), 1000):
        out.write(data[i:i + 1000])
        time.sleep(0.005)
go = Path(directory).parent / "go"
while not go.exists():  # every filler starts at once
    time.sleep(0.005)
print(ArtifactCache(directory).ensure(sha, slow))
"""


@pytest.mark.slow
def test_processes_filling_the_same_entry_at_once_download_it_once(tmp_path: Path) -> None:
    data = os.urandom(100_000)
    sha = hashlib.sha256(data).hexdigest()
    log = tmp_path / "downloads.log"
    (tmp_path / "source").write_bytes(data)
    fillers = [subprocess.Popen([sys.executable, "-c", FILLER, str(tmp_path / "cache"), sha, str(log),
                                 str(tmp_path / "source")],
                                stdout=subprocess.PIPE, text=True) for _ in range(6)]
    time.sleep(1.0)
    (tmp_path / "go").touch()
    origins = sorted(p.communicate(timeout=120)[0].strip() for p in fillers)
    assert [p.returncode for p in fillers] == [0] * 6
    assert log.read_text().count("download") == 1
    assert origins == [CACHE] * 5 + [STORE]
    assert ArtifactCache(tmp_path / "cache").read(sha) == data


def test_threads_filling_different_entries_at_once(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    blobs = [os.urandom(50_000) for _ in range(8)]
    errors: list[BaseException] = []

    def fill(blob: bytes) -> None:
        try:
            cache.ensure(hashlib.sha256(blob).hexdigest(), writes(blob))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=fill, args=(b,)) for b in blobs * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert all(cache.read(hashlib.sha256(b).hexdigest()) == b for b in blobs)


@pytest.mark.slow
def test_prune_keeps_what_live_masters_need_and_recent_entries(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    shas = [cache.put(f"version {n}".encode()) for n in range(4)]
    long_ago = time.time() - 7200
    for sha in shas:
        os.utime(cache.path(sha), (long_ago, long_ago))

    holder = cache.hold("master-1", [shas[0]])
    # a master that died without closing its record (SIGKILL): its lock is free, so its needs are ignored
    subprocess.run([sys.executable, "-c", "import sys; from modelplatform.artifact_cache import ArtifactCache; "
                    "ArtifactCache(sys.argv[1]).hold('master-dead', [sys.argv[2]])", str(tmp_path), shas[1]],
                   check=True, timeout=60)
    assert (tmp_path / "refs" / "master-dead.json").exists()
    cache.read(shas[2])  # used just now
    (tmp_path / "tmp" / "abandoned").write_bytes(b"partial")
    os.utime(tmp_path / "tmp" / "abandoned", (long_ago, long_ago))

    report = cache.prune()
    assert sorted(report.removed) == sorted([shas[1], shas[3]])
    assert cache.read(shas[0]) is not None and cache.read(shas[2]) is not None
    assert not (tmp_path / "refs" / "master-dead.json").exists()
    assert leftovers(cache) == []

    holder.close()
    for sha in shas[:1]:
        os.utime(cache.path(sha), (long_ago, long_ago))
    assert cache.prune().removed == (shas[0],)


def test_a_sha256_that_is_not_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a sha256 hex digest"):
        ArtifactCache(tmp_path).path("../../etc/passwd")

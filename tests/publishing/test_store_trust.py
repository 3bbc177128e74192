"""Publishing to stores that cannot be taken on trust, and files too big for one PUT.

A store that ignores ``If-None-Match`` is a real HTTP endpoint here (``support.s3proxy``: moto's server
behind a proxy that drops the header), reached by boto3 over HTTP like any store.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from modelplatform.publishing import publish_file
from modelplatform.store import S3ModelStore, WriteNotConfirmed
from race_support import race, winners
from support.s3proxy import s3_proxy

MIB = 1024 * 1024
RACER_BYTES = b"another publisher's model file"


def _direct(s3_endpoint: str):
    return boto3.client("s3", endpoint_url=s3_endpoint)


def _racer_lands_after(store: S3ModelStore, s3_endpoint: str, when: Callable[[str, str, str], bool]):
    """An ``after`` hook: once ``when(method, path, query)`` matches a successful request, another
    publisher's write of the same key lands (straight on the store, unconditional), exactly once."""
    fired = threading.Event()

    def after(method: str, path: str, query: str, status: int) -> None:
        if status < 300 and not fired.is_set() and when(method, path, query):
            fired.set()
            key = path.split(f"/{store.location.bucket}/", 1)[1]
            _direct(s3_endpoint).put_object(Bucket=store.location.bucket, Key=key, Body=RACER_BYTES,
                                            Metadata={"sha256": hashlib.sha256(RACER_BYTES).hexdigest()})
    return after, fired


@pytest.fixture
def proxied(store: S3ModelStore, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[Callable[..., S3ModelStore]]:
    """``proxied(after=None, honour_conditions=False)``: the test's bucket through a store that ignores
    conditional writes (or honours them atomically); also points ``AWS_ENDPOINT_URL`` (what the CLI
    uses) at it."""
    stack: list = []

    def open_(after=None, honour_conditions: bool = False) -> S3ModelStore:
        context = s3_proxy(s3_endpoint, honour_conditions=honour_conditions, after=after)
        endpoint, _ = context.__enter__()
        stack.append(context)
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        return S3ModelStore(store.location, boto3.client("s3", endpoint_url=endpoint))

    yield open_
    for context in reversed(stack):
        context.__exit__(None, None, None)


def test_the_proxy_really_ignores_conditional_writes(proxied, stored) -> None:
    store = proxied()
    store.publish("m", "1.0.0", b"first", hashlib.sha256(b"first").hexdigest())
    # a store that honours If-None-Match refuses this (tests/publishing/test_publish_command.py)
    store.publish("m", "1.0.0", b"second", hashlib.sha256(b"second").hexdigest())
    assert stored() == {"registry/m/1.0.0.dill": b"second"}


def test_publish_fails_loudly_when_another_write_lands_before_the_read_back(
        cli, model_file, store: S3ModelStore, store_url, s3_endpoint, proxied, stored) -> None:
    after, fired = _racer_lands_after(store, s3_endpoint, lambda method, path, query: method == "PUT" and not query)
    proxied(after)
    path = model_file(os.urandom(4096), "mine.dill")

    run = cli("publish", str(path), "--model", "raced", "--version", "1.0.0", "--skip-load-check")

    assert fired.is_set()
    assert run.code == 1, run.out
    assert "NOT PUBLISHED" in run.err
    assert "does not honour conditional writes" in run.err and "won the race" in run.err
    assert hashlib.sha256(path.read_bytes()).hexdigest() in run.err
    assert "published s3://" not in run.out
    assert stored() == {"registry/raced/1.0.0.dill": RACER_BYTES}


def test_publish_through_a_store_that_ignores_the_condition_but_was_not_raced_succeeds(
        cli, model_file, store_url, proxied, stored) -> None:
    proxied()
    path = model_file(os.urandom(4096), "mine.dill")
    run = cli("publish", str(path), "--model", "calm", "--version", "1.0.0", "--skip-load-check")
    assert run.code == 0, run.err
    assert stored() == {"registry/calm/1.0.0.dill": path.read_bytes()}


def test_check_config_reports_a_store_that_ignores_conditional_writes(cli, write_config, store_url, proxied,
                                                                      stored) -> None:
    config = write_config({})
    honest = cli("check-config", str(config), "--json")
    assert honest.code == 0, honest.out
    proxied()
    run = cli("check-config", str(config))

    assert run.code == 1
    assert "[store]" in run.out and "does not honour conditional writes (If-None-Match: *)" in run.out
    assert stored() == {}  # the scratch keys of both probes were cleaned up


def _big_file(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "big.dill"
    path.write_bytes(os.urandom(size))
    return path


@pytest.mark.slow
def test_a_file_over_the_threshold_goes_up_in_parts_with_its_digest(store: S3ModelStore, tmp_path: Path,
                                                                    stored) -> None:
    path = _big_file(tmp_path, 11 * MIB + 123)
    positions: list[int] = []

    published = publish_file(path, "big", "1.0.0", store, load_check=False, on_position=positions.append,
                             multipart_threshold=5 * MIB, part_bytes=5 * MIB)

    key = "registry/big/1.0.0.dill"
    assert stored() == {key: path.read_bytes()}
    assert published.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    head = store.client.head_object(Bucket=store.location.bucket, Key=key, PartNumber=1)
    assert head["PartsCount"] == 3
    assert store.client.head_object(Bucket=store.location.bucket, Key=key)["Metadata"] == {"sha256": published.sha256}
    assert max(positions) == path.stat().st_size


@pytest.mark.slow
def test_racing_multipart_publishers_exactly_one_wins_and_no_upload_is_left_behind(
        store: S3ModelStore, proxied, tmp_path: Path, stored) -> None:
    # through a proxy that decides conditional requests one at a time, as S3 does (moto's server alone
    # checks and then writes, so two completions arriving together could both pass)
    atomic = proxied(honour_conditions=True)
    files = [tmp_path / f"racer{i}.dill" for i in range(2)]
    for path in files:
        path.write_bytes(os.urandom(6 * MIB))

    def publisher(path: Path):
        own = S3ModelStore(store.location, boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]))
        data = path.read_bytes()
        # straight to the store: publish_file's early exists() check could hide a lost race
        return lambda: own.publish("racer", "1.0.0", data, hashlib.sha256(data).hexdigest(),
                                   multipart_threshold=5 * MIB, part_bytes=5 * MIB)

    results = race([publisher(path) for path in files])

    (winner,) = winners(results)
    assert stored() == {"registry/racer/1.0.0.dill": files[winner].read_bytes()}
    uploads = atomic.client.list_multipart_uploads(Bucket=store.location.bucket)
    assert uploads.get("Uploads", []) == []  # the loser aborted its upload


@pytest.mark.slow
def test_a_multipart_publish_raced_on_a_store_that_ignores_the_condition_fails_loudly(
        store: S3ModelStore, s3_endpoint, proxied, tmp_path: Path, stored) -> None:
    # the completing POST ?uploadId=… was accepted, then another write landed: the composite checksum
    # the store reports no longer matches this upload's parts
    after, fired = _racer_lands_after(store, s3_endpoint,
                                      lambda method, path, query: method == "POST" and "uploadId=" in query)
    proxied_store = proxied(after)
    path = _big_file(tmp_path, 6 * MIB)

    with pytest.raises(WriteNotConfirmed, match="does not honour conditional writes"):
        publish_file(path, "big", "2.0.0", proxied_store, load_check=False, multipart_threshold=5 * MIB,
                     part_bytes=5 * MIB)
    assert fired.is_set()
    assert stored() == {"registry/big/2.0.0.dill": RACER_BYTES}


def test_the_part_size_grows_so_that_a_huge_file_fits_in_ten_thousand_parts() -> None:
    from modelplatform.store import MAX_PARTS, PART_BYTES, part_size_for

    assert part_size_for(6 * 1024 * MIB) == PART_BYTES                   # 6 GiB: 384 parts of 16 MiB
    huge = 400 * 1024 * MIB                                              # 400 GiB
    assert -(-huge // part_size_for(huge)) <= MAX_PARTS
    assert part_size_for(huge) % MIB == 0

"""The demo's building blocks against real parts: publishing into moto's S3, the store kept on disk, the
Procfile, the calls, the server log echo."""
from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig

from modelplatform import artifacts, demo
from modelplatform.config import load_config
from modelplatform.settings import StoreLocation
from modelplatform.store import S3ModelStore, VersionExists

ROOT = Path(__file__).resolve().parent.parent


def test_publish_puts_the_file_once_and_refuses_different_bytes(store: S3ModelStore) -> None:
    assert demo.publish(store, "auto_pricing", "9.9.9", b"first bytes") == "published"
    assert demo.publish(store, "auto_pricing", "9.9.9", b"first bytes") == "already published"

    with pytest.raises(demo.DemoError, match="already holds different bytes; published versions are immutable"):
        demo.publish(store, "auto_pricing", "9.9.9", b"other bytes")
    assert store.fetch("auto_pricing", "9.9.9") == b"first bytes"


def test_prepare_store_publishes_examples_and_requires_every_other_active_version(store: S3ModelStore,
                                                                                tmp_path: Path) -> None:
    config = load_config(ROOT / "config" / "models.json")
    lines: list[str] = []
    demo.prepare_store(store, config, ROOT, lines.append)
    assert len(lines) == 3 and all(line.strip().startswith("published s3://") for line in lines)

    # a copy of the tree with one artifact changed after its digest was recorded
    fake_root = tmp_path / "checkout"
    for version in config.models["auto_pricing"].active_versions:
        target = demo.artifact_path(fake_root, "auto_pricing", version)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(demo.artifact_path(ROOT, "auto_pricing", version).read_bytes())
    demo.artifact_path(fake_root, "auto_pricing", "2.1.0").write_bytes(b"tampered")
    with pytest.raises(demo.DemoError, match="auto_pricing 2.1.0: sha256 mismatch"):
        demo.prepare_store(store, config, fake_root, lines.append)

    # a version without an example artifact (one a user published into the demo) is taken from the store
    demo.artifact_path(fake_root, "auto_pricing", "2.1.0").unlink()
    lines.clear()
    demo.prepare_store(store, config, fake_root, lines.append)
    assert lines[1] == f"  kept      {store.url('auto_pricing', '2.1.0')} (published earlier)"

    # ...and must be there: the message says why it may be missing and what to do, never to rebuild examples
    empty = S3ModelStore(StoreLocation(bucket=store.location.bucket, prefix="elsewhere"), client=store.client)
    with pytest.raises(demo.DemoError) as missing:
        demo.prepare_store(empty, config, fake_root, lines.append)
    assert "auto_pricing 2.1.0 is active in the config but no model file at" in str(missing.value)
    assert "publish it again" in str(missing.value) and "build_models" not in str(missing.value)


def test_the_mirror_keeps_a_bucket_on_disk_and_puts_it_back(store: S3ModelStore, tmp_path: Path) -> None:
    from modelplatform.demo_s3 import Mirror

    bucket, client = store.location.bucket, store.client
    store.publish("auto_pricing", "2.2.0", b"model bytes", artifacts.sha256_hex(b"model bytes"))
    client.put_object(Bucket=bucket, Key="registry/old.dill", Body=b"x")
    client.put_object(Bucket=bucket, Key="../escape", Body=b"x")  # not a path inside the mirror: skipped
    big = os.urandom(11 * 1024 * 1024)  # a multipart upload, as a large publish makes
    five_mib = 5 * 1024 * 1024
    client.upload_fileobj(io.BytesIO(big), bucket, "registry/big/1.0.dill",
                          Config=TransferConfig(multipart_threshold=five_mib, multipart_chunksize=five_mib))
    mirror = Mirror(tmp_path / "s3", client, bucket)
    mirror.sync()
    client.delete_object(Bucket=bucket, Key="registry/old.dill")
    mirror.sync()
    assert sorted(p.relative_to(tmp_path / "s3").as_posix() for p in (tmp_path / "s3").rglob("*") if p.is_file()) \
        == ["meta/registry/auto_pricing/2.2.0.dill.json", "meta/registry/big/1.0.dill.json",
            "objects/registry/auto_pricing/2.2.0.dill", "objects/registry/big/1.0.dill"]

    # a fresh endpoint: here another, empty, bucket of the same server
    fresh = f"{bucket}-restored"
    assert Mirror(tmp_path / "s3", client, fresh).restore() == 2
    restored = S3ModelStore(StoreLocation(bucket=fresh, prefix="registry"), client=client)
    assert restored.fetch("auto_pricing", "2.2.0") == b"model bytes"
    assert restored.fetch("big", "1.0") == big
    head = client.head_object(Bucket=fresh, Key="registry/auto_pricing/2.2.0.dill")
    assert head["Metadata"] == {"sha256": artifacts.sha256_hex(b"model bytes")}
    with pytest.raises(VersionExists):  # still immutable after a restart
        restored.publish("auto_pricing", "2.2.0", b"other", artifacts.sha256_hex(b"other"))
    # restoring again, into the bucket and objects now there (a demo restarted on a live endpoint), still works
    assert Mirror(tmp_path / "s3", client, fresh).restore() == 2
    assert restored.fetch("auto_pricing", "2.2.0") == b"model bytes"


def test_the_server_log_echo_shows_reloads_and_errors_never_requests() -> None:
    shown = demo.LogEcho.shown
    assert shown('{"level": "INFO", "logger": "modelplatform.request", "message": "request"}') is None
    assert shown('{"level": "INFO", "logger": "modelplatform.reload", "message": "serving config x"}') is None
    assert shown('{"level": "INFO", "logger": "modelplatform.reload", "message": "reload accepted: x"}') == \
        "[server] INFO reload accepted: x"
    assert shown('{"level": "ERROR", "logger": "gunicorn.error", "message": "Worker failed"}') == \
        "[server] ERROR Worker failed"
    assert shown("Traceback (most recent call last):") == "[server] Traceback (most recent call last):"


def test_web_command_is_the_procfiles_with_this_interpreter(tmp_path: Path) -> None:
    argv = demo.web_command(ROOT)
    assert argv[:3] == [sys.executable, "-m", "gunicorn"]
    assert "modelplatform.app:create_app()" in argv

    (tmp_path / "Procfile").write_text("release: modelplatform db upgrade\n")
    with pytest.raises(demo.DemoError, match="has no web: line"):
        demo.web_command(tmp_path)


def test_example_calls_cover_both_schema_families_and_both_kinds_of_422() -> None:
    calls = demo.example_calls("http://127.0.0.1:8000", load_config(ROOT / "config" / "models.json"))

    by_path = {(c.status, c.argv[3]) for c in calls}
    assert by_path == {
        (200, "http://127.0.0.1:8000/models"),
        (200, "http://127.0.0.1:8000/models/auto_pricing/predict"),
        (422, "http://127.0.0.1:8000/models/auto_pricing/versions/2.1.1/predict"),
        (200, "http://127.0.0.1:8000/models/auto_pricing/versions/2.0.3/predict"),
        (200, "http://127.0.0.1:8000/models/auto_pricing/versions/2.0.3"),
    }
    bodies = [json.loads(c.argv[-1]) for c in calls if c.status == 422]
    assert {"vehicle" in b for b in bodies} == {True, False}  # one misses a required field, one has a tractor
    assert any(b.get("vehicle") == "tractor" for b in bodies)


def test_ensure_port_free_names_the_port() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(demo.DemoError, match=f"cannot serve on 127.0.0.1:{port}"):
            demo.ensure_port_free("127.0.0.1", port)

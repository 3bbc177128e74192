"""The demo's building blocks against real parts: publishing into moto's S3, the Procfile, the calls."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from modelplatform import demo
from modelplatform.config import load_config
from modelplatform.store import S3ModelStore

ROOT = Path(__file__).resolve().parent.parent


def test_publish_puts_the_file_once_and_refuses_different_bytes(store: S3ModelStore) -> None:
    assert demo.publish(store, "auto_pricing", "9.9.9", b"first bytes") == "published"
    assert demo.publish(store, "auto_pricing", "9.9.9", b"first bytes") == "already published"

    with pytest.raises(demo.DemoError, match="already holds different bytes; published versions are immutable"):
        demo.publish(store, "auto_pricing", "9.9.9", b"other bytes")
    assert store.fetch("auto_pricing", "9.9.9") == b"first bytes"


def test_ensure_bucket_is_idempotent(store: S3ModelStore) -> None:
    demo.ensure_bucket(store)
    demo.ensure_bucket(store)  # a re-run finds the bucket there
    assert store.client.head_bucket(Bucket=store.location.bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_publish_examples_checks_each_artifact_against_the_config(store: S3ModelStore, tmp_path: Path) -> None:
    config = load_config(ROOT / "config" / "models.json")
    lines: list[str] = []
    demo.publish_examples(store, config, ROOT, lines.append)
    assert len(lines) == 3 and all(line.strip().startswith("published s3://") for line in lines)

    # a copy of the tree with one artifact changed after its digest was recorded
    fake_root = tmp_path / "checkout"
    for version in config.models["auto_pricing"].active_versions:
        target = demo.artifact_path(fake_root, "auto_pricing", version)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(demo.artifact_path(ROOT, "auto_pricing", version).read_bytes())
    demo.artifact_path(fake_root, "auto_pricing", "2.1.0").write_bytes(b"tampered")
    with pytest.raises(demo.DemoError, match="auto_pricing 2.1.0: sha256 mismatch"):
        demo.publish_examples(store, config, fake_root, lines.append)

    demo.artifact_path(fake_root, "auto_pricing", "2.1.0").unlink()
    with pytest.raises(demo.DemoError, match=r"auto_pricing 2.1.0: no artifact at .*build_models.py"):
        demo.publish_examples(store, config, fake_root, lines.append)


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

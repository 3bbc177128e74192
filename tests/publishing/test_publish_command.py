"""``modelplatform publish``: immutable uploads, the load check, name/version rules, printed config lines."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import dill
import pytest

from modelplatform.artifacts import sha256_hex
from modelplatform.publishing import PublishError, publish_file
from modelplatform.store import S3ModelStore, VersionExists
from race_support import race, winners
from support.models import Echo, Pricer


def test_publish_uploads_with_sha256_metadata_and_prints_a_new_entry(cli, model_file, store, store_url, stored,
                                                                     write_config) -> None:
    path = model_file(Pricer("300.00"))
    digest = sha256_hex(path.read_bytes())
    config = write_config({"other_model": {"default": "1"}})

    run = cli("publish", str(path), "--model", "auto_pricing", "--version", "2.1.1", "--config", str(config))

    assert run.code == 0, run.err
    assert stored() == {"registry/auto_pricing/2.1.1.dill": path.read_bytes()}
    head = store.client.head_object(Bucket=store.location.bucket, Key="registry/auto_pricing/2.1.1.dill")
    assert head["Metadata"] == {"sha256": digest}
    assert f"sha256 {digest}" in run.out
    assert f"published {store_url}/auto_pricing/2.1.1.dill" in run.out
    assert "'auto_pricing' is not in" in run.out
    entry = json.loads("{" + run.out[run.out.index('  "auto_pricing"'):] + "}")
    assert entry == {"auto_pricing": {"description": "", "active_model_versions": ["2.1.1"], "default": "2.1.1",
                                      "sha256": {"2.1.1": digest}, "schemas": {}}}


def test_publish_prints_the_existing_entry_with_the_version_added(cli, model_file, store_url, write_config) -> None:
    existing = {"description": "pricing", "active_model_versions": ["1.0.0"], "default": "1.0.0",
                "sha256": {"1.0.0": "ab" * 32}, "schemas": {"1.X.X": {"type": "object"}}}
    config = write_config({"auto_pricing": existing, "other": {"default": "9"}})
    path = model_file(Pricer("300.00"))
    digest = sha256_hex(path.read_bytes())

    run = cli("publish", str(path), "--model", "auto_pricing", "--version", "1.1.0", "--config", str(config))

    assert run.code == 0, run.err
    assert 'in "active_model_versions" add:  "1.1.0"' in run.out
    assert f'in "sha256" add:                 "1.1.0": "{digest}"' in run.out
    entry = json.loads("{" + run.out[run.out.index('  "auto_pricing"'):] + "}")
    assert entry == {"auto_pricing": {**existing, "active_model_versions": ["1.0.0", "1.1.0"],
                                      "sha256": {"1.0.0": "ab" * 32, "1.1.0": digest}}}
    assert json.loads(config.read_text())["auto_pricing"] == existing  # publish never edits the config


def test_republishing_a_version_is_refused_and_leaves_the_bytes_unchanged(cli, model_file, store_url,
                                                                         stored) -> None:
    first = model_file(Pricer("300.00"), "first.dill")
    assert cli("publish", str(first), "--model", "auto_pricing", "--version", "1.0.0").code == 0
    before = stored()

    second = model_file(Pricer("999.00"), "second.dill")
    run = cli("publish", str(second), "--model", "auto_pricing", "--version", "1.0.0")

    assert run.code == 1
    assert "refused" in run.err and "already exists" in run.err and "new version" in run.err
    assert "auto_pricing 1.0.0" in run.err
    assert stored() == before == {"registry/auto_pricing/1.0.0.dill": first.read_bytes()}
    # the same bytes again are refused too: a version is written exactly once
    assert cli("publish", str(first), "--model", "auto_pricing", "--version", "1.0.0").code == 1


def test_racing_publishers_of_one_version_exactly_one_wins(store: S3ModelStore, tmp_path: Path, stored) -> None:
    files = []
    for i in range(6):
        path = tmp_path / f"racer{i}.dill"
        path.write_bytes(os.urandom(256 * 1024))  # distinct bytes, so an overwrite would show
        files.append(path)

    def publisher(path: Path):
        own_store = S3ModelStore(store.location)  # a publisher of its own, as on another machine
        data = path.read_bytes()
        # straight to the conditional write: publish_file's early exists() check could hide a lost race
        return lambda: own_store.publish("racer", "1.0.0", data, sha256_hex(data))

    results = race([publisher(path) for path in files])

    (winner,) = winners(results)
    assert all(isinstance(r, VersionExists) for i, r in enumerate(results) if i != winner)
    assert stored() == {"registry/racer/1.0.0.dill": files[winner].read_bytes()}


@pytest.mark.parametrize("content, expected", [
    (b"\x00not a pickle at all\xff", "cannot be loaded with dill"),
    # a common slip: pickling the fitted parameters instead of the model object
    (dill.dumps({"coefficients": [0.1, 0.2]}), "loaded a dict, which has no predict(input) method"),
], ids=["garbage-bytes", "object-without-predict"])
def test_unloadable_file_is_refused_and_nothing_is_uploaded(cli, model_file, store_url, stored, content,
                                                           expected) -> None:
    path = model_file(content)

    run = cli("publish", str(path), "--model", "broken", "--version", "1.0.0")

    assert run.code == 1
    assert expected in run.err
    assert "broken 1.0.0" in run.err and "--skip-load-check" in run.err
    assert stored() == {}


def test_skip_load_check_uploads_without_loading(cli, model_file, store_url, stored) -> None:
    path = model_file(b"needs a library this laptop lacks")

    run = cli("publish", str(path), "--model", "broken", "--version", "1.0.0", "--skip-load-check")

    assert run.code == 0, run.err
    assert stored() == {"registry/broken/1.0.0.dill": path.read_bytes()}


@pytest.mark.parametrize("model, version, expected", [
    ("AutoPricing", "1.0.0", "invalid model name"),
    ("1pricing", "1.0.0", "invalid model name"),
    ("auto-pricing", "1.0.0", "invalid model name"),
    ("a" * 65, "1.0.0", "invalid model name"),
    ("../etc", "1.0.0", "invalid model name"),
    ("auto_pricing", "v1", "invalid version"),
    ("auto_pricing", "01.2", "invalid version"),
    ("auto_pricing", "1.2.X", "invalid version"),
    ("auto_pricing", "1..2", "invalid version"),
    ("auto_pricing", "1.2.3.4.5.6.7", "invalid version"),
    ("auto_pricing", "", "invalid version"),
])
def test_bad_names_and_versions_are_refused_before_anything_happens(cli, model_file, store_url, stored,
                                                                    model, version, expected) -> None:
    path = model_file(Echo())

    run = cli("publish", str(path), "--model", model, "--version", version)

    assert run.code == 1
    assert expected in run.err
    assert stored() == {}


def test_missing_file_and_missing_store_are_clear_errors(cli, tmp_path, monkeypatch, model_file) -> None:
    monkeypatch.setenv("MODEL_STORE_URL", "s3://some-bucket/models")
    run = cli("publish", str(tmp_path / "nope.dill"), "--model", "m", "--version", "1.0.0")
    assert run.code == 1 and "no such file" in run.err

    monkeypatch.delenv("MODEL_STORE_URL")
    run = cli("publish", str(model_file(Echo())), "--model", "m", "--version", "1.0.0")
    assert run.code == 2 and "MODEL_STORE_URL" in run.err

    run = cli("publish", str(model_file(Echo())), "--model", "m", "--version", "1.0.0", "--store", "http://x/y")
    assert run.code == 2
    assert run.err == "modelplatform publish: MODEL_STORE_URL must look like s3://bucket/prefix, got 'http://x/y'\n"


def test_missing_bucket_is_an_error_not_a_crash(cli, model_file, s3_endpoint) -> None:
    run = cli("publish", str(model_file(Echo())), "--model", "m", "--version", "1.0.0",
              "--store", "s3://no-such-bucket-here/models")
    assert run.code == 1
    assert "does not exist" in run.err


def test_progress_positions_reach_the_file_size(store: S3ModelStore, model_file, stored) -> None:
    path = model_file(os.urandom(3 * 1024 * 1024), "big.dill")
    positions: list[int] = []

    publish_file(path, "big", "1.0.0", store, load_check=False, on_position=positions.append)

    assert positions and max(positions) == path.stat().st_size
    assert stored()["registry/big/1.0.0.dill"] == path.read_bytes()


def test_the_console_script_exits_non_zero_when_refused(store: S3ModelStore, store_url, model_file) -> None:
    path = model_file(Echo())
    env = {**os.environ, "MODEL_STORE_URL": store_url}
    command = [str(Path(sys.executable).with_name("modelplatform")), "publish", str(path),
               "--model", "echo", "--version", "3.0"]

    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    assert first.returncode == 0, first.stderr
    assert hashlib.sha256(path.read_bytes()).hexdigest() in first.stdout
    assert again.returncode == 1
    assert "already exists" in again.stderr


def test_the_conditional_write_itself_refuses_an_existing_key(store: S3ModelStore, stored) -> None:
    # straight to the store, past publish_file's early exists() check: S3 must refuse on its own
    store.publish("m", "1.0.0", b"first", sha256_hex(b"first"))
    with pytest.raises(VersionExists, match="already exists"):
        store.publish("m", "1.0.0", b"second", sha256_hex(b"second"))
    assert stored() == {"registry/m/1.0.0.dill": b"first"}


def test_publish_file_rejects_before_uploading(store: S3ModelStore, model_file, stored) -> None:
    with pytest.raises(PublishError, match="invalid model name"):
        publish_file(model_file(Echo()), "Bad", "1.0.0", store)
    assert stored() == {}


def test_two_publish_processes_racing_exactly_one_wins(store_url, tmp_path: Path, stored) -> None:
    files = []
    for i in range(2):
        path = tmp_path / f"laptop{i}.dill"
        path.write_bytes(os.urandom(1024 * 1024))
        files.append(path)
    env = {**os.environ, "MODEL_STORE_URL": store_url}
    procs = [subprocess.Popen([str(Path(sys.executable).with_name("modelplatform")), "publish", str(path),
                               "--model", "raced", "--version", "1.0", "--skip-load-check"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for path in files]
    outcomes = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
        outcomes.append((proc.returncode, err))

    assert sorted(code for code, _ in outcomes) == [0, 1], outcomes
    winner = next(i for i, (code, _) in enumerate(outcomes) if code == 0)
    loser_err = outcomes[1 - winner][1]
    assert "refused" in loser_err and "already exists" in loser_err
    assert stored() == {"registry/raced/1.0.dill": files[winner].read_bytes()}


def test_publish_outside_the_checkout_never_prints_an_entry_that_would_replace_the_model(
        cli, model_file, store_url, tmp_path, monkeypatch) -> None:
    """Issue 12: run where config/models.json is not, publish printed a whole new entry whose default was the
    new version; pasted over the real one it would have sent all traffic to it."""
    path = model_file(Pricer("300.00"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MODELS_CONFIG", raising=False)

    run = cli("publish", str(path), "--model", "auto_pricing", "--version", "2.2.0")

    assert run.code == 0, run.err
    assert "published s3://" in run.out
    assert '"default"' not in run.out and '"active_model_versions"' not in run.out
    assert (f"not showing the config lines to add: no config file at config/models.json (from {tmp_path}); "
            "pass --config PATH or set MODELS_CONFIG, or run this from the checkout.") in run.out


def test_add_to_config_writes_the_version_into_the_entry_and_nothing_else(cli, model_file, store_url,
                                                                          write_config) -> None:
    existing = {"description": "pricing", "active_model_versions": ["1.0.0"], "default": "1.0.0",
                "sha256": {"1.0.0": "ab" * 32}, "schemas": {"1.X.X": {"type": "object"}}}
    other = {"default": "9", "note": "ünïcode kept"}
    config = write_config({"$schema": "x.json", "auto_pricing": existing, "other": other})
    path = model_file(Pricer("300.00"))
    digest = sha256_hex(path.read_bytes())

    run = cli("publish", str(path), "--model", "auto_pricing", "--version", "1.1.0", "--config", str(config),
              "--add-to-config")

    assert run.code == 0, run.err
    assert json.loads(config.read_text()) == {
        "$schema": "x.json", "other": other,
        "auto_pricing": {**existing, "active_model_versions": ["1.0.0", "1.1.0"],
                         "sha256": {"1.0.0": "ab" * 32, "1.1.0": digest}}}
    assert "ünïcode kept" in config.read_text(encoding="utf-8")
    assert 'added 1.1.0 to "active_model_versions" and its digest to "sha256"' in run.out
    assert "unpinned traffic is unchanged" in run.out


@pytest.mark.parametrize("config_text, reason", [
    (None, "no config file at"),
    ('{"auto_pricing": {}, "auto_pricing": {}}', "appears more than once"),
    ('{"other": {}}', "'auto_pricing' is not in"),
])
def test_add_to_config_is_refused_before_uploading_when_it_cannot_edit_the_entry(
        cli, model_file, store_url, stored, tmp_path, config_text, reason) -> None:
    config = tmp_path / "models.json"
    if config_text is not None:
        config.write_text(config_text)
    run = cli("publish", str(model_file(Pricer("300.00"))), "--model", "auto_pricing", "--version", "1.1.0",
              "--config", str(config), "--add-to-config")

    assert run.code == 2
    assert reason in run.err and "nothing was published" in run.err
    assert stored() == {}


def test_without_settings_publish_and_check_config_use_the_running_demo(cli, model_file, store, stored, tmp_path,
                                                                       monkeypatch) -> None:
    """Issue 12: nothing said how to point the CLI at the demo (endpoint, bucket, dummy credentials)."""
    from modelplatform.demostate import DemoState

    endpoint = os.environ["AWS_ENDPOINT_URL"]
    config = tmp_path / "checkout" / "models.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"auto_pricing": {
        "active_model_versions": ["1.0.0"], "default": "1.0.0", "sha256": {"1.0.0": "ab" * 32},
        "schemas": {"1.X.X": {"type": "object"}}}}))
    (tmp_path / ".demo").mkdir()
    DemoState(data_dir=str(tmp_path / ".demo"), pid=os.getpid(), server_pid=os.getpid(),
              server_log=str(tmp_path / "server.log"), base_url="http://127.0.0.1:1",
              database_url="postgresql://demo@/postgres", aws_endpoint_url=endpoint,
              model_store_url=str(store.location), models_config=str(config)).write()
    monkeypatch.chdir(tmp_path)
    for name in ("AWS_ENDPOINT_URL", "MODEL_STORE_URL", "DATABASE_URL", "MODELS_CONFIG"):
        monkeypatch.delenv(name, raising=False)

    run = cli("publish", str(model_file(Pricer("300.00"))), "--model", "auto_pricing", "--version", "1.1.0",
              "--add-to-config")
    assert run.code == 0, run.err
    assert run.err.startswith("modelplatform: using the demo running in .demo (no DATABASE_URL, MODEL_STORE_URL or "
                              "AWS_ENDPOINT_URL set)\n")
    assert list(stored()) == ["registry/auto_pricing/1.1.0.dill"]
    assert json.loads(config.read_text())["auto_pricing"]["active_model_versions"] == ["1.0.0", "1.1.0"]

    run = cli("check-config", "--no-store")  # the demo's config, found without a path
    assert run.code == 0 and "checkout/models.json: OK" in run.out

    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # explicit settings: no demo mixed in
    run = cli("publish", str(model_file(Pricer("301.00"), "b.dill")), "--model", "auto_pricing", "--version", "1.2.0",
              "--store", str(store.location))
    assert run.code == 0 and "using the demo" not in run.err

"""A published file changed in S3 behind the config's back: check-config reports it, a host that cached the
verified file keeps serving it, and a host without that copy refuses to start."""
from __future__ import annotations

import json

import pytest

from modelplatform.artifacts import sha256_hex
from modelplatform.authoring import dumps_by_value
from modelplatform.errors import StartupError
from support import Platform
from support.models import Pricer


def test_tampered_object_is_caught_by_check_config_and_refused_at_startup(platform: Platform, cli,
                                                                          monkeypatch, tmp_path) -> None:
    platform.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1"), "1.1.0": Pricer("310.00", "v2")})
    expected = platform.config["auto_pricing"]["sha256"]["1.1.0"]
    monkeypatch.setenv("MODEL_STORE_URL", str(platform.store.location))
    path = platform.write_config()
    assert cli("check-config", str(path)).code == 0
    platform.app()  # starts while the bytes are the published ones

    # someone with write access replaces the object directly, bypassing publish's conditional write
    forged = dumps_by_value(Pricer("1.00", "v2"))
    platform.store.client.put_object(Bucket=platform.store.location.bucket,
                                     Key=platform.store.location.key("auto_pricing", "1.1.0"), Body=forged)
    found = sha256_hex(forged)

    run = cli("check-config", str(path), "--json")
    assert run.code == 1
    (problem,) = json.loads(run.out)["problems"]
    assert (problem["check"], problem["model"], problem["version"]) == ("store", "auto_pricing", "1.1.0")
    assert expected in problem["message"] and found in problem["message"]

    # this host verified and cached the published file: it serves that, and never reads the forged bytes
    quote = {"vehicle": "hatchback", "driver_age": 40}
    served = platform.app().test_client().post("/models/auto_pricing/versions/1.1.0/predict", json=quote)
    assert served.status_code == 200 and served.get_json()["output"]["premium"] == 310.0

    # a host without that copy fetches the object, finds other bytes and refuses before unpickling them
    with pytest.raises(StartupError) as raised:
        platform.app(ARTIFACT_CACHE_DIR=tmp_path / "fresh-host")
    (reason,) = raised.value.problems
    assert reason.startswith("auto_pricing 1.1.0: sha256 mismatch")
    assert f"config expects {expected}" in reason and f"the store holds {found}" in reason

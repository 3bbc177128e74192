"""The service refuses to start on anything wrong, naming model, version and reason."""
from __future__ import annotations

import pytest

from modelplatform.config import ConfigError
from modelplatform.errors import StartupError
from modelplatform.settings import Settings, normalize_database_url, psycopg2_dsn
from support import Platform, publish
from support.models import Echo


class DefinedInThisTestModule:
    """A model class written in the test itself: serialized by value, it loads anywhere."""

    def predict(self, payload):
        return {"sum": sum(payload["numbers"])}


def test_a_class_defined_in_the_test_module_is_served(platform: Platform) -> None:
    platform.add("adder", {"0.1.0": DefinedInThisTestModule()})
    response = platform.app().test_client().post("/models/adder/predict", json={"numbers": [1, 2, 3]})
    assert response.get_json()["output"] == {"sum": 6}


def test_missing_object_stops_startup(platform: Platform) -> None:
    platform.add("echo", {"1.0.0": Echo()}, schemas={"1.X.X": {"type": "object"}})
    platform.config["echo"]["active_model_versions"].append("1.1.0")
    platform.config["echo"]["sha256"]["1.1.0"] = "0" * 64
    with pytest.raises(StartupError) as caught:
        platform.app()
    (problem,) = caught.value.problems
    assert problem.startswith("echo 1.1.0: no model file at s3://")
    assert problem.endswith("/registry/echo/1.1.0.dill")


def test_sha256_mismatch_stops_startup_before_loading(platform: Platform) -> None:
    platform.add("echo", {"1.0.0": Echo()})
    real = platform.config["echo"]["sha256"]["1.0.0"]
    platform.config["echo"]["sha256"]["1.0.0"] = "a" * 64
    with pytest.raises(StartupError) as caught:
        platform.app()
    (problem,) = caught.value.problems
    assert "echo 1.0.0: sha256 mismatch" in problem
    assert f"expects {'a' * 64}" in problem and f"holds {real}" in problem


def test_tampered_object_is_refused(platform: Platform) -> None:
    platform.add("echo", {"1.0.0": Echo()})
    publish(platform.store, "echo", "1.0.0", b"not what was published")  # overwritten behind our back
    with pytest.raises(StartupError, match="echo 1.0.0: sha256 mismatch"):
        platform.app()


def test_broken_config_stops_startup_with_every_problem(platform: Platform) -> None:
    platform.add("echo", {"1.0.0": Echo()})
    platform.config["echo"]["default"] = "3.0.0"
    platform.config["Bad-Name"] = {}
    with pytest.raises(ConfigError) as caught:
        platform.app()
    text = str(caught.value)
    assert "default 3.0.0 is not one of active_model_versions" in text
    assert "Bad-Name" in text


def test_config_that_is_not_json_or_missing(platform: Platform, tmp_path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    env = {"DATABASE_URL": platform.database_url, "MODEL_STORE_URL": str(platform.store.location)}
    with pytest.raises(ConfigError, match="not valid JSON"):
        from modelplatform.app import create_app
        create_app(Settings.from_env({**env, "MODELS_CONFIG": str(bad)}), store=platform.store)
    with pytest.raises(ConfigError, match="cannot read config file"):
        from modelplatform.app import create_app
        create_app(Settings.from_env({**env, "MODELS_CONFIG": str(tmp_path / "absent.json")}), store=platform.store)


def test_missing_bucket_is_named(platform: Platform) -> None:
    platform.add("echo", {"1.0.0": Echo()})
    from modelplatform.app import create_app
    from modelplatform.settings import StoreLocation
    from modelplatform.store import S3ModelStore

    with pytest.raises(StartupError, match="bucket 'no-such-bucket-here' does not exist"):
        create_app(platform.settings(), store=S3ModelStore(StoreLocation("no-such-bucket-here", "")))


def test_settings_report_every_problem() -> None:
    with pytest.raises(StartupError) as caught:
        Settings.from_env({"DATABASE_URL": "mysql://x", "MODEL_STORE_URL": "http://bucket", "MAX_BODY_BYTES": "-1"})
    text = "\n".join(caught.value.problems)
    assert "DATABASE_URL must be a postgresql:// URL" in text
    assert "MODEL_STORE_URL must look like s3://bucket/prefix" in text
    assert "MAX_BODY_BYTES must be a positive integer" in text
    with pytest.raises(StartupError, match="DATABASE_URL is not set"):
        Settings.from_env({"MODEL_STORE_URL": "s3://b"})


def test_settings_accept_heroku_postgres_urls_and_default_config_path() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgres://u:p@h/db", "MODEL_STORE_URL": "s3://bucket/a/b/"})
    assert settings.database_url == "postgresql+psycopg2://u:p@h/db"
    assert (settings.store.bucket, settings.store.prefix) == ("bucket", "a/b")
    assert settings.store.key("m", "1.2.3") == "a/b/m/1.2.3.dill"
    assert str(settings.config_path) == "config/models.json"
    assert settings.max_body_bytes == 1024 * 1024


@pytest.mark.parametrize("url", ["postgres://u:p@h/db?sslmode=require", "postgresql://u:p@h/db?sslmode=require",
                                 "postgresql+psycopg2://u:p@h/db?sslmode=require"])
def test_one_database_url_rule_for_sqlalchemy_and_for_libpq(url: str) -> None:
    assert normalize_database_url(url) == "postgresql+psycopg2://u:p@h/db?sslmode=require"
    assert psycopg2_dsn(url) == "postgresql://u:p@h/db?sslmode=require"
    assert normalize_database_url(normalize_database_url(url)) == normalize_database_url(url)


@pytest.mark.parametrize("bad", ["0", "-1", "soon", "inf", "nan"])
def test_predict_timeout_must_be_a_positive_number(bad: str) -> None:
    with pytest.raises(StartupError, match="PREDICT_TIMEOUT must be a positive number of seconds"):
        Settings.from_env({"DATABASE_URL": "postgresql://u@h/db", "MODEL_STORE_URL": "s3://b", "PREDICT_TIMEOUT": bad})

"""The environment given to processes that run model code: an allow-list, never the caller's secrets."""
from __future__ import annotations

from modelplatform.childenv import EXTRA_ENV, loading_env

CALLER = {
    "PATH": "/usr/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "OMP_NUM_THREADS": "1",
    "DATABASE_URL": "postgresql://u:secret@db/x", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_ACCESS_KEY_ID": "AK",
    "AWS_SESSION_TOKEN": "tok", "API_KEYS": "ci:0123456789", "GITHUB_TOKEN": "ghp_x", "HOME": "/root",
    "MY_LICENSE_SERVER": "lic:27000",
}


def test_only_allow_listed_names_reach_the_child() -> None:
    env = loading_env(CALLER)
    assert env == {"PATH": "/usr/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "OMP_NUM_THREADS": "1"}


def test_an_operator_can_let_named_variables_through() -> None:
    env = loading_env({**CALLER, EXTRA_ENV: "MY_LICENSE_SERVER, HOME"})
    assert env["MY_LICENSE_SERVER"] == "lic:27000" and env["HOME"] == "/root"
    assert env[EXTRA_ENV] == "MY_LICENSE_SERVER, HOME"
    assert "DATABASE_URL" not in env and "AWS_SECRET_ACCESS_KEY" not in env

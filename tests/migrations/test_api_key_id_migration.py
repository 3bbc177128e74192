"""Revision 0003 (inferences.api_key_id) upgrades and downgrades cleanly, on its own database."""
from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from modelplatform import db
from modelplatform.settings import normalize_database_url


def columns(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return {c["name"] for c in sa.inspect(engine).get_columns("inferences")}
    finally:
        engine.dispose()


def test_0003_adds_and_drops_api_key_id(engine: sa.Engine) -> None:
    name = f"mig_{uuid.uuid4().hex[:10]}"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"create database {name}"))
    url = make_url(str(engine.url.render_as_string(hide_password=False))).set(database=name)
    url_text = normalize_database_url(url.render_as_string(hide_password=False))
    try:
        db.upgrade(url_text, "0003")
        assert "api_key_id" in columns(url_text)
        db.downgrade(url_text, "0002")
        assert "api_key_id" not in columns(url_text) and "request_id" in columns(url_text)
        db.upgrade(url_text, "0003")
        assert "api_key_id" in columns(url_text)
    finally:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f"drop database if exists {name} with (force)"))

"""Durable commits (SPEC §8): SQLite in WAL mode with synchronous=FULL, PostgreSQL with synchronous_commit on, for
duesflow and for the benchmark's floor alike, asserted on live connections of each engine."""

from __future__ import annotations

import pytest
from conftest import app_config
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bench import floor_app
from duesflow import create_app
from duesflow.extensions import db

SQLITE_FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def assert_durable(engine: Engine) -> None:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert connection.execute(text("PRAGMA synchronous")).scalar_one() == SQLITE_FULL
        else:
            assert connection.execute(text("SHOW synchronous_commit")).scalar_one() == "on"


def test_duesflow_commits_durably(app):
    assert_durable(db.engine)


def test_postgresql_synchronous_commit_off_is_overridden(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    config = app_config(database_url)
    config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"options": "-c synchronous_commit=off"}}
    careless = create_app(config)
    with careless.app_context():
        assert_durable(db.engine)
        db.engine.dispose()


def test_the_floor_is_as_durable(database_url, tmp_path, monkeypatch):
    url = database_url if database_url.startswith("postgresql") else f"sqlite:///{tmp_path / 'floor.sqlite3'}"
    monkeypatch.setenv("DUESFLOW_DATABASE_URL", url)
    floor = floor_app.create_app()
    with floor.app_context():
        try:
            assert_durable(floor_app.db.engine)
        finally:
            floor_app.FloorRow.__table__.drop(floor_app.db.engine)
            floor_app.db.engine.dispose()

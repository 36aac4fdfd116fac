"""Durable commits (SPEC §8): SQLite in WAL mode with synchronous=FULL, PostgreSQL with synchronous_commit on, for
duesflow and for the benchmark's floor alike, asserted on live connections of each engine."""

from __future__ import annotations

import time

import pytest
from conftest import app_config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from bench import floor_app
from duesflow import create_app
from duesflow.extensions import db
from duesflow.models import Member

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


def test_a_connection_the_server_ended_is_replaced_without_an_error(app, api, world, database_url):
    """The pool has no pre-ping (a round trip per request): a pooled connection whose backend the server ended (a
    restart does it to all of them) is found closed at checkout and replaced, so the next read and the next write
    answer as usual, neither 500 nor 503."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    assert not db.engine.pool._pre_ping
    db.engine.dispose()  # the connections earlier tests left in the pool (tests/parallel.py, share_engines) closed
    member_id = world.members["zhang"].id
    assert api.get("/payments", "clerk").status_code == 200
    db.session.remove()  # the request's connection goes back to the pool
    with db.engine.connect() as pooled:
        pid = pooled.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    admin = create_engine(database_url, poolclass=NullPool)
    with admin.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
        for _ in range(100):  # the backend ends (and closes its socket) a moment after the signal
            if not connection.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                                      {"pid": pid}).scalar_one():
                break
            time.sleep(0.05)
    assert db.engine.pool.checkedin() == 1
    assert api.get("/payments", "clerk").status_code == 200
    db.session.remove()
    with admin.connect() as connection:  # now the write: its backend ended too
        connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> "
                                "pg_backend_pid() AND datname = current_database()"))
    time.sleep(0.5)
    assert api.record(db.session.get(Member, member_id))["state"] == "recorded"
    admin.dispose()

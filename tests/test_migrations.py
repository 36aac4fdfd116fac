"""The Alembic migrations build exactly the schema the models describe, on SQLite and on PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import inspect, text

from duesflow.extensions import db


def _empty_database() -> None:
    db.metadata.drop_all(db.engine)
    with db.engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))


def test_migrations_create_the_schema_the_models_describe(app):
    _empty_database()
    upgrade(directory=app.extensions["migrate"].directory)
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": False}
        )
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_init_db_is_idempotent_and_seeds_the_audit_chain(app, runner):
    _empty_database()
    for _ in range(2):
        result = runner.invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
    tables = set(inspect(db.engine).get_table_names())
    assert {table.name for table in db.metadata.sorted_tables} <= tables
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT last_hash FROM audit_head WHERE id = 1")).scalar_one() == "0" * 64

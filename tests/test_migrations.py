"""The Alembic migrations build exactly the schema the models describe, on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, stamp, upgrade
from sqlalchemy import inspect, text

from duesflow.extensions import db
from duesflow.services.audit import GENESIS_HASH, chain_heads, check_payment_counts, counted_payments, verify_audit


def _empty_database() -> None:
    db.metadata.drop_all(db.engine)
    with db.engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        connection.execute(text("DROP TABLE IF EXISTS audit_head"))  # the single chain's head before 0007


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
        assert connection.execute(text("SELECT count(*) FROM audit_heads")).scalar_one() == 0  # made on first use


def _old_hash(prev_hash: str, row) -> str:  # noqa: ANN001
    """audit.event_hash before migration 0007: one chain, the content without the chain's name."""
    content = {name: getattr(row, name) for name in ("payment_id", "action", "from_state", "to_state",
                                                     "from_org_id", "to_org_id", "actor_id", "note")}
    details = row.details if isinstance(row.details, dict) else json.loads(row.details)  # SQLite: text
    at = row.at if isinstance(row.at, datetime) else datetime.fromisoformat(row.at)
    content |= {"details": details, "at": at.replace(tzinfo=UTC).isoformat()}
    text_ = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + text_).encode()).hexdigest()


def test_0007_splits_the_trail_into_chains_and_back(app, api, world):
    directory = app.extensions["migrate"].directory
    first = api.record(world.members["zhang"])["id"]
    api.act(first, "submit", "clerk")
    api.act(first, "forward", "tiedong")
    api.record(world.members["li"], "2000")
    api.record(world.members["zhou"], "3000", as_user="clerk_jiefang")
    db.session.commit()
    heads = chain_heads()
    assert len(heads) == 2  # 北门's chain and 解放's
    db.session.rollback()  # SQLite: the session's transaction holds the write lock the migration needs
    stamp(directory=directory)

    downgrade(directory=directory, revision="0006")
    with db.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM events ORDER BY id")).all()
        prev = GENESIS_HASH
        for row in rows:  # one chain again, hashed the old way
            assert row.prev_hash == prev
            assert row.hash == _old_hash(prev, row)
            prev = row.hash
        assert connection.execute(text("SELECT last_hash FROM audit_head WHERE id = 1")).scalar_one() == prev
        assert "chain" not in {column["name"] for column in inspect(connection).get_columns("events")}

    upgrade(directory=directory)
    db.session.expire_all()
    assert chain_heads() == heads  # the same chains, to the same hashes
    assert verify_audit() is None


@pytest.mark.payment_counts_unchecked  # it leaves a database without tables
def test_0007_refuses_to_rehash_a_tampered_trail(app, api, world, capfd):
    directory = app.extensions["migrate"].directory
    api.record(world.members["zhang"])
    api.record(world.members["li"], "2000")
    db.session.commit()
    stamp(directory=directory)
    downgrade(directory=directory, revision="0006")
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE events SET note = '改过' WHERE id = (SELECT min(id) FROM events)"))

    with pytest.raises(SystemExit):  # flask_migrate logs the migration's error and exits
        upgrade(directory=directory)
    assert "does not verify" in capfd.readouterr().err
    _empty_database()


def test_0013_fills_the_chain_heads_counts_from_the_payments_and_drops_them(app, api, world):
    directory = app.extensions["migrate"].directory
    first = api.record(world.members["zhang"])["id"]
    api.act(first, "submit", "clerk")
    withdrawn = api.record(world.members["li"], "2000")["id"]
    api.act(withdrawn, "withdraw", "clerk", reason="记错了")
    api.record(world.members["zhou"], "3000", as_user="clerk_jiefang")
    db.session.commit()
    stamp(directory=directory)
    downgrade(directory=directory, revision="0010")
    with db.engine.connect() as connection:
        columns = {column["name"] for column in inspect(connection).get_columns("audit_heads")}
    assert columns == {"chain", "length", "last_hash"}

    upgrade(directory=directory)
    db.session.expire_all()
    assert counted_payments() == {f"org-{world.orgs['beimen'].id}": {"in_review": 1, "withdrawn": 1},
                                  f"org-{world.orgs['jiefang'].id}": {"recorded": 1}}
    assert check_payment_counts(counted_payments()) is None
    assert verify_audit() is None

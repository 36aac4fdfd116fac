"""What lets the suite run over several processes (pytest-xdist, ``-n auto``) and keep each test's database cheap.

- Each xdist worker (``gw0``, ``gw1``, …) has a database of its own: a SQLite file under its own temporary
  directory, or on PostgreSQL ``<base>_gw0`` …, created from DUESFLOW_TEST_DATABASE_URL at the start of the
  worker's session and dropped at its end (``worker_database``). A single process keeps the base URL itself.
- A test's clean database (``clean_database``): the schema is made once per database, and before each test only
  the tables that hold rows are emptied (DELETE, children first) and the sequences that were used are reset, which
  is what TRUNCATE … RESTART IDENTITY of every table did, at a fraction of its cost (docs/testing.md). Every
  statement of a test still commits for real, on a connection of its own.
- Tests that share an expensive module-scoped fixture (a live gunicorn, the browser) stay on one worker
  (``group_by_module``, for ``--dist loadgroup``), so that each such fixture starts once per run.
- Statuses the app answered (read by tests/test_openapi.py's last test): every worker writes its own when it has run
  all its tests, and ``gathered`` waits for the others' and merges them (``publish`` / ``gathered``).
- ``cache_url_builders``: werkzeug compiles every URL rule's builder with ``ast`` and ``compile`` each time an app
  is made; the tests make one app per test, so the code compiled for a rule is kept and reused (see there).
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Table, create_engine, select, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from werkzeug.routing.rules import Rule

from duesflow.extensions import db
from duesflow.timeutil import beijing_today

WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", …; None when the tests run in one process
# How long the last test waits for the other workers to finish theirs (the browser tests may still be running).
GATHER_TIMEOUT = 1800.0


# ---- a database per worker ---------------------------------------------------------------------------------


def worker_database_url(base_url: str) -> str:
    """``base_url`` itself in a single process; ``<database>_<worker>`` on the same server under xdist."""
    if WORKER is None:
        return base_url
    url = make_url(base_url)
    return url.set(database=f"{url.database}_{WORKER}").render_as_string(hide_password=False)


def create_worker_database(base_url: str, url: str) -> None:
    """Create this worker's database; in a single process, drop the models' tables in the base database instead:
    they would otherwise keep the columns of the code that made them (``clean_database`` creates only missing
    tables), and a test would fail on an old column, not on the code under test. Nothing else of the database is
    touched."""
    if url == base_url:
        engine = create_engine(base_url)
        quote = engine.dialect.identifier_preparer.quote
        with engine.begin() as connection:
            for name in [table.name for table in db.metadata.sorted_tables] + ["alembic_version"]:
                connection.execute(text(f"DROP TABLE IF EXISTS {quote(name)} CASCADE"))
        engine.dispose()
        return
    name = make_url(url).database
    engine = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))  # a crashed run's leftover
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def drop_worker_database(base_url: str, url: str) -> None:
    if url == base_url:
        return
    engine = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    engine.dispose()


# ---- one engine per PostgreSQL database and process -------------------------------------------------------------

_ENGINES: dict[str, Engine] = {}


def shares_engines(database_url: str) -> bool:
    """Whether the apps of this process share one engine (and its pooled connections) on ``database_url``."""
    return database_url.startswith("postgresql")


def share_engines() -> None:
    """Every app made in this process on a PostgreSQL database with the same engine options gets the same engine:
    its pooled connections outlive a test (their backends, and the statements psycopg prepared on them, serve the
    next test) instead of a connection being opened and closed for each one. SQLite keeps an engine per app."""
    make_engine = SQLAlchemy._make_engine

    def shared(self: SQLAlchemy, bind_key: str | None, options: dict[str, Any], app: Flask) -> Engine:
        url = make_url(options.get("url", "")).render_as_string(hide_password=False)
        if not shares_engines(url):
            return make_engine(self, bind_key, options, app)
        key = repr(sorted({**options, "url": url}.items(), key=lambda item: item[0]))
        if key not in _ENGINES:
            _ENGINES[key] = make_engine(self, bind_key, options, app)
        return _ENGINES[key]

    SQLAlchemy._make_engine = shared  # type: ignore[method-assign]


# ---- a clean database per test --------------------------------------------------------------------------------


def clean_database() -> None:
    """Empty every table of the models that holds a row and reset the sequences that were used.

    Tables missing (a first test on this database, or a test that dropped them, as the migration tests do) are
    created first.
    """
    created = False
    with db.engine.connect() as connection:
        try:
            filled = _tables_with_rows(connection)
        except DBAPIError:
            connection.rollback()
            db.metadata.create_all(connection)
            filled = _tables_with_rows(connection)
            created = True
        for table in reversed(db.metadata.sorted_tables):
            if table.name in filled:
                connection.execute(table.delete())
        if connection.dialect.name == "postgresql":
            # RESTART IDENTITY's part: ids start at 1 again (setval is not transactional; nothing is rolled back)
            connection.execute(text(
                "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, 1, false) FROM pg_sequences "
                "WHERE schemaname = current_schema() AND last_value IS NOT NULL"))
        elif "sqlite_sequence" in filled:
            connection.execute(text("DELETE FROM sqlite_sequence"))
        connection.commit()
    if created and shares_engines(str(db.engine.url)):
        db.engine.dispose()  # tables made anew: no pooled connection keeps a statement prepared on the old ones


def _tables_with_rows(connection: Connection) -> set[str]:
    """The names of the models' tables that hold at least one row (one statement, whatever their number)."""
    tables = [table.name for table in db.metadata.sorted_tables]
    if connection.dialect.name == "sqlite":
        exists = connection.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")).first()
        tables += ["sqlite_sequence"] if exists else []
    quote = connection.dialect.identifier_preparer.quote
    probes = " UNION ALL ".join(f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM {quote(name)})" for name in tables)
    return set(connection.execute(text(probes)).scalars())


# ---- the rows a fixture wrote, written again ----------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Every row of the models' tables, in the order of their foreign keys and ids, and the sequences' values."""

    rows: tuple[tuple[Table, tuple[dict[str, Any], ...]], ...]
    sequences: tuple[tuple[str, int], ...]


def take_snapshot(connection: Connection) -> Snapshot:
    """What the database holds now (read through the column types: encrypted columns are read as their values and
    encrypted again when written back, with the app's own key)."""
    filled = _tables_with_rows(connection)
    rows = tuple((table, tuple(dict(row) for row in connection.execute(
        select(table).order_by(*table.primary_key.columns)).mappings()))
        for table in db.metadata.sorted_tables if table.name in filled)
    sequences: tuple[tuple[str, int], ...] = ()
    if connection.dialect.name == "postgresql":
        sequences = tuple((name, value) for name, value in connection.execute(text(
            "SELECT format('%I.%I', schemaname, sequencename), last_value FROM pg_sequences "
            "WHERE schemaname = current_schema() AND last_value IS NOT NULL")))
    return Snapshot(rows, sequences)


def restore_snapshot(connection: Connection, snapshot: Snapshot) -> bool:
    """Write ``snapshot`` into the database, in the caller's transaction, if it is empty (as ``clean_database``
    leaves it); False, and nothing written, if a table holds a row."""
    if _tables_with_rows(connection) - {"sqlite_sequence"}:
        return False
    for table, rows in snapshot.rows:
        connection.execute(table.insert(), list(rows))
    for sequence, value in snapshot.sequences:
        connection.execute(text("SELECT setval(CAST(:sequence AS regclass), :value, true)"),
                           {"sequence": sequence, "value": value})
    return True


# Per process: what a fixture made, by its name, the app's whole configuration (database, data key, argon2 …) and
# the day (a row made yesterday is not one made today).
SAVED: dict[tuple[str, str, date], tuple[Snapshot, Any]] = {}


def _saved_key(app: Flask, name: str) -> tuple[str, str, date]:
    return name, repr(sorted(app.config.items())), beijing_today()


def restore_saved(app: Flask, name: str) -> Any | None:
    """The value ``save`` kept with the rows ``name`` made, after writing those rows back into the test's database
    (in the session's transaction; the caller commits). None, and nothing written, if nothing was saved under this
    name for this configuration today, or if the database is not empty."""
    saved = SAVED.get(_saved_key(app, name))
    if saved is None or not restore_snapshot(db.session.connection(), saved[0]):
        return None
    return saved[1]


def has_saved(app: Flask, name: str) -> bool:
    """Whether this process saved rows under ``name`` for this configuration today."""
    return _saved_key(app, name) in SAVED


def save(app: Flask, name: str, value: Any) -> None:
    """Keep what the database holds now (the rows a fixture just made on an empty database), and ``value``."""
    SAVED[_saved_key(app, name)] = (take_snapshot(db.session.connection()), value)


# ---- xdist: tests sharing a module-scoped fixture stay together -----------------------------------------------

_SHARED_SCOPES = {"module", "package", "class"}


def group_by_module(items: Iterable[pytest.Item]) -> None:
    """Mark every test that uses a module-, package- or class-scoped fixture (a live gunicorn, the browser …) with
    its module as xdist group: under ``--dist loadgroup`` the module's tests then run on one worker, and the
    fixture starts once, not once per worker."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None or item.get_closest_marker("xdist_group") is not None:
            continue
        scopes = {definition.scope for definitions in info.name2fixturedefs.values() for definition in definitions}
        if scopes & _SHARED_SCOPES:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


# ---- statuses observed by every worker --------------------------------------------------------------------------


def _exchange_directory(config: pytest.Config) -> Path | None:
    """A directory shared by the workers of this run: the parent of their own temporary directories."""
    if WORKER is None:
        return None
    return Path(config.option.basetemp).parent / "observed-statuses"


def publish(config: pytest.Config, observed: set[tuple[str, str, int]]) -> None:
    """A worker's statuses, written when it has run all its tests (pytest_sessionfinish)."""
    directory = _exchange_directory(config)
    if directory is None:
        return
    directory.mkdir(exist_ok=True)
    partial = directory / f"{WORKER}.partial"
    partial.write_text(json.dumps(sorted(observed)))
    partial.rename(directory / f"{WORKER}.json")


def gathered(config: pytest.Config, observed: set[tuple[str, str, int]]) -> set[tuple[str, str, int]]:
    """``observed`` (this process's statuses) and, under xdist, every other worker's, once each has finished."""
    directory = _exchange_directory(config)
    if directory is None:
        return set(observed)
    others = {f"gw{number}" for number in range(int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))} - {WORKER}
    deadline = time.monotonic() + GATHER_TIMEOUT
    while not all((directory / f"{worker}.json").exists() for worker in others):
        assert time.monotonic() < deadline, f"workers {sorted(others)} did not all finish within {GATHER_TIMEOUT}s"
        time.sleep(0.5)
    merged = set(observed)
    for worker in others:
        merged |= {tuple(entry) for entry in json.loads((directory / f"{worker}.json").read_text())}
    return merged  # type: ignore[return-value]


# ---- werkzeug's URL builders, compiled once per rule shape ----------------------------------------------------


def cache_url_builders() -> None:
    """Keep the builder werkzeug compiles for each URL rule, keyed by what its code is made of.

    ``Rule._compile_builder`` turns the rule's parsed parts (``_trace``) and its defaults into Python source (an
    ``ast``) and compiles it: two per rule, about a hundred rules, a third of a test's own time on a fresh app.
    The function it returns reads everything else (the converters) from the rule it is bound to, so one compiled
    for the same parts, default names and default values serves every later rule of that shape.
    """
    compile_builder = Rule._compile_builder
    if hasattr(compile_builder, "__wrapped__"):
        return
    builders: dict[Any, Any] = {}

    @functools.wraps(compile_builder)
    def cached(self: Rule, append_unknown: bool = True) -> Any:
        defaults = self.defaults or {}
        key = (tuple(self._trace), append_unknown, tuple(defaults),
               tuple(self._converters[name].to_url(value) for name, value in defaults.items()
                     if name in self._converters))
        if key not in builders:
            builders[key] = compile_builder(self, append_unknown)
        return builders[key]

    Rule._compile_builder = cached  # type: ignore[method-assign]

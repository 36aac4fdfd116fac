"""duesflow: voluntary one-time extra party dues of 1000 yuan or more, from collection to receipt."""

from __future__ import annotations

import select
import sqlite3
import weakref
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, has_app_context, has_request_context, request
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError, OperationalError
from werkzeug.routing import IntegerConverter

from . import config, personal_data, sqlite_writers
from .extensions import db, migrate, request_may_write
from .schemas import MAX_ID

PACKAGE_DIR = Path(__file__).resolve().parent
MIGRATIONS_DIR = PACKAGE_DIR / "migrations"
# Installed from a wheel the templates sit inside the package (setup.py copies them); in a checkout they stay at
# the top of the repository.
TEMPLATES_DIR = next((folder for folder in (PACKAGE_DIR / "templates", PACKAGE_DIR.parent / "templates")
                      if folder.is_dir()), PACKAGE_DIR / "templates")


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """The app factory."""
    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder=str(TEMPLATES_DIR),
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(config.from_environment(Path(app.instance_path)))
    if test_config:
        app.config.from_mapping(test_config)
    config.check(app.config)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]

    personal_data.init_app(app)
    _engine_options(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
    with app.app_context():
        if db.engine not in _ENGINES_SET_UP:  # an engine several apps share (the tests' on PostgreSQL): hooks once
            _sqlite_setup(db.engine)
            _postgresql_setup(db.engine)
            _ENGINES_SET_UP.add(db.engine)

    if app.config["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["TRUSTED_PROXIES"])  # type: ignore[method-assign]

    from . import api, cli, errors_web, observability, web
    from .api.meta import healthz
    from .services import notifications

    observability.init_app(app)
    app.url_map.converters["int"] = _IdConverter
    app.register_blueprint(api.bp)
    app.register_blueprint(web.bp)
    app.add_url_rule("/healthz", "healthz", healthz)
    errors_web.register(app)
    cli.register(app)
    notifications.init_app(app)
    app.after_request(_security_headers)
    return app


class _IdConverter(IntegerConverter):
    """``<int:...>`` ids: one beyond the database's integer range names no row, so it is read as 0, which no
    row has either; the view answers it like any unknown id (401 first, then 404), never with an overflow."""

    def to_python(self, value: str) -> int:
        number = int(super().to_python(value))
        return number if number <= MAX_ID else 0


_ENGINES_SET_UP: weakref.WeakSet[Engine] = weakref.WeakSet()


def _engine_options(app: Flask) -> None:
    uri: str = app.config["SQLALCHEMY_DATABASE_URI"]
    options: dict[str, Any] = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}))
    # A database error's message would carry the statement's parameters (ID numbers, phones) into the logs.
    options.setdefault("hide_parameters", True)
    if uri.startswith("sqlite"):
        connect_args = options.setdefault("connect_args", {})
        connect_args.setdefault("timeout", 30)  # how long a writer waits for its turn (sqlite_writers)
        connect_args.update({"check_same_thread": False, "factory": sqlite_writers.Connection})
    # PostgreSQL: no pre-ping (a round trip per request); a connection the server closed is found at checkout by
    # looking at its socket (_postgresql_setup).
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


def _sqlite_setup(engine: Engine) -> None:
    """WAL, foreign keys, a busy timeout, durable commits, and writers that take the write lock when they begin.

    ``synchronous=FULL`` (SPEC §8): in WAL mode, NORMAL syncs only at checkpoints, so a power cut could lose
    acknowledged commits (a payment answered 201, a receipt number handed out twice); FULL syncs the WAL on
    every commit, before the request is answered.

    SQLite in WAL mode refuses (SQLITE_BUSY_SNAPSHOT) a transaction that read, then tries to write after another
    writer committed; so a request that may write starts with BEGIN IMMEDIATE and waits its turn instead, on the
    database's writer lock (``sqlite_writers``), which wakes it within a millisecond when the turn comes.

    A request that only reads sends no BEGIN (nor, then, a COMMIT): each statement reads in its own implicit
    transaction, as on PostgreSQL (``_postgresql_setup``), and SQLAlchemy's commit finds nothing to end. A command
    that only reads (verify-audit) keeps one deferred transaction, so that all it reads is one snapshot.
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if has_request_context():
            if request_may_write():
                _begin_immediate(connection)
            return
        # a command writes, unless it said it only reads (verify-audit)
        if has_app_context() and g.get("read_only", False):
            connection.exec_driver_sql("BEGIN")
        else:
            _begin_immediate(connection)


def _begin_immediate(connection: Any) -> None:
    """BEGIN IMMEDIATE, once this connection holds the database's writer lock (``_engine_options`` makes every
    SQLite connection a ``sqlite_writers.Connection``)."""
    dbapi_connection: sqlite_writers.Connection = connection.connection.dbapi_connection
    try:
        dbapi_connection.take_writer_lock()
    except sqlite3.OperationalError as error:  # waited the busy timeout: as SQLite's own wait would end
        raise OperationalError("BEGIN IMMEDIATE", None, error) from error
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        dbapi_connection.release_writer_lock()  # only if the BEGIN failed: in a transaction it holds on


def _postgresql_setup(engine: Engine) -> None:
    """Read-only requests run on PostgreSQL without a transaction around their statements.

    psycopg sends ``BEGIN`` and ``COMMIT`` as round trips of their own: two of a payment detail's five. A request
    that only reads gains nothing from them, since under READ COMMITTED every statement takes its own snapshot
    anyway; so a connection handed to such a request is in autocommit mode, and one handed to a request that may
    write (``request_may_write``), to a command or to a test is not.

    A session can outlive its request (a test's app context spans several) and hand the autocommit connection of
    a page that only read to a writer; the writer's first statement then turns autocommit off, so that its
    statements are one transaction again. Between statements in autocommit mode the connection is idle, which is
    when psycopg lets the mode change.

    A pooled connection the server has closed (a restart, a terminated backend) is replaced at checkout: the server
    then sent its FATAL message and closed the socket, which is readable although the connection is idle. Looking
    costs a system call, where the pool's pre-ping cost a round trip on every request (what it would catch beyond
    this, a host gone without closing its sockets, fails one request and SQLAlchemy then renews the whole pool).
    """
    if engine.dialect.name != "postgresql":
        return

    @event.listens_for(engine, "connect")
    def _durable(dbapi_connection: Any, _record: Any) -> None:
        ensure_synchronous_commit(dbapi_connection)

    def _reads_only() -> bool:
        return has_request_context() and not request_may_write()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if _closed_by_server(dbapi_connection, engine.dialect.dbapi.Error):
            raise DisconnectionError("the server closed this pooled connection")  # the pool connects anew
        dbapi_connection.autocommit = _reads_only()

    @event.listens_for(engine, "before_cursor_execute")
    def _writer_in_a_transaction(connection: Any, *_args: Any) -> None:
        dbapi_connection = connection.connection.dbapi_connection
        if dbapi_connection.autocommit and not _reads_only():
            dbapi_connection.autocommit = False


def _closed_by_server(dbapi_connection: Any, driver_error: type[Exception]) -> bool:
    """Whether an idle pooled connection has something to read (nothing is due on an idle connection: it is the
    server's goodbye and end of file), or no socket any more."""
    try:
        poller = select.poll()
        poller.register(dbapi_connection.fileno(), select.POLLIN)
    except (OSError, ValueError, driver_error):
        return True
    return bool(poller.poll(0))


def ensure_synchronous_commit(dbapi_connection: Any) -> None:
    """A commit is answered only once it is on disk (SPEC §8): a server or role configured with
    ``synchronous_commit = off`` is overridden for this connection; ``on``, ``local`` and the replicated levels
    (``remote_write``, ``remote_apply``) are kept. One statement when a pooled connection is made, none per request.
    """
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        if cursor.fetchone()[0] == "off":
            cursor.execute("SET synchronous_commit TO on")
    dbapi_connection.commit()


CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


# (lower-case name, name, value): each is added unless the response set its own.
_SECURITY_HEADERS = tuple((name.lower(), name, value) for name, value in (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
))


def _security_headers(response: Response) -> Response:
    headers = response.headers
    # The names present, read once: four setdefault calls scanned the headers eight times (~90 µs in a loop, ~11 now).
    present = {name.lower() for name, _value in headers.items()}
    for lowered, name, value in _SECURITY_HEADERS:
        if lowered not in present:
            headers.add(name, value)
    # Pages and API answers carry personal data: no cache keeps them (static files keep their own policy).
    if request.endpoint != "static" and "cache-control" not in present:
        headers.add("Cache-Control", "no-store")
    return response

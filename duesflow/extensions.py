"""Extension objects, created once and initialised in the app factory."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import has_request_context, request
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names, so that Alembic migrations name them the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()

_READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def request_may_write() -> bool:
    """Whether the current request may write: not a GET, HEAD or OPTIONS, unless it says so (``request.writes``);
    such a request begins its SQLite transaction with ``BEGIN IMMEDIATE``."""
    return request.method not in _READ_ONLY_METHODS or getattr(request, "writes", False)


# The execution option of a connection whose SQLite transaction sends no BEGIN (``duesflow._sqlite_setup``).
NO_BEGIN = "duesflow_no_begin"


@contextmanager
def read_before_writing() -> Iterator[Connection]:
    """A connection for a read that comes before the request's own transaction.

    SQLite, in a request that may write: a connection of its own, whose statements each read in their own implicit
    transaction. Such a request holds the database's one write lock from its transaction's BEGIN IMMEDIATE to its
    commit, and what is read here (the bearer token) is then not read under it: the writers' turns are shorter.
    Otherwise the session's connection: a request that only reads holds no lock, PostgreSQL has no such lock (and
    under READ COMMITTED every statement reads its own snapshot anyway), and a transaction the session already
    has keeps its reads."""
    if (not (has_request_context() and request_may_write()) or db.session().in_transaction()
            or db.session.get_bind().dialect.name != "sqlite"):
        yield db.session.connection()
        return
    with db.engine.connect().execution_options(**{NO_BEGIN: True}) as connection:
        yield connection


def insert_on_conflict() -> Any:
    """The engine's own ``insert`` construct (PostgreSQL's or SQLite's), which has ``on_conflict_do_nothing`` and
    ``on_conflict_do_update``."""
    return postgresql.insert if db.session.get_bind().dialect.name == "postgresql" else sqlite.insert

"""Extension objects, created once and initialised in the app factory."""

from typing import Any

from flask import request
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.dialects import postgresql, sqlite
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


def insert_on_conflict() -> Any:
    """The engine's own ``insert`` construct (PostgreSQL's or SQLite's), which has ``on_conflict_do_nothing`` and
    ``on_conflict_do_update``."""
    return postgresql.insert if db.session.get_bind().dialect.name == "postgresql" else sqlite.insert

"""The floor of the HTTP benchmark: a bare Flask + Flask-SQLAlchemy app doing the least work a request needs.

- ``POST /insert``: parse the JSON body a payment is recorded with, insert one row, commit, answer 201 ``{"id"}``;
- ``GET /read/<id>``: read one row by primary key and answer it as small JSON (404 when there is none).

No authentication, no validation beyond what building the row needs, no events, no idempotency: whatever duesflow
does on top of this is what ``bench/http_bench.py`` measures as the ratio to this app, run under the same gunicorn
settings on the same database engine.

The database URL comes from ``DUESFLOW_DATABASE_URL``, as for duesflow (give the floor a database of its own: it
creates its table ``floor_rows`` itself). The floor is exactly as durable as duesflow (SPEC §8), so that the
comparison is fair: SQLite gets the same connection settings (WAL, ``synchronous=FULL``, a busy timeout), and
PostgreSQL connections the same check that ``synchronous_commit`` is not off (``duesflow.ensure_synchronous_commit``,
once per connection). Otherwise PostgreSQL gets SQLAlchemy's defaults (no pre-ping): the floor is the least work.

    python bench/floor_app.py --rows 10000      # create the table and fill it up to 10,000 rows, then exit
    gunicorn 'bench.floor_app:create_app()'     # serve it (http_bench.py does both)
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from flask import Flask, abort, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Date, DateTime, Numeric, String, Text, event, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from duesflow import ensure_synchronous_commit

DEFAULT_DATABASE_URL = "sqlite:////tmp/duesflow-bench-floor.sqlite3"


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class FloorRow(db.Model):
    """The same particulars a payment is recorded with, and nothing else."""

    __tablename__ = "floor_rows"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int]
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    collected_on: Mapped[date] = mapped_column(Date)
    method: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)


def database_url() -> str:
    """The URL the floor serves, from the same variable duesflow reads."""
    return os.environ.get("DUESFLOW_DATABASE_URL") or DEFAULT_DATABASE_URL


def _durable_settings(engine: Engine) -> None:
    """The connection settings duesflow gives SQLite (see ``duesflow._sqlite_setup``), minus its BEGIN hook, and
    PostgreSQL's durable commits."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        if engine.dialect.name == "postgresql":
            ensure_synchronous_commit(dbapi_connection)
            return
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()


def create_app() -> Flask:
    """The floor app; creates its table when it is missing."""
    app = Flask(__name__)
    url = database_url()
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    if url.startswith("sqlite"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30, "check_same_thread": False}}
    db.init_app(app)
    with app.app_context():
        _durable_settings(db.engine)
        try:
            db.create_all()
        except DBAPIError:
            # Workers starting together may race to create the table; the loser finds it made.
            db.session.rollback()
            db.create_all()

    @app.post("/insert")
    def insert_row() -> tuple[dict[str, int], int]:
        body = request.get_json()
        row = FloorRow(
            member_id=int(body["member_id"]),
            amount=Decimal(str(body["amount"])),
            collected_on=date.fromisoformat(body["collected_on"]),
            method=body["method"],
            note=body.get("note"),
            created_at=datetime.now(UTC).replace(tzinfo=None),
        )
        db.session.add(row)
        db.session.flush()
        row_id = row.id  # read before the commit, which would expire it and cost another SELECT
        db.session.commit()
        return {"id": row_id}, 201

    @app.get("/read/<int:row_id>")
    def read_row(row_id: int) -> dict[str, Any]:
        row = db.session.get(FloorRow, row_id)
        if row is None:
            abort(404)
        return {
            "id": row.id,
            "member_id": row.member_id,
            "amount": f"{row.amount:.2f}",
            "collected_on": row.collected_on.isoformat(),
            "method": row.method,
            "note": row.note,
            "created_at": row.created_at.isoformat(),
        }

    return app


def prepare(rows: int) -> int:
    """Create the table and fill it up to ``rows`` rows (for the reads); return the number of rows."""
    app = create_app()
    with app.app_context():
        have = db.session.scalar(select(func.count()).select_from(FloorRow)) or 0
        if have < rows:
            now = datetime.now(UTC).replace(tzinfo=None)
            values = [
                {"member_id": 1 + n % 97, "amount": Decimal("1000.00") + n % 500, "collected_on": now.date(),
                 "method": "cash", "note": None, "created_at": now}
                for n in range(have, rows)
            ]
            db.session.execute(insert(FloorRow), values)
            db.session.commit()
            have = rows
        db.engine.dispose()
    return have


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="fill the table up to this many rows")
    args = parser.parse_args()
    print(f"{database_url()}: floor_rows has {prepare(args.rows)} rows")


if __name__ == "__main__":
    main()

"""``flask --app duesflow backup FILE``: a consistent copy of a running SQLite database; PostgreSQL is refused with
a pointer to pg_dump. Runs on its own SQLite file in both suites."""

from __future__ import annotations

import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path

from conftest import app_config, make_member, make_org, make_user
from sqlalchemy import func, select

from duesflow import create_app
from duesflow.extensions import db
from duesflow.models import Payment
from duesflow.services.audit import verify_audit
from duesflow.services.payments import PaymentInput, act, record_payment
from duesflow.timeutil import beijing_today
from duesflow.workflow import Action, OrgKind

MIN_WRITES_DURING_BACKUP = 3


def _populate(url: str) -> dict[str, int]:
    app = create_app(app_config(url))
    with app.app_context():
        db.metadata.create_all(db.engine)
        central = make_org("中共中央组织部", OrgKind.CENTRAL, None)
        jilin = make_org("中共吉林省委组织部", OrgKind.CHANNEL, central)
        beimen = make_org("北门街道党工委", OrgKind.GRASSROOTS, jilin)
        ids = {"clerk": make_user("clerk", "clerk", beimen).id, "jilin": make_user("jilin", "reviewer", jilin).id,
               "member": make_member(beimen, "张建国").id}
        db.session.commit()
        db.engine.dispose()
    return ids


def _write_payments(url: str, ids: dict[str, int], stop: threading.Event, written: list[int]) -> None:
    """Record and move payments, one commit each, until ``stop``; the ids of committed payments go to ``written``."""
    from duesflow.models import User

    app = create_app(app_config(url))
    with app.app_context():
        while not stop.is_set():
            clerk, jilin = db.session.get(User, ids["clerk"]), db.session.get(User, ids["jilin"])
            payment = record_payment(clerk, PaymentInput(ids["member"], Decimal("1000.00"), beijing_today(),
                                                         "cash", True))
            act(payment, Action.SUBMIT, clerk)
            db.session.commit()
            written.append(payment.id)
            act(payment, Action.RETURN, jilin, reason="核对")
            db.session.commit()
        db.session.remove()
        db.engine.dispose()


def _copy_facts(copy: Path) -> tuple[list[tuple[str]], int, object]:
    with sqlite3.connect(copy) as connection:
        check = connection.execute("PRAGMA integrity_check").fetchall()
    app = create_app(app_config(f"sqlite:///{copy}"))
    with app.app_context():
        payments = db.session.scalar(select(func.count()).select_from(Payment))
        without_events = db.session.scalar(
            select(func.count()).select_from(Payment).where(~Payment.events.any()))
        problem = verify_audit()
        db.session.remove()
        db.engine.dispose()
    assert without_events == 0
    return check, payments, problem


def test_backup_while_payments_are_written_is_a_consistent_copy(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    ids = _populate(url)
    stop, written = threading.Event(), []
    writer = threading.Thread(target=_write_payments, args=(url, ids, stop, written), daemon=True)
    writer.start()
    try:
        while len(written) < MIN_WRITES_DURING_BACKUP:
            time.sleep(0.01)
        before = len(written)
        app = create_app(app_config(url))
        with app.app_context():
            result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "copy.sqlite3")])
            db.engine.dispose()
        after = len(written)
        time.sleep(0.1)
    finally:
        stop.set()
        writer.join(timeout=30)

    assert result.exit_code == 0, result.output
    assert "完整性检查通过" in result.output
    assert after > before, "no payment was written while the backup ran"  # it really ran under load
    check, payments, problem = _copy_facts(tmp_path / "copy.sqlite3")
    assert check == [("ok",)]
    assert problem is None, str(problem)
    assert before <= payments <= after + 1
    assert not (tmp_path / "copy.sqlite3.partial").exists()
    assert not (tmp_path / "copy.sqlite3-wal").exists()  # one self-contained file


def test_backup_refuses_to_overwrite_unless_told(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    _populate(url)
    target = tmp_path / "copy.sqlite3"
    target.write_text("an older backup")
    app = create_app(app_config(url))
    with app.app_context():
        refused = app.test_cli_runner().invoke(args=["backup", str(target)])
        assert refused.exit_code != 0 and "--overwrite" in refused.output
        assert target.read_text() == "an older backup"
        replaced = app.test_cli_runner().invoke(args=["backup", "--overwrite", str(target)])
        db.engine.dispose()
    assert replaced.exit_code == 0, replaced.output
    with sqlite3.connect(target) as connection:
        assert connection.execute("SELECT count(*) FROM orgs").fetchone() == (3,)
        assert connection.execute("SELECT count(*) FROM events").fetchone() == (0,)


def test_backup_of_postgresql_is_refused_with_a_pointer_to_pg_dump(tmp_path: Path):
    app = create_app(app_config("postgresql+psycopg://nobody@127.0.0.1:1/nothing"))
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "copy.dump")])

    assert result.exit_code != 0
    assert "pg_dump" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "copy.dump").exists()


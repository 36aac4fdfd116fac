"""Tamper evidence beyond tests/test_audit_cli.py (issue 6, point 6): an edit of *any* column of an event row, and
deletions at the start of the chain or of a payment's whole trail, are reported by ``verify-audit`` naming the
first bad record. (test_audit_cli.py covers note and to_org edits, deleting the middle or newest event,
reordering, and a payment's state, holder and amount; test_receipt_lifecycle.py covers receipts.)"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from test_audit_cli import trail, verify

from duesflow.extensions import db
from duesflow.models import Event, User

__all__ = ["trail"]

# column -> how to change it in event e3 (p1's forward by 铁东), given the trail and the current row
EDITS: dict[str, Any] = {
    "chain": lambda t, row: "org-999999",
    "position": lambda t, row: row.position + 10,
    "payment_id": lambda t, row: t["p2"],
    "action": lambda t, row: "confirm",
    "from_state": lambda t, row: "at_central",
    "to_state": lambda t, row: "receipted",
    "from_org_id": lambda t, row: t["central"],
    "to_org_id": lambda t, row: t["central"],
    "actor_id": lambda t, row: db.session.scalar(select(User.id).where(User.username == "central")),
    "note": lambda t, row: "事后补写",
    "details": lambda t, row: {"amount": "9999.00"},
    "at": lambda t, row: row.at - timedelta(seconds=1),
    "prev_hash": lambda t, row: "0" * 64,
    "hash": lambda t, row: "f" * 64,
}


def test_every_column_of_an_event_is_covered():
    assert set(EDITS) == {column.name for column in Event.__table__.columns} - {"id"}


@pytest.mark.parametrize("column", sorted(EDITS))
def test_editing_any_column_of_an_event_names_that_event(runner, trail, column):
    row = db.session.get(Event, trail["e3"])
    value = EDITS[column](trail, row)
    db.session.execute(update(Event).where(Event.id == trail["e3"]).values({column: value}))
    db.session.commit()

    result = verify(runner)

    assert result.exit_code != 0
    # An event moved out of its place in its chain leaves a gap there: the event after the gap is named.
    named = trail["e4"] if column in ("chain", "position") else trail["e3"]
    assert f"event {named}:" in result.output, result.output


def test_deleting_the_first_event_names_the_one_after_it(runner, trail):
    db.session.execute(delete(Event).where(Event.id == trail["e1"]))
    db.session.commit()

    result = verify(runner)

    assert result.exit_code != 0 and f"event {trail['e2']}:" in result.output, result.output


def test_deleting_a_payments_whole_trail_is_reported(runner, trail):
    db.session.execute(delete(Event).where(Event.payment_id == trail["p2"]))
    db.session.commit()

    result = verify(runner)

    assert result.exit_code != 0 and f"audit chain {trail['chain']}:" in result.output, result.output


def test_an_untouched_trail_still_verifies_after_the_edits_are_undone(runner, trail):
    row = db.session.get(Event, trail["e3"])
    original = row.note
    db.session.execute(update(Event).where(Event.id == trail["e3"]).values(note="改"))
    db.session.commit()
    assert verify(runner).exit_code != 0
    db.session.execute(update(Event).where(Event.id == trail["e3"]).values(note=original))
    db.session.commit()

    assert verify(runner).exit_code == 0

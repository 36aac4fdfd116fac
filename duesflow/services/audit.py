"""The event trail: every payment change writes an event linked into one hash chain.

Each event stores sha256(previous hash + its canonical content). Editing, deleting or reordering an event
breaks the chain; a payment whose state, holder or amount disagrees with the replay of its events is caught
by ``verify_audit``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import noload

from ..extensions import db
from ..models import AuditHead, Event, Payment, User, utcnow
from ..money import format_amount

GENESIS_HASH = "0" * 64


def _content(event: Event) -> str:
    return json.dumps(
        {
            "payment_id": event.payment_id,
            "action": event.action,
            "from_state": event.from_state,
            "to_state": event.to_state,
            "from_org_id": event.from_org_id,
            "to_org_id": event.to_org_id,
            "actor_id": event.actor_id,
            "note": event.note,
            "details": event.details,
            "at": event.at.isoformat(),
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )


def event_hash(prev_hash: str, event: Event) -> str:
    """The chain hash of ``event`` given the hash of the event before it."""
    return hashlib.sha256((prev_hash + _content(event)).encode()).hexdigest()


def _locked_head() -> AuditHead:
    head = db.session.scalars(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one_or_none()
    if head is None:
        # Created by the first migration; this covers databases made with create_all (tests, bench).
        head = AuditHead(id=1, last_hash=GENESIS_HASH)
        db.session.add(head)
        db.session.flush()
    return head


def append_event(
    payment: Payment,
    *,
    action: str,
    actor: User,
    from_state: str | None,
    from_org_id: int | None,
    note: str | None = None,
    details: dict[str, Any] | None = None,
) -> Event:
    """Write the event for a change already made to ``payment``, in the same transaction."""
    db.session.flush()  # the payment's own UPDATE (and its version check) goes first, before the chain lock
    head = _locked_head()
    event = Event(
        payment_id=payment.id,
        action=action,
        from_state=from_state,
        to_state=payment.state,
        from_org_id=from_org_id,
        to_org_id=payment.holder_org_id,
        actor_id=actor.id,
        note=note,
        details=details or {},
        at=utcnow(),
        prev_hash=head.last_hash,
    )
    event.hash = event_hash(head.last_hash, event)
    head.last_hash = event.hash
    db.session.add(event)
    db.session.flush()
    return event


@dataclass(frozen=True)
class AuditProblem:
    """The first record that does not hold, named for an operator."""

    record: str
    reason: str

    def __str__(self) -> str:
        return f"{self.record}: {self.reason}"


@dataclass
class _Replay:
    state: str | None = None
    holder: int | None = None
    amount: str | None = None
    last_event_id: int = 0


def _events_in_order() -> Iterator[Event]:
    query = select(Event).options(noload("*")).order_by(Event.id).execution_options(yield_per=2000)
    yield from db.session.scalars(query)


def verify_audit() -> AuditProblem | None:
    """Check the hash chain and that every payment's events replay to its current state, holder and amount."""
    prev = GENESIS_HASH
    replays: dict[int, _Replay] = {}
    for event in _events_in_order():
        if event.prev_hash != prev:
            return AuditProblem(f"event {event.id}", "the chain is broken before this event (deleted or reordered)")
        if event_hash(prev, event) != event.hash:
            return AuditProblem(f"event {event.id}", "its content does not match its hash (edited)")
        prev = event.hash
        replay = replays.setdefault(event.payment_id, _Replay())
        if replay.state != event.from_state:
            return AuditProblem(
                f"event {event.id}", f"starts from {event.from_state!r} but payment was {replay.state!r}"
            )
        replay.state, replay.holder, replay.last_event_id = event.to_state, event.to_org_id, event.id
        if "amount" in event.details:
            replay.amount = str(event.details["amount"])
        elif "new" in event.details and "amount" in event.details["new"]:
            replay.amount = str(event.details["new"]["amount"])
    head = db.session.get(AuditHead, 1)
    if head is not None and head.last_hash != prev:
        return AuditProblem("audit head", "the newest events of the chain are missing")
    rows = db.session.execute(
        select(Payment.id, Payment.state, Payment.holder_org_id, Payment.amount).order_by(Payment.id)
    )
    for payment_id, state, holder, amount in rows:
        replay = replays.get(payment_id)
        if replay is None:
            return AuditProblem(f"payment {payment_id}", "has no events")
        if (replay.state, replay.holder) != (state, holder):
            return AuditProblem(
                f"payment {payment_id}",
                f"is {state} at org {holder} but its events end in {replay.state} at org {replay.holder}",
            )
        if replay.amount != format_amount(Decimal(amount)):
            return AuditProblem(f"payment {payment_id}", f"amount {amount} differs from its events ({replay.amount})")
    return None

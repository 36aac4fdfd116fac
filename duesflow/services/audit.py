"""The event trail: every payment change writes an event linked into one hash chain.

Each event stores sha256(previous hash + its canonical content). Editing, deleting or reordering an event
breaks the chain; a payment whose state, holder or amount disagrees with the replay of its events, or a receipt
whose version or voided mark does, is caught by ``verify_audit``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import raiseload

from ..extensions import db, insert_on_conflict
from ..models import AuditHead, Event, Payment, Receipt, ReceiptDelivery, User, utcnow
from ..money import format_amount

GENESIS_HASH = "0" * 64


# The columns an event's hash covers, besides the hash of the event before it.
HASHED_COLUMNS = ("payment_id", "action", "from_state", "to_state", "from_org_id", "to_org_id", "actor_id", "note",
                  "details", "at")


def _content(values: dict[str, Any]) -> str:
    content = {name: values[name] for name in HASHED_COLUMNS}
    content["at"] = values["at"].isoformat()
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _hash(prev_hash: str, values: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + _content(values)).encode()).hexdigest()


def event_hash(prev_hash: str, event: Event) -> str:
    """The chain hash of ``event`` given the hash of the event before it."""
    return _hash(prev_hash, {name: getattr(event, name) for name in HASHED_COLUMNS})


def _locked_head() -> AuditHead:
    locked = select(AuditHead).where(AuditHead.id == 1).with_for_update()
    head = db.session.scalars(locked).one_or_none()
    if head is None:
        # Created by the first migration; this covers databases made with create_all (tests, bench), where the
        # first writers may race: a loser's insert does nothing and it then waits for the winner's row.
        db.session.execute(
            insert_on_conflict()(AuditHead).values(id=1, last_hash=GENESIS_HASH)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        head = db.session.scalars(locked).one()
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


GLOBAL_CHAIN = "global"


def chain_heads() -> dict[str, tuple[int, str]]:
    """Chain key → (number of events in it, hash of its newest event), for every chain that has events. Today the
    trail is one chain, ``"global"``; a signed checkpoint (``audit_checkpoints``) records exactly this."""
    newest = select(Event.hash).order_by(Event.id.desc()).limit(1).scalar_subquery()
    length, head = db.session.execute(select(func.count(Event.id), newest)).one()  # one statement, one snapshot
    return {GLOBAL_CHAIN: (length, head)} if length else {}


def chain_hash_at(chain: str, length: int) -> str | None:
    """The hash of the ``length``-th event (from 1) of ``chain``; None when the chain is shorter (or unknown)."""
    if chain != GLOBAL_CHAIN or length < 1:
        return None
    return db.session.scalar(select(Event.hash).order_by(Event.id).offset(length - 1).limit(1))


@dataclass(frozen=True)
class EventDraft:
    """An event to write for a change already made to ``payment`` (which must carry its new state and holder)."""

    payment: Payment
    action: str
    actor: User
    from_state: str | None
    from_org_id: int | None
    note: str | None = None
    details: dict[str, Any] | None = None


def append_events(drafts: Sequence[EventDraft]) -> None:
    """Write many events in the caller's transaction: the chain's head is locked once, the hashes are computed
    here, and the rows go in as one executemany INSERT (the driver batches it), whatever their number."""
    if not drafts:
        return
    db.session.flush()  # the payments' own changes go first, before the chain lock, as in append_event
    head = _locked_head()
    now = utcnow()
    prev = head.last_hash
    rows = []
    for draft in drafts:
        payment = draft.payment
        row: dict[str, Any] = {
            "payment_id": payment.id, "action": draft.action, "from_state": draft.from_state,
            "to_state": payment.state, "from_org_id": draft.from_org_id, "to_org_id": payment.holder_org_id,
            "actor_id": draft.actor.id, "note": draft.note, "details": draft.details or {}, "at": now,
            "prev_hash": prev,
        }
        row["hash"] = prev = _hash(prev, row)
        rows.append(row)
    db.session.execute(insert(Event.__table__), rows)  # Core: the ORM's bulk path costs more per row here
    head.last_hash = prev
    db.session.flush()


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
    # receipt number -> (version, voided), as confirm, reissue and void events leave it
    receipts: dict[str, tuple[int, bool]] = field(default_factory=dict)
    # (receipt number, version) signed for, as deliver events record it (SPEC §9)
    deliveries: set[tuple[str, int]] = field(default_factory=set)

    def apply_receipt_change(self, event: Event) -> None:
        number = event.details.get("receipt_number")
        if not isinstance(number, str):
            return
        version, _voided = self.receipts.get(number, (0, False))
        if event.action == "deliver":
            self.deliveries.add((number, version))
        elif event.action == "confirm":
            self.receipts[number] = (1, False)
        elif event.action == "reissue":
            self.receipts[number] = (version + 1, False)
        elif event.action == "void":
            self.receipts[number] = (version, True)


def _events_in_order() -> Iterator[Event]:
    query = select(Event).options(raiseload("*")).order_by(Event.id).execution_options(yield_per=2000)
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
        replay.apply_receipt_change(event)
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
    return _check_receipts(replays) or _check_deliveries(replays)


def _check_receipts(replays: dict[int, _Replay]) -> AuditProblem | None:
    """Every receipt has the version and voided mark its payment's events give it, and no event's receipt is
    missing: a voided receipt made valid again, or a receipt added without a confirmation, is caught here."""
    found: set[str] = set()
    rows = db.session.execute(
        select(Receipt.payment_id, Receipt.number, Receipt.version, Receipt.voided).order_by(Receipt.id)
    )
    for payment_id, number, version, voided in rows:
        expected = replays[payment_id].receipts.get(number) if payment_id in replays else None
        if expected is None:
            return AuditProblem(f"receipt {number}", "no confirmation event issued it")
        if expected != (version, bool(voided)):
            return AuditProblem(
                f"receipt {number}",
                f"is version {version}{' (voided)' if voided else ''} but its events make it version "
                f"{expected[0]}{' (voided)' if expected[1] else ''}",
            )
        found.add(number)
    for replay in replays.values():
        for number in sorted(replay.receipts.keys() - found):
            return AuditProblem(f"receipt {number}", "its events issued it but it is missing")
    return None


def _check_deliveries(replays: dict[int, _Replay]) -> AuditProblem | None:
    """Every recorded delivery of a receipt version has its ``deliver`` event and every such event its record: a
    signature added or removed behind the service's back is caught here."""
    recorded = {
        (number, version): payment_id
        for payment_id, number, version in db.session.execute(
            select(Receipt.payment_id, Receipt.number, ReceiptDelivery.version)
            .join(ReceiptDelivery, ReceiptDelivery.receipt_id == Receipt.id)
            .order_by(ReceiptDelivery.id)
        )
    }
    for (number, version), payment_id in recorded.items():
        if payment_id not in replays or (number, version) not in replays[payment_id].deliveries:
            return AuditProblem(f"receipt {number}", f"version {version} is recorded as delivered without an event")
    for replay in replays.values():
        # difference(), not `set - dict.keys()`: that builds a set of every recorded delivery, once per payment
        for number, version in sorted(replay.deliveries.difference(recorded)):
            return AuditProblem(f"receipt {number}", f"its events deliver version {version}, which has no record")
    return None

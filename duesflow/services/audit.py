"""The event trail: every payment change writes an event linked into its grassroots org's hash chain (SPEC §8).

There is one chain per grassroots org (``org-<id>``: the events of the payments that committee collected) and one
for events that concern no payment (``general``). Each event stores its chain, its position there (from 1), the
hash of the event before it (``prev_hash``, the genesis hash for the first) and sha256(previous hash + its
canonical content, which names the chain). Editing, deleting, moving or reordering an event breaks its chain; the
head row of each chain (``AuditHead``: its length and newest hash) catches the newest events going missing. A
payment whose state, holder or amount disagrees with the replay of its events, or a receipt whose version or voided
mark does, is caught by ``verify_audit``.

Writers lock only the head of the chain they extend, so committees never wait for each other: the lock is taken
by an upsert that also reserves the positions and reads the previous hash in one statement, the events go in with
one INSERT (the driver's executemany for many), and the head's new hash with one UPDATE.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import bindparam, insert, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row

from ..extensions import db
from ..models import AuditHead, Event, Payment, Receipt, ReceiptDelivery, utcnow
from ..money import format_amount

GENESIS_HASH = "0" * 64
GENERAL_CHAIN = "general"

_EVENTS = Event.__table__
_HEADS = AuditHead.__table__


def chain_key(grassroots_org_id: int | None) -> str:
    """The chain a payment collected by ``grassroots_org_id`` writes to; ``None`` (no payment): the general one."""
    return GENERAL_CHAIN if grassroots_org_id is None else f"org-{grassroots_org_id}"


def _content(event: Any) -> str:
    return json.dumps(
        {
            "chain": event.chain,
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


def event_hash(prev_hash: str, event: Any) -> str:
    """The chain hash of ``event`` (an ``Event``, a row of its columns or anything with those attributes) given
    the hash of the event before it in its chain."""
    return hashlib.sha256((prev_hash + _content(event)).encode()).hexdigest()


class _PaymentLike(Protocol):
    id: int
    state: str
    holder_org_id: int
    grassroots_org_id: int


class _ActorLike(Protocol):
    id: int


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An event to write for a change already made to ``payment`` (flushed, or written with Core): any object with
    ``id``, ``state``, ``holder_org_id`` and ``grassroots_org_id`` will do, and any ``actor`` with an ``id``."""

    payment: _PaymentLike
    action: str
    actor: _ActorLike
    from_state: str | None
    from_org_id: int | None
    note: str | None = None
    details: dict[str, Any] | None = None


class _Row:
    """The column values of one event about to be inserted; ``event_hash`` reads them as attributes."""

    __slots__ = ("chain", "position", "payment_id", "action", "from_state", "to_state", "from_org_id", "to_org_id",
                 "actor_id", "note", "details", "at", "prev_hash", "hash")

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@functools.cache
def _reserve_statement(dialect: str) -> Any:
    upsert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_HEADS).values(
        chain=bindparam("chain"), length=bindparam("count"), last_hash=GENESIS_HASH)
    return upsert.on_conflict_do_update(
        index_elements=["chain"], set_={"length": _HEADS.c.length + upsert.excluded.length}
    ).returning(_HEADS.c.length, _HEADS.c.last_hash)


def _reserve(chain: str, count: int) -> tuple[int, str]:
    """Lock ``chain``'s head (creating it on first use) and reserve ``count`` positions in it, in one statement:
    the position of the first reserved event and the hash before it. The lock is held until the transaction ends,
    so the chain's next writer waits for this one and then reads the hash it leaves."""
    statement = _reserve_statement(db.session.get_bind().dialect.name)
    length, last_hash = db.session.execute(statement, {"chain": chain, "count": count}).one()
    return length - count + 1, last_hash


@dataclass(frozen=True, slots=True)
class Reservation:
    """A position reserved (and the chain's head locked) ahead of ``append_event``, with the hash before it."""

    chain: str
    position: int
    prev_hash: str


@functools.cache
def _reserving(statement: Any) -> Any:
    """PostgreSQL: ``statement`` (an INSERT ... RETURNING) and the chain's lock-and-reserve as CTEs of one SELECT,
    which gives the reservation with what the INSERT returned (NULLs when it wrote nothing)."""
    written = statement.cte("written")
    reserved = _reserve_statement("postgresql").cte("reserved")
    return select(reserved.c.length, reserved.c.last_hash, *written.c).select_from(
        reserved.outerjoin(written, true()))


def insert_reserving(statement: Any, params: dict[str, Any],
                     grassroots_org_id: int) -> tuple[Sequence[Any] | None, Reservation | None]:
    """Run ``statement`` (an INSERT ... RETURNING of one row at most) and, on PostgreSQL in the same round trip,
    lock the chain of ``grassroots_org_id`` and reserve one position in it for ``append_event(reserved=...)``
    (the recording's hot path: one statement fewer). The row returned (None: nothing written; the request must
    then fail, which rolls the reservation back) and the reservation (None elsewhere: ``append_event`` locks the
    chain itself). ``params`` must not use the names ``chain`` and ``count``."""
    if db.session.get_bind().dialect.name != "postgresql":
        return db.session.execute(statement, params).first(), None
    chain = chain_key(grassroots_org_id)
    row = db.session.execute(_reserving(statement), {**params, "chain": chain, "count": 1}).one()
    length, last_hash, written = row[0], row[1], tuple(row[2:])
    return (written if written[0] is not None else None), Reservation(chain, length, last_hash)


_MOVE_HEADS = update(_HEADS).where(_HEADS.c.chain == bindparam("head_chain")).values(last_hash=bindparam("head_hash"))
_INSERT_EVENTS = insert(_EVENTS)


@dataclass(frozen=True, slots=True)
class Write:
    """A statement of the current transaction that may travel with the events' (``append_events(also=...)``):
    Core DML whose bind parameters are named apart from the event's columns (``event_<column>``) and the head's
    (``head_chain``, ``head_hash``), with its parameters."""

    statement: Any
    params: dict[str, Any]


@functools.cache
def _one_event_statement(also: tuple[Any, ...]) -> Any:
    """PostgreSQL: the head's UPDATE carrying the event's INSERT and the ``also`` statements as CTEs, one round
    trip for what are otherwise two statements and more. It is ``_MOVE_HEADS`` itself, whatever it sets."""
    event = insert(_EVENTS).values({column.name: bindparam(f"event_{column.name}", type_=column.type)
                                    for column in _EVENTS.c if column.name in _Row.__slots__})
    statement = _MOVE_HEADS.add_cte(event.cte("appended_event"))
    for number, extra in enumerate(also):
        statement = statement.add_cte(extra.cte(f"also_{number}"))
    return statement


def _write(rows: list[_Row], heads: list[dict[str, str]], also: Sequence[Write]) -> None:
    """The events' INSERT, the heads' UPDATE and ``also``: one statement on PostgreSQL for a single event (the
    recording's hot path), else each on its own (the driver's executemany for many rows)."""
    if len(rows) == 1 and db.session.get_bind().dialect.name == "postgresql":
        params = {f"event_{name}": value for name, value in rows[0].values().items()}
        for extra in also:
            params.update(extra.params)
        db.session.execute(_one_event_statement(tuple(extra.statement for extra in also)), {**params, **heads[0]})
        return
    db.session.execute(_INSERT_EVENTS, [row.values() for row in rows])
    db.session.execute(_MOVE_HEADS, heads)
    for extra in also:
        db.session.execute(extra.statement, extra.params)


def append_events(drafts: Sequence[EventDraft], *, also: Sequence[Write] = (),
                  reserved: Reservation | None = None) -> None:
    """Write many events in one go, in the current transaction (batch entry, a transfer's confirmation), and the
    ``also`` statements with them.

    Each chain touched is locked once, in sorted order (two batches touching the same chains cannot deadlock);
    the hashes are computed here; all events go in with one INSERT statement run by the driver's executemany,
    and the heads move on with one UPDATE statement (on PostgreSQL a single event goes in with the UPDATE, in one
    statement). Events of one chain follow the order of ``drafts``. A chain ``reserved`` already (locked, with
    one position: ``insert_reserving``) is not locked again."""
    if not drafts:
        for extra in also:
            db.session.execute(extra.statement, extra.params)
        return
    db.session.flush()  # the payments' own changes (and their version checks) go first, before the chain locks
    by_chain: dict[str, list[EventDraft]] = {}
    for draft in drafts:
        by_chain.setdefault(chain_key(draft.payment.grassroots_org_id), []).append(draft)
    at = utcnow()
    rows: list[_Row] = []
    heads: list[dict[str, str]] = []
    for chain in sorted(by_chain):
        if reserved is not None and reserved.chain == chain:
            assert len(by_chain[chain]) == 1, "a reservation holds one position"
            position, prev = reserved.position, reserved.prev_hash
        else:
            position, prev = _reserve(chain, len(by_chain[chain]))
        for draft in by_chain[chain]:
            row = _Row()
            row.chain, row.position, row.payment_id, row.action = chain, position, draft.payment.id, draft.action
            row.from_state, row.to_state = draft.from_state, draft.payment.state
            row.from_org_id, row.to_org_id = draft.from_org_id, draft.payment.holder_org_id
            row.actor_id, row.note, row.details, row.at = draft.actor.id, draft.note, draft.details or {}, at
            row.prev_hash, row.hash = prev, event_hash(prev, row)
            prev, position = row.hash, position + 1
            rows.append(row)
        heads.append({"head_chain": chain, "head_hash": prev})
    _write(rows, heads, also)


def append_event(
    payment: _PaymentLike,
    *,
    action: str,
    actor: _ActorLike,
    from_state: str | None,
    from_org_id: int | None,
    note: str | None = None,
    details: dict[str, Any] | None = None,
    also: Sequence[Write] = (),
    reserved: Reservation | None = None,
) -> None:
    """Write the event for a change already made to ``payment``, in the same transaction: three statements (lock
    and reserve, insert, move the head), two on PostgreSQL, where ``also`` travels with the second; one when the
    chain was ``reserved`` with the change (``insert_reserving``)."""
    append_events([EventDraft(payment, action, actor, from_state, from_org_id, note, details)], also=also,
                  reserved=reserved)


def chain_heads() -> dict[str, tuple[int, str]]:
    """Every chain's key with the number of events in it and its newest event's hash (signed checkpoints)."""
    return {chain: (length, last_hash) for chain, length, last_hash in db.session.execute(
        select(_HEADS.c.chain, _HEADS.c.length, _HEADS.c.last_hash))}


def chain_hash_at(chain: str, length: int) -> str | None:
    """The hash of the ``length``-th event of ``chain`` (the genesis hash for 0), None if the chain is shorter."""
    if length == 0:
        return GENESIS_HASH
    if length < 0:
        return None
    return db.session.scalar(select(_EVENTS.c.hash).where(_EVENTS.c.chain == chain, _EVENTS.c.position == length))


@dataclass(frozen=True)
class AuditProblem:
    """The first record that does not hold, named for an operator."""

    record: str
    reason: str

    def __str__(self) -> str:
        return f"{self.record}: {self.reason}"


@dataclass
class _Replay:
    chain: str
    state: str | None = None
    holder: int | None = None
    amount: str | None = None
    # receipt number -> (version, voided), as confirm, reissue and void events leave it
    receipts: dict[str, tuple[int, bool]] = field(default_factory=dict)
    # (receipt number, version) signed for, as deliver events record it (SPEC §9)
    deliveries: set[tuple[str, int]] = field(default_factory=set)

    def apply_receipt_change(self, event: Row[Any]) -> None:
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


_EVENT_COLUMNS = ("id", "chain", "position", "payment_id", "action", "from_state", "to_state", "from_org_id",
                  "to_org_id", "actor_id", "note", "details", "at", "prev_hash", "hash")


def _events_in_chain_order() -> Iterator[Row[Any]]:
    """Every event, chain by chain, each chain oldest first: plain rows, streamed (millions of them)."""
    query = select(*(_EVENTS.c[name] for name in _EVENT_COLUMNS)).order_by(_EVENTS.c.chain, _EVENTS.c.position)
    yield from db.session.execute(query.execution_options(yield_per=5000))


@dataclass
class _ChainWalk:
    """Where the walk through one chain is: its key, the events seen, the newest hash and event id."""

    chain: str
    length: int = 0
    last_hash: str = GENESIS_HASH
    last_id: int = 0

    def step(self, event: Row[Any]) -> AuditProblem | None:
        if event.position != self.length + 1 or event.prev_hash != self.last_hash or event.id <= self.last_id:
            return AuditProblem(f"event {event.id}", f"chain {self.chain} is broken before this event (deleted or "
                                                     "reordered)")
        if event_hash(self.last_hash, event) != event.hash:
            return AuditProblem(f"event {event.id}", "its content does not match its hash (edited)")
        self.length, self.last_hash, self.last_id = event.position, event.hash, event.id
        return None

    def end(self, head: tuple[int, str] | None) -> AuditProblem | None:
        if head != (self.length, self.last_hash):
            return AuditProblem(f"audit chain {self.chain}", "its head does not match its events (the newest "
                                                             "events are missing, or the head was changed)")
        return None


def _replay_event(replays: dict[int, _Replay], event: Row[Any]) -> AuditProblem | None:
    replay = replays.get(event.payment_id)
    if replay is None:
        replay = replays[event.payment_id] = _Replay(chain=event.chain)
    if replay.chain != event.chain:
        return AuditProblem(f"event {event.id}", f"is in chain {event.chain}, its payment's events in {replay.chain}")
    if replay.state != event.from_state:
        return AuditProblem(f"event {event.id}", f"starts from {event.from_state!r} but payment was {replay.state!r}")
    replay.state, replay.holder = event.to_state, event.to_org_id
    details = event.details
    if "amount" in details:
        replay.amount = str(details["amount"])
    elif "new" in details and "amount" in details["new"]:
        replay.amount = str(details["new"]["amount"])
    replay.apply_receipt_change(event)
    return None


def verify_audit() -> AuditProblem | None:
    """Check every chain (positions, links, hashes, head) and that every payment's events replay to its current
    state, holder and amount; one pass over the events in chain order, linear in their number."""
    heads = chain_heads()
    replays: dict[int, _Replay] = {}
    walk: _ChainWalk | None = None
    for event in _events_in_chain_order():
        if walk is None or walk.chain != event.chain:
            problem = walk.end(heads.pop(walk.chain, None)) if walk is not None else None
            if problem is not None:
                return problem
            walk = _ChainWalk(event.chain)
        problem = walk.step(event) or _replay_event(replays, event)
        if problem is not None:
            return problem
    problem = walk.end(heads.pop(walk.chain, None)) if walk is not None else None
    for chain, head in sorted(heads.items()):  # heads of chains without a single event left
        problem = problem or _ChainWalk(chain).end(head)
    return problem or _check_payments(replays) or _check_receipts(replays) or _check_deliveries(replays)


def _check_payments(replays: dict[int, _Replay]) -> AuditProblem | None:
    """Every payment has events, in the chain of the org that collected it, ending where the payment is."""
    rows = db.session.execute(
        select(Payment.id, Payment.grassroots_org_id, Payment.state, Payment.holder_org_id, Payment.amount)
        .order_by(Payment.id)
    )
    for payment_id, grassroots_org_id, state, holder, amount in rows:
        replay = replays.get(payment_id)
        if replay is None:
            return AuditProblem(f"payment {payment_id}", "has no events")
        if replay.chain != chain_key(grassroots_org_id):
            return AuditProblem(f"payment {payment_id}", f"was collected by org {grassroots_org_id} but its events "
                                                         f"are in chain {replay.chain}")
        if (replay.state, replay.holder) != (state, holder):
            return AuditProblem(
                f"payment {payment_id}",
                f"is {state} at org {holder} but its events end in {replay.state} at org {replay.holder}",
            )
        if replay.amount != format_amount(Decimal(amount)):
            return AuditProblem(f"payment {payment_id}", f"amount {amount} differs from its events ({replay.amount})")
    return None


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

"""The event trail: every payment change writes an event linked into its grassroots org's hash chain (SPEC §8).

There is one chain per grassroots org (``org-<id>``: the events of the payments that committee collected) and one
for events that concern no payment (``general``). Each event stores its chain, its position there (from 1), the
hash of the event before it (``prev_hash``, the genesis hash for the first) and sha256(previous hash + its
canonical content, which names the chain). Editing, deleting, moving or reordering an event breaks its chain; the
head row of each chain (``AuditHead``: its length and newest hash) catches the newest events going missing. A
payment whose state, holder or amount disagrees with the replay of its events, or a receipt whose version or voided
mark does, is caught by ``verify_audit``.

The head also counts its chain's payments in each state (what /metrics reads, SPEC §8): every event moves its
payment from ``from_state`` (none for ``record``) to ``to_state``, and the UPDATE that moves the head adds those
moves to its counts, so a state change and its count are one write under the lock the event takes anyway.
``verify_audit`` compares the counts with the payments.

Writers lock only the head of the chain they extend, so committees never wait for each other: the lock is taken
by an upsert that also reserves the positions and reads the previous hash in one statement, the events go in with
one INSERT (the driver's executemany for many), and the head's new hash with one UPDATE.
"""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any, NamedTuple, Protocol

from flask import current_app, g
from sqlalchemy import Text, bindparam, cast, func, insert, or_, select, true, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite

from ..extensions import db
from ..models import AuditHead, Event, Org, Payment, Receipt, ReceiptDelivery, payment_count_column, utcnow
from ..money import format_amount
from ..workflow import State

GENESIS_HASH = "0" * 64
GENERAL_CHAIN = "general"

_EVENTS = Event.__table__
_HEADS = AuditHead.__table__
# Each state's column of payment counts in the chain heads.
PAYMENT_COUNTS = {state.value: _HEADS.c[payment_count_column(state.value)] for state in State}


def chain_key(grassroots_org_id: int | None) -> str:
    """The chain a payment collected by ``grassroots_org_id`` writes to; ``None`` (no payment): the general one."""
    return GENERAL_CHAIN if grassroots_org_id is None else f"org-{grassroots_org_id}"


def _canonical_encoder() -> Callable[[Any], str]:
    """``json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))``, the same text, with the
    encoder made once instead of on every call (json.dumps builds a new one for any non-default argument)."""
    encoder = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    if c_make_encoder is None:  # pragma: no cover - CPython always has the C encoder
        return encoder.encode
    # JSONEncoder.iterencode's own one-shot call of the C encoder; no markers: an event's content has no cycles
    iterencode = c_make_encoder(None, encoder.default, encode_basestring, None, ":", ",", True, False, True)
    return lambda value: "".join(iterencode(value, 0))


_canonical = _canonical_encoder()
_decoder = json.JSONDecoder()


def _details(text: str) -> Any:
    """``json.loads(text)``, without its two whitespace scans when the text starts and ends with the value."""
    try:
        value, end = _decoder.raw_decode(text)
    except json.JSONDecodeError:
        return _decoder.decode(text)  # leading whitespace, or not JSON: as json.loads does (and says)
    return value if end == len(text) else _decoder.decode(text)


def _null_or(value: Any) -> Any:
    return "null" if value is None else value


def _content_of(chain: str, payment_id: int, action: str, from_state: str | None, to_state: str,
                from_org_id: int | None, to_org_id: int, actor_id: int, note: str | None, details: Any,
                at: str) -> str:
    """An event's canonical content: the text of ``json.dumps`` of its columns (``at`` in ISO form) with
    ``sort_keys=True, ensure_ascii=False, separators=(",", ":")``, written out in that key order (two and a half
    times faster than sorting a dict for each of millions of events; tests/test_audit_parallel.py holds it equal).
    The ids are ints and the texts str, as every engine gives them back from the typed columns."""
    e = encode_basestring
    return (f'{{"action":{e(action)},"actor_id":{actor_id},"at":{e(at)},"chain":{e(chain)},'
            f'"details":{_canonical(details)},"from_org_id":{_null_or(from_org_id)},'
            f'"from_state":{"null" if from_state is None else e(from_state)},'
            f'"note":{"null" if note is None else e(note)},"payment_id":{payment_id},"to_org_id":{to_org_id},'
            f'"to_state":{e(to_state)}}}')


def _content(event: Any) -> str:
    return _content_of(event.chain, event.payment_id, event.action, event.from_state, event.to_state,
                       event.from_org_id, event.to_org_id, event.actor_id, event.note, event.details,
                       event.at.isoformat())


def event_hash(prev_hash: str, event: Any) -> str:
    """The chain hash of ``event`` (an ``Event``, a row of its columns or anything with those attributes) given
    the hash of the event before it in its chain."""
    return hashlib.sha256((prev_hash + _content(event)).encode()).hexdigest()


class _PaymentLike(Protocol):
    id: int
    state: str
    holder_org_id: int
    grassroots_org_id: int


class PaymentRef(NamedTuple):
    """What an event needs of a payment changed with Core (batch entry, transfers): no ORM object per row."""

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


def count_move(counts: Counter[str], from_state: str | None, to_state: str) -> None:
    """Add to ``counts`` (state -> change in the number of payments in it) the move of one payment by an event
    from ``from_state`` (None: its ``record``) to ``to_state``."""
    if from_state != to_state:
        counts[to_state] += 1
        if from_state is not None:
            counts[from_state] -= 1


_MOVE_HEADS = update(_HEADS).where(_HEADS.c.chain == bindparam("head_chain")).values(
    last_hash=bindparam("head_hash"),
    **{column.name: column + bindparam(f"moved_{state}") for state, column in PAYMENT_COUNTS.items()},
)
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
                                    for column in _EVENTS.c if column is not _EVENTS.c.id})
    statement = _MOVE_HEADS.add_cte(event.cte("appended_event"))
    for number, extra in enumerate(also):
        statement = statement.add_cte(extra.cte(f"also_{number}"))
    return statement


def _write(rows: list[dict[str, Any]], heads: list[dict[str, Any]], also: Sequence[Write]) -> None:
    """The events' INSERT, the heads' UPDATE and ``also``: one statement on PostgreSQL for a single event (the
    recording's hot path), else each on its own (the driver's executemany for many rows)."""
    if len(rows) == 1 and db.session.get_bind().dialect.name == "postgresql":
        params = {f"event_{name}": value for name, value in rows[0].items()}
        for extra in also:
            params.update(extra.params)
        db.session.execute(_one_event_statement(tuple(extra.statement for extra in also)), {**params, **heads[0]})
        return
    db.session.execute(_INSERT_EVENTS, rows)
    db.session.execute(_MOVE_HEADS, heads)
    for extra in also:
        db.session.execute(extra.statement, extra.params)


def append_events(drafts: Sequence[EventDraft], *, also: Sequence[Write] = (),
                  reserved: Reservation | None = None) -> None:
    """Write many events in one go, in the current transaction (batch entry, a transfer's confirmation), and the
    ``also`` statements with them.

    Each chain touched is locked once, in sorted order (two batches touching the same chains cannot deadlock);
    the hashes are computed here; all events go in with one INSERT statement run by the driver's executemany,
    and the heads move on with one UPDATE statement, which also moves their counts of payments by state (on
    PostgreSQL a single event goes in with the UPDATE, in one statement). Events of one chain follow the order of
    ``drafts``. A chain ``reserved`` already (locked, with one position: ``insert_reserving``) is not locked
    again."""
    if not drafts:
        for extra in also:
            db.session.execute(extra.statement, extra.params)
        return
    db.session.flush()  # the payments' own changes (and their version checks) go first, before the chain locks
    by_chain: dict[str, list[EventDraft]] = {}
    for draft in drafts:
        by_chain.setdefault(chain_key(draft.payment.grassroots_org_id), []).append(draft)
    at = utcnow()
    stamp = at.isoformat()
    sha256 = hashlib.sha256
    rows: list[dict[str, Any]] = []
    heads: list[dict[str, Any]] = []
    for chain in sorted(by_chain):
        if reserved is not None and reserved.chain == chain:
            assert len(by_chain[chain]) == 1, "a reservation holds one position"
            position, prev = reserved.position, reserved.prev_hash
        else:
            position, prev = _reserve(chain, len(by_chain[chain]))
        moves: Counter[str] = Counter()
        for draft in by_chain[chain]:
            payment, details, actor_id = draft.payment, draft.details or {}, draft.actor.id
            digest = sha256((prev + _content_of(
                chain, payment.id, draft.action, draft.from_state, payment.state, draft.from_org_id,
                payment.holder_org_id, actor_id, draft.note, details, stamp)).encode()).hexdigest()
            rows.append({"chain": chain, "position": position, "payment_id": payment.id, "action": draft.action,
                         "from_state": draft.from_state, "to_state": payment.state,
                         "from_org_id": draft.from_org_id, "to_org_id": payment.holder_org_id, "actor_id": actor_id,
                         "note": draft.note, "details": details, "at": at, "prev_hash": prev, "hash": digest})
            prev, position = digest, position + 1
            count_move(moves, draft.from_state, payment.state)
        heads.append({"head_chain": chain, "head_hash": prev, **{f"moved_{state}": moves[state] for state in
                                                                  PAYMENT_COUNTS}})
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


_RECEIPT_ACTIONS = frozenset({"deliver", "confirm", "reissue", "void"})


@dataclass
class _Replays:
    """What the events of the payments walked so far say: per payment ``[chain, state, holder, amount]``; per
    receipt number ``(payment id, version, voided)`` as confirm, reissue and void events leave it; per delivered
    ``(receipt number, version)`` (deliver events, SPEC §9) the payment it belongs to. Kept flat and small: a
    million payments' worth fits in one process."""

    payments: dict[int, list[Any]] = field(default_factory=dict)
    receipts: dict[str, tuple[int, int, bool]] = field(default_factory=dict)
    deliveries: dict[tuple[str, int], int] = field(default_factory=dict)

    def receipt_change(self, payment_id: int, action: str, details: Any) -> None:
        number = details.get("receipt_number")
        if not isinstance(number, str):
            return
        _owner, version, _voided = self.receipts.get(number, (payment_id, 0, False))
        if action == "deliver":
            self.deliveries[(number, version)] = payment_id
        elif action == "confirm":
            self.receipts[number] = (payment_id, 1, False)
        elif action == "reissue":
            self.receipts[number] = (payment_id, version + 1, False)
        elif action == "void":
            self.receipts[number] = (payment_id, version, True)


# The event columns as the walk reads them; ``at`` comes as the driver gives it (SQLite: text) and ``details`` as
# its stored text (psycopg would decode it with json.loads on bytes, the slowest way), without SQLAlchemy's per-row
# conversions, and are turned into their canonical form in the loop.
_WALK_COLUMNS = (_EVENTS.c.id, _EVENTS.c.chain, _EVENTS.c.position, _EVENTS.c.payment_id, _EVENTS.c.action,
                 _EVENTS.c.from_state, _EVENTS.c.to_state, _EVENTS.c.from_org_id, _EVENTS.c.to_org_id,
                 _EVENTS.c.actor_id, _EVENTS.c.note, cast(_EVENTS.c.details, Text),
                 type_coerce(_EVENTS.c.at, Text), _EVENTS.c.prev_hash, _EVENTS.c.hash)
_SQLITE_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")  # how SQLAlchemy stores a datetime there


def _stamp_reader(dialect: Any) -> Callable[[Any], str]:
    """``at.isoformat()`` of an event's aware UTC time, from the value the driver gives for the column."""
    convert = _EVENTS.c.at.type.result_processor(dialect, None) or (lambda value: value)
    storage = _SQLITE_STAMP.fullmatch
    from_iso = datetime.fromisoformat

    def read(at: Any) -> str:
        if type(at) is str:
            if storage(at):  # naive UTC: the aware time's isoformat is the naive one's with the offset
                return from_iso(at).isoformat() + "+00:00"
            at = convert(at)
        return at.replace(tzinfo=UTC).isoformat()

    return read


@dataclass(frozen=True)
class _Range:
    """The chains ``low <= chain < high`` (None: unbounded) that one process verifies."""

    low: str | None = None
    high: str | None = None

    def __contains__(self, chain: str) -> bool:
        return (self.low is None or chain >= self.low) and (self.high is None or chain < self.high)

    @property
    def whole(self) -> bool:
        return self.low is None and self.high is None


# A problem found in a range, with where it comes in the order of a single pass (chains first, by key; then the
# heads of chains without events; then payments, receipts, deliveries), so that the first over all ranges is the
# one a single pass would name.
_Found = tuple[tuple[int, Any], AuditProblem]


def _walk(problem_at: Callable[[int, Any, AuditProblem], _Found], rows: Any, heads: dict[str, tuple[int, str]],
          replays: _Replays, stamp: Callable[[Any], str]) -> _Found | None:
    """The chains in ``rows`` (in chain order, each oldest first): positions, links, hashes and heads, and each
    payment's events replayed. The tight loop of verify-audit: plain tuples, the hash as ``event_hash`` makes it."""
    sha256, content_of, loads, payments = hashlib.sha256, _content_of, _details, replays.payments
    chain: str | None = None
    length, last_hash, last_id = 0, GENESIS_HASH, 0
    for (event_id, event_chain, position, payment_id, action, from_state, to_state, from_org_id, to_org_id,
         actor_id, note, details, at, prev_hash, hash_) in rows:
        if event_chain != chain:
            if chain is not None and heads.pop(chain, None) != (length, last_hash):
                return problem_at(0, chain, _head_problem(chain))
            chain, length, last_hash, last_id = event_chain, 0, GENESIS_HASH, 0
        if position != length + 1 or prev_hash != last_hash or event_id <= last_id:
            return problem_at(0, chain, AuditProblem(f"event {event_id}", f"chain {chain} is broken before this "
                                                                          "event (deleted or reordered)"))
        if type(details) is str:
            details = loads(details)
        content = content_of(chain, payment_id, action, from_state, to_state, from_org_id, to_org_id, actor_id,
                             note, details, stamp(at))
        if sha256((last_hash + content).encode()).hexdigest() != hash_:
            return problem_at(0, chain, AuditProblem(f"event {event_id}", "its content does not match its hash "
                                                                          "(edited)"))
        length, last_hash, last_id = position, hash_, event_id
        replay = payments.get(payment_id)
        if replay is None:
            replay = payments[payment_id] = [chain, None, None, None]
        elif replay[0] != chain:
            return problem_at(0, chain, AuditProblem(f"event {event_id}", f"is in chain {chain}, its payment's "
                                                                          f"events in {replay[0]}"))
        if replay[1] != from_state:
            return problem_at(0, chain, AuditProblem(f"event {event_id}", f"starts from {from_state!r} but payment "
                                                                          f"was {replay[1]!r}"))
        replay[1], replay[2] = to_state, to_org_id
        if "amount" in details:
            replay[3] = str(details["amount"])
        elif "new" in details and "amount" in details["new"]:
            replay[3] = str(details["new"]["amount"])
        if action in _RECEIPT_ACTIONS:
            replays.receipt_change(payment_id, action, details)
    if chain is not None and heads.pop(chain, None) != (length, last_hash):
        return problem_at(0, chain, _head_problem(chain))
    return None


def _head_problem(chain: str) -> AuditProblem:
    return AuditProblem(f"audit chain {chain}", "its head does not match its events (the newest events are missing, "
                                                "or the head was changed)")


def _verify_range(part: _Range) -> _Found | None:
    """Verify the chains in ``part`` and the payments, receipts and deliveries of the orgs whose chains they are,
    in the current transaction: the whole of verify-audit when ``part`` is whole."""

    def found(order: int, key: Any, problem: AuditProblem) -> _Found:
        return (order, key), problem

    heads = {chain: head for chain, head in chain_heads().items() if chain in part}
    query = select(*_WALK_COLUMNS).order_by(_EVENTS.c.chain, _EVENTS.c.position)
    if part.low is not None:
        query = query.where(_EVENTS.c.chain >= part.low)
    if part.high is not None:
        query = query.where(_EVENTS.c.chain < part.high)
    replays = _Replays()
    result = db.session.execute(query.execution_options(yield_per=5000))
    rows = (row for partition in result.partitions() for row in partition)
    problem = _walk(found, rows, heads, replays, _stamp_reader(db.session.get_bind().dialect))
    result.close()
    if problem is not None:
        return problem
    for chain, head in sorted(heads.items()):  # heads of chains without a single event left
        if head != (0, GENESIS_HASH):
            return found(1, chain, _head_problem(chain))
    orgs = None if part.whole else _orgs_in(part)
    counted: dict[str, Counter[str]] = {}
    problem = _check_payments(found, replays, orgs, counted)
    if problem is not None:
        return problem
    count_problem = check_payment_counts(counted, part)
    if count_problem is not None:
        return found(3, count_problem.record, count_problem)
    return _check_receipts(found, replays, orgs) or _check_deliveries(found, replays, orgs)


def _orgs_in(part: _Range) -> Any:
    """A condition on ``Payment.grassroots_org_id``: the orgs whose chains are in ``part``."""
    ids = [org_id for org_id in db.session.scalars(select(Org.id)) if chain_key(org_id) in part]
    condition = Payment.grassroots_org_id.in_(ids)
    return or_(condition, Payment.grassroots_org_id.is_(None)) if GENERAL_CHAIN in part else condition


def verify_audit(jobs: int = 1) -> AuditProblem | None:
    """Check every chain (positions, links, hashes, head) and that every payment's events replay to its current
    state, holder and amount; one pass over the events in chain order, linear in their number.

    With ``jobs`` > 1 the chains are split into as many ranges of about as many events (chains are independent:
    a payment's events are all in its committee's chain), each verified with its payments, receipts and deliveries
    in a process of its own (forked, each in one transaction); the problem named is the one a single pass names
    first."""
    if jobs <= 1:
        found = _verify_range(_Range())
        return None if found is None else found[1]
    parts = _split(jobs)
    global _FORKED_APP  # noqa: PLW0603 - what the forked processes inherit; they cannot be handed an app
    _FORKED_APP = current_app._get_current_object()  # type: ignore[attr-defined]
    db.session.rollback()  # the forks must not share a transaction (or a connection) with this process
    try:
        with multiprocessing.get_context("fork").Pool(len(parts)) as pool:
            results = pool.map(_verify_forked, parts, chunksize=1)
    finally:
        _FORKED_APP = None
    problems = sorted((found for found in results if found is not None), key=lambda found: found[0])
    return problems[0][1] if problems else None


_FORKED_APP: Any = None


def _verify_forked(part: _Range) -> _Found | None:
    app = _FORKED_APP
    with app.app_context():
        db.engine.dispose(close=False)  # the parent's pooled connections stay the parent's
        g.read_only = True
        try:
            if db.engine.dialect.name == "postgresql":  # one snapshot for the events and the payments
                db.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            return _verify_range(part)
        finally:
            db.session.rollback()
            db.session.remove()
            db.engine.dispose()


def _split(jobs: int) -> list[_Range]:
    """Up to ``jobs`` ranges of chains, cut by the heads' lengths into about as many events each; the first and the
    last are open, so that events of a chain without a head are verified too."""
    heads = sorted((chain, length) for chain, (length, _hash) in chain_heads().items())
    total = sum(length for _chain, length in heads)
    bounds: list[str] = []
    running = 0
    for chain, length in heads:
        if running >= total * (len(bounds) + 1) / jobs and len(bounds) < jobs - 1:
            bounds.append(chain)
        running += length
    edges = [None, *bounds, None]
    return [_Range(low, high) for low, high in zip(edges, edges[1:], strict=False)]


def default_jobs() -> int:
    """Processes for verify-audit: one per CPU for a trail large enough to gain from them (forking and reading the
    heads twice cost more than they save below some 100,000 events), one otherwise or for an in-memory SQLite."""
    url = db.engine.url
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return 1
    events = sum(length for length, _hash in chain_heads().values())
    return max(1, min(os.cpu_count() or 1, events // 100_000)) if events >= 100_000 else 1


def _check_payments(found: Callable[[int, Any, AuditProblem], _Found], replays: _Replays, orgs: Any,
                    counted: dict[str, Counter[str]]) -> _Found | None:
    """Every payment has events, in the chain of the org that collected it, ending where the payment is; counts
    them into ``counted`` (chain -> state -> payments) on the way."""
    query = select(Payment.id, Payment.grassroots_org_id, Payment.state, Payment.holder_org_id,
                   Payment.amount).order_by(Payment.id)
    payments, checked = replays.payments, 0
    rows = db.session.execute(query if orgs is None else query.where(orgs))
    for payment_id, grassroots_org_id, state, holder, amount in rows:
        replay = payments.get(payment_id)
        if replay is None:  # (after the same payment's events found in another range's chains, if any)
            return found(2, (payment_id, 1), AuditProblem(f"payment {payment_id}", "has no events"))
        checked += 1
        chain, replay_state, replay_holder, replay_amount = replay
        if chain != chain_key(grassroots_org_id):
            return found(2, (payment_id, 0), _elsewhere(payment_id, grassroots_org_id, chain))
        if replay_state != state or replay_holder != holder:
            return found(2, (payment_id, 0), AuditProblem(
                f"payment {payment_id}",
                f"is {state} at org {holder} but its events end in {replay_state} at org {replay_holder}",
            ))
        if replay_amount != format_amount(Decimal(amount)):
            return found(2, (payment_id, 0), AuditProblem(f"payment {payment_id}", f"amount {amount} differs from its "
                                                                              f"events ({replay_amount})"))
        counted.setdefault(chain, Counter())[state] += 1
    if checked < len(payments):  # events in these chains of payments collected by an org whose chain is elsewhere
        for payment_id, grassroots_org_id in db.session.execute(
                select(Payment.id, Payment.grassroots_org_id).where(Payment.id.in_(payments.keys() - set(
                    db.session.scalars(select(Payment.id).where(orgs))))).order_by(Payment.id)):
            return found(2, (payment_id, 0), _elsewhere(payment_id, grassroots_org_id, payments[payment_id][0]))
    return None


def _elsewhere(payment_id: int, grassroots_org_id: int | None, chain: str) -> AuditProblem:
    return AuditProblem(f"payment {payment_id}", f"was collected by org {grassroots_org_id} but its events are in "
                                                 f"chain {chain}")


def _check_receipts(found: Callable[[int, Any, AuditProblem], _Found], replays: _Replays,
                    orgs: Any) -> _Found | None:
    """Every receipt has the version and voided mark its payment's events give it, and no event's receipt is
    missing: a voided receipt made valid again, or a receipt added without a confirmation, is caught here."""
    seen: set[str] = set()
    query = select(Receipt.id, Receipt.payment_id, Receipt.number, Receipt.version, Receipt.voided).order_by(
        Receipt.id)
    if orgs is not None:
        query = query.join(Payment, Payment.id == Receipt.payment_id).where(orgs)
    issued = replays.receipts
    for receipt_id, payment_id, number, version, voided in db.session.execute(query):
        expected = issued.get(number)
        if expected is None or expected[0] != payment_id:
            return found(4, (0, receipt_id), AuditProblem(f"receipt {number}", "no confirmation event issued it"))
        if expected[1:] != (version, bool(voided)):
            return found(4, (0, receipt_id), AuditProblem(
                f"receipt {number}",
                f"is version {version}{' (voided)' if voided else ''} but its events make it version "
                f"{expected[1]}{' (voided)' if expected[2] else ''}",
            ))
        seen.add(number)
    if len(seen) < len(issued):
        for number in sorted(issued.keys() - seen):
            return found(4, (1, number), AuditProblem(f"receipt {number}", "its events issued it but it is missing"))
    return None


def _check_deliveries(found: Callable[[int, Any, AuditProblem], _Found], replays: _Replays,
                      orgs: Any) -> _Found | None:
    """Every recorded delivery of a receipt version has its ``deliver`` event and every such event its record: a
    signature added or removed behind the service's back is caught here."""
    query = (select(Receipt.payment_id, Receipt.number, ReceiptDelivery.version)
             .join(ReceiptDelivery, ReceiptDelivery.receipt_id == Receipt.id).order_by(ReceiptDelivery.id))
    if orgs is not None:
        query = query.join(Payment, Payment.id == Receipt.payment_id).where(orgs)
    recorded = {(number, version): payment_id for payment_id, number, version in db.session.execute(query)}
    delivered = replays.deliveries
    for (number, version), payment_id in recorded.items():
        if delivered.get((number, version)) != payment_id:
            return found(5, number, AuditProblem(f"receipt {number}", f"version {version} is recorded as delivered "
                                                                      "without an event"))
    for number, version in sorted(delivered.keys() - recorded.keys()):
        return found(6, number, AuditProblem(f"receipt {number}", f"its events deliver version {version}, which "
                                                                  "has no record"))
    return None


def counted_payments() -> dict[str, Counter[str]]:
    """Each chain's payments counted by state from the payments themselves (chain -> state -> payments): one
    grouped count, which reads the whole table; what the heads' counts must equal."""
    counted: dict[str, Counter[str]] = {}
    rows = db.session.execute(select(Payment.grassroots_org_id, Payment.state, func.count())
                              .group_by(Payment.grassroots_org_id, Payment.state))
    for grassroots_org_id, state, count in rows:
        counted.setdefault(chain_key(grassroots_org_id), Counter())[state] = count
    return counted


def check_payment_counts(counted: Mapping[str, Counter[str]], part: _Range | None = None) -> AuditProblem | None:
    """Every chain head (of ``part``, or all) counts, in each state, the payments ``counted`` gives its chain (none
    where it gives none): a count changed behind the service's back, or a state change that missed its count, is
    caught here."""
    heads = {chain: dict(zip(PAYMENT_COUNTS, counts, strict=True)) for chain, *counts in db.session.execute(
        select(_HEADS.c.chain, *PAYMENT_COUNTS.values()).order_by(_HEADS.c.chain)) if part is None or chain in part}
    for chain in sorted(heads.keys() | counted.keys()):
        kept, real = heads.get(chain, {}), counted.get(chain, Counter())
        for state in PAYMENT_COUNTS:
            if kept.get(state, 0) != real[state]:
                return AuditProblem(f"audit chain {chain}", f"counts {kept.get(state, 0)} payments {state} but "
                                                            f"{real[state]} are (the head's counts were changed)")
    return None

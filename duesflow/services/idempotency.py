"""Idempotency-Key for payment creation (SPEC §7).

The key is written in the request's own transaction, before the work, and its stored response with the work:
both are committed together or not at all. So a key row others can see always carries its response, and a
request that failed (a 4xx, a crash) leaves no key behind: a replay of it is processed anew.

A replay that arrives while the first is still in flight waits for it:
- PostgreSQL: the replay's INSERT of the same (user, key) waits on the unique index until the first transaction
  ends; then it finds the committed row (and answers its response) or inserts its own (the first failed). The
  wait is bounded by ``lock_timeout``, set for that one statement: after ``IDEMPOTENCY_WAIT`` (10 s) the replay
  gets 409 ``idempotency_conflict``.
- SQLite: a request that may write begins with BEGIN IMMEDIATE, so the replay cannot start before the first has
  committed or rolled back (writers wait for the write lock up to the busy timeout, like every writer there).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import OperationalError

from ..errors import IdempotencyConflict, ValidationFailed
from ..extensions import db
from ..models import IdempotencyKey, User, UTCDateTime, utcnow
from .audit import Write

MAX_KEY_LENGTH = 255
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE when lock_timeout ends a wait

_KEYS = IdempotencyKey.__table__

# PostgreSQL: the INSERT sets lock_timeout (transaction-local) in a CTE it reads before inserting, so that its own
# wait on the unique index is bounded, and its RETURNING (evaluated once the row is in, after any wait) sets it back
# to the value it had, read by the CTE that one reads first, so that no later wait of the request is cut short. One
# round trip, no SET statements. (Reading the value back from ``pg_settings`` instead builds every setting's row:
# it took 1.3 ms of the server's time, more than the rest of the recording's statements together.)
_PG_CLAIM = text(
    "WITH previous AS MATERIALIZED (SELECT current_setting('lock_timeout') AS value), "
    "bounded AS MATERIALIZED (SELECT set_config('lock_timeout', :wait, true) AS wait FROM previous) "
    "INSERT INTO idempotency_keys (user_id, key, request_hash, state, created_at) "
    "SELECT :user_id, :key, :request_hash, 'in_flight', :created_at FROM bounded "
    "ON CONFLICT (user_id, key) DO NOTHING "
    "RETURNING id, set_config('lock_timeout', (SELECT value FROM previous), true)"
).bindparams(bindparam("created_at", type_=UTCDateTime()))


_SQLITE_CLAIM = (
    sqlite.insert(_KEYS).values(user_id=bindparam("user_id"), key=bindparam("key"),
                                request_hash=bindparam("request_hash"), state="in_flight",
                                created_at=bindparam("created_at"))
    .on_conflict_do_nothing(index_elements=["user_id", "key"]).returning(_KEYS.c.id)
)


def canonical_hash(body: Any) -> str:
    """Hash of the body as canonical JSON (sorted keys, no spaces), so that key order does not matter."""
    text_ = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text_.encode()).hexdigest()


@dataclass(frozen=True)
class Replay:
    """The stored response of the first request with this key."""

    status: int
    body: str


@dataclass(frozen=True)
class Claim:
    """This request's key row, written (not yet committed) in its transaction."""

    id: int


def _insert(user: User, key: str, request_hash: str) -> int | None:
    """Insert the key row, waiting (at most ``IDEMPOTENCY_WAIT``) for a transaction that holds the same key; the
    new row's id, or None when a committed row has the key."""
    values = {"user_id": user.id, "key": key, "request_hash": request_hash, "created_at": utcnow()}
    if db.session.get_bind().dialect.name != "postgresql":
        return db.session.scalar(_SQLITE_CLAIM, values)
    wait_ms = int(current_app.config["IDEMPOTENCY_WAIT"].total_seconds() * 1000)
    try:
        return db.session.scalar(_PG_CLAIM, {**values, "wait": str(wait_ms)})
    except OperationalError as error:
        if getattr(error.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        db.session.rollback()
        raise IdempotencyConflict("使用该幂等键的请求仍在处理中。") from None


def claim(user: User, key: str, body: Any) -> Replay | Claim:
    """Write ``key`` for this request in its transaction, or give the stored response of the first request."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(fields={"Idempotency-Key": [f"须为 1 到 {MAX_KEY_LENGTH} 个可打印字符。"]})
    request_hash = canonical_hash(body)
    for _ in range(3):
        claim_id = _insert(user, key, request_hash)
        if claim_id is not None:
            return Claim(claim_id)
        existing = db.session.execute(
            select(_KEYS.c.id, _KEYS.c.request_hash, _KEYS.c.state, _KEYS.c.response_status,
                   _KEYS.c.response_body, _KEYS.c.created_at)
            .where(_KEYS.c.user_id == user.id, _KEYS.c.key == key)
        ).one_or_none()
        if existing is None:
            continue  # purged meanwhile: insert it again
        expired = existing.created_at <= utcnow() - current_app.config["IDEMPOTENCY_TTL"]
        # A committed row without its response was claimed by an earlier version, which committed the claim
        # before the work: its request is over (it has no transaction any more) and failed.
        if not expired and existing.state == "done":
            if existing.request_hash != request_hash:
                raise IdempotencyConflict("该幂等键已用于另一个不同的请求。")
            return Replay(existing.response_status, existing.response_body)
        db.session.execute(delete(_KEYS).where(_KEYS.c.id == existing.id))
    raise IdempotencyConflict("使用该幂等键的请求仍在处理中。")


_COMPLETE = update(_KEYS).where(_KEYS.c.id == bindparam("key_id")).values(
    state="done", response_status=bindparam("key_status"), response_body=bindparam("key_body"))


def completion(claimed: Claim, status: int, body: str) -> Write:
    """The statement that stores the response with the work, to go with the work's own (``audit.append_events``
    sends it with the events, in one round trip on PostgreSQL)."""
    return Write(_COMPLETE, {"key_id": claimed.id, "key_status": status, "key_body": body})


def complete(claimed: Claim, status: int, body: str) -> None:
    """Store the response with the work, in the request's transaction (committed with it)."""
    write = completion(claimed, status, body)
    db.session.execute(write.statement, write.params)


def purge_expired() -> int:
    ttl = current_app.config["IDEMPOTENCY_TTL"]
    result = db.session.execute(delete(_KEYS).where(_KEYS.c.created_at < utcnow() - ttl))
    return result.rowcount or 0

"""Idempotency-Key for payment creation (SPEC §7).

The key is claimed in its own committed transaction before the work starts, so a concurrent replay sees it
in flight (409); the stored response is written in the same transaction as the work it describes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ..errors import IdempotencyConflict, ValidationFailed
from ..extensions import db
from ..models import IdempotencyKey, User, utcnow

MAX_KEY_LENGTH = 255


def canonical_hash(body: Any) -> str:
    """Hash of the body as canonical JSON (sorted keys, no spaces), so that key order does not matter."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Replay:
    status: int
    body: str


def claim(user: User, key: str, body: Any) -> Replay | IdempotencyKey:
    """Claim ``key`` for this request, or give the stored response of the first one. Commits the claim."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(fields={"Idempotency-Key": [f"须为 1 到 {MAX_KEY_LENGTH} 个可打印字符。"]})
    request_hash = canonical_hash(body)
    config = current_app.config
    now = utcnow()
    for _ in range(3):
        # A new key (the usual case) is claimed straight away, committed with the authentication's transaction.
        record = IdempotencyKey(user_id=user.id, key=key, request_hash=request_hash, state="in_flight",
                                created_at=now)
        db.session.add(record)
        try:
            _commit_keeping_loaded()
        except IntegrityError:
            db.session.rollback()  # the key is taken: by an earlier request, or a concurrent one just now
        else:
            return record
        existing = db.session.scalars(
            select(IdempotencyKey).where(IdempotencyKey.user_id == user.id, IdempotencyKey.key == key)
        ).one_or_none()
        if existing is None:
            continue  # released meanwhile: claim it again
        expired = existing.created_at <= now - config["IDEMPOTENCY_TTL"]
        abandoned = existing.state == "in_flight" and (
            existing.created_at <= now - config["IDEMPOTENCY_CLAIM_TIMEOUT"]
        )
        if not (expired or abandoned):
            if existing.request_hash != request_hash:
                raise IdempotencyConflict("该幂等键已用于另一个不同的请求。")
            if existing.state == "in_flight":
                raise IdempotencyConflict("使用该幂等键的请求仍在处理中。")
            assert existing.response_status is not None and existing.response_body is not None
            return Replay(existing.response_status, existing.response_body)
        db.session.delete(existing)
        db.session.flush()
    raise IdempotencyConflict("使用该幂等键的请求仍在处理中。")


def _commit_keeping_loaded() -> None:
    """Commit without expiring what the session loaded: the user and the claim are used again right after, and
    reloading them would cost two more queries on every creation."""
    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True


def complete(record: IdempotencyKey, status: int, body: str) -> None:
    """Store the response with the work, in the request's transaction."""
    record.state = "done"
    record.response_status = status
    record.response_body = body
    db.session.flush()


def release(record_id: int) -> None:
    """Forget a claim whose request failed (4xx responses are not stored). Commits."""
    db.session.rollback()
    db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == record_id))
    db.session.commit()


def purge_expired() -> int:
    ttl = current_app.config["IDEMPOTENCY_TTL"]
    result = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - ttl))
    return result.rowcount or 0

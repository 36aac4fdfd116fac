"""Sliding-window throttles kept in the database (or Redis when configured), so they hold across workers."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, func, select

from ..errors import TooManyRequests
from ..extensions import db
from ..models import ThrottleHit, utcnow


def _redis():  # noqa: ANN202 - redis.Redis, imported only when configured
    url = current_app.config.get("REDIS_URL")
    if not url:
        return None
    import redis

    client = current_app.extensions.get("duesflow_redis")
    if client is None:
        client = current_app.extensions["duesflow_redis"] = redis.Redis.from_url(url)
    return client


def check(key: str, limit: int, window: timedelta) -> None:
    """429 with Retry-After when ``key`` already has ``limit`` hits within ``window``."""
    redis_client = _redis()
    now = utcnow()
    if redis_client is not None:
        cutoff = now.timestamp() - window.total_seconds()
        redis_client.zremrangebyscore(f"throttle:{key}", 0, cutoff)
        hits = redis_client.zrange(f"throttle:{key}", 0, -1, withscores=True)
        if len(hits) >= limit:
            oldest = hits[-limit][1]
            raise TooManyRequests(math.ceil(oldest + window.total_seconds() - now.timestamp()))
        return
    since = now - window
    count = db.session.scalar(
        select(func.count()).where(ThrottleHit.key == key, ThrottleHit.at > since)
    )
    if count >= limit:
        # Allowed again once the limit-th newest hit leaves the window.
        newest_blocking = db.session.scalars(
            select(ThrottleHit.at)
            .where(ThrottleHit.key == key, ThrottleHit.at > since)
            .order_by(ThrottleHit.at.desc())
            .offset(limit - 1)
            .limit(1)
        ).one()
        raise TooManyRequests(math.ceil((newest_blocking + window - now).total_seconds()))


def hit(key: str, window: timedelta) -> None:
    """Count one attempt under ``key``, committed at once so that it counts even when the request fails."""
    redis_client = _redis()
    now = utcnow()
    if redis_client is not None:
        name = f"throttle:{key}"
        redis_client.zadd(name, {uuid.uuid4().hex: now.timestamp()})
        redis_client.expire(name, int(window.total_seconds()) + 1)
        return
    db.session.add(ThrottleHit(key=key, at=now))
    db.session.commit()


def clear(key: str) -> None:
    """Forget the hits of ``key`` (a successful login clears its username's failures)."""
    redis_client = _redis()
    if redis_client is not None:
        redis_client.delete(f"throttle:{key}")
        return
    db.session.execute(delete(ThrottleHit).where(ThrottleHit.key == key))


def purge(older_than: timedelta) -> int:
    """Delete hits older than ``older_than``; returns how many."""
    result = db.session.execute(delete(ThrottleHit).where(ThrottleHit.at < utcnow() - older_than))
    return result.rowcount or 0

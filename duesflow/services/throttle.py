"""Sliding-window throttles kept in the database (or Redis when configured), so they hold across workers."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, func, select
from sqlalchemy.orm import aliased

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


def usernames_under_attack(window: timedelta | None = None, *, at_least: int | None = None,
                           limit: int = 20) -> list[tuple[str, int, int]]:
    """``(username, distinct clients, failures)`` of the usernames with at least ``at_least`` failed logins within
    ``window`` (default: the login throttle's), most failures first, at most ``limit`` of them.

    Over the throttle table as it is kept here: a failed login writes its username's hit and then its client's, so
    a username hit's client is the client hit that follows it. Under concurrent failures that pairing can pick a
    neighbour's client, so the distinct count is a close lower bound. With Redis throttles the table is empty and
    the answer is too.
    """
    config = current_app.config
    since = utcnow() - (window or config["LOGIN_WINDOW"])
    user_hits = aliased(ThrottleHit)
    client_hits = aliased(ThrottleHit)
    next_client = (
        select(client_hits.key)
        .where(client_hits.id > user_hits.id, client_hits.key.startswith("login:client:"))
        .order_by(client_hits.id)
        .limit(1)
        .correlate(user_hits)
        .scalar_subquery()
    )
    failures = (
        select(user_hits.key.label("key"), next_client.label("client"))
        .where(user_hits.key.startswith("login:user:"), user_hits.at > since)
        .subquery()
    )
    rows = db.session.execute(
        select(failures.c.key, func.count(failures.c.client.distinct()), func.count())
        .group_by(failures.c.key)
        .having(func.count() >= (at_least or config["LOGIN_MAX_FAILURES"]))
        .order_by(func.count().desc(), failures.c.key)
        .limit(limit)
    )
    return [(key.removeprefix("login:user:"), clients, count) for key, clients, count in rows]

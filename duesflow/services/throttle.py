"""Sliding-window throttles kept in the database (or Redis when configured), so they hold across workers.

Every throttle counts a *client*: :func:`client_key` turns an address into one (IPv6 by /64). Login failures are
counted per (username, client) and per client, never per username alone (SPEC §7): failures from elsewhere never
refuse a client that has not failed itself. What is spread over many clients (one username, one receipt number)
is counted and shown (:func:`usernames_under_attack`, :func:`receipt_numbers_under_attack`), not refused.
"""

from __future__ import annotations

import ipaddress
import math
import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any, NamedTuple

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


def client_key(address: str | None) -> str:
    """The client an address counts as: an IPv4 address, the /64 of an IPv6 address (one subscriber's network:
    a host has billions of addresses in it), the IPv4 address inside an IPv4-mapped one; else ``unknown``."""
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


# Keys: "<kind>:<client>" for what one client does; "<kind>:<client> <subject>" for one client against one
# subject (a client key never holds a space, so the subject is everything after the first one).
_LOGIN_PAIR, _LOGIN_CLIENT = "login:pair:", "login:client:"
_VERIFY_CLIENT, _VERIFY_NUMBER = "verify:", "verify-number:"
_KEY_LENGTH = 200  # ThrottleHit.key


def _pair(prefix: str, client: str, subject: str) -> str:
    return f"{prefix}{client} {subject}"[:_KEY_LENGTH]


def login_keys(folded_username: str, client: str) -> tuple[str, str]:
    """The keys of a failed login: (this username from this client, this client)."""
    return _pair(_LOGIN_PAIR, client, folded_username), f"{_LOGIN_CLIENT}{client}"


def verification_key(client: str) -> str:
    """The key of every verification attempt of ``client``."""
    return f"{_VERIFY_CLIENT}{client}"


def number_failure_key(client: str, number: str) -> str:
    """The key of a failed verification of receipt ``number`` by ``client``."""
    return _pair(_VERIFY_NUMBER, client, number)


class Spread(NamedTuple):
    """Failures against one subject (a username, a receipt number) within the window, and from how many clients."""

    subject: str
    clients: int
    failures: int


def _spread(prefix: str, window: timedelta) -> list[Spread]:
    """Per subject of the pair keys under ``prefix``: distinct clients and hits within ``window``, most clients
    first."""
    per_key: dict[str, int] = {}
    redis_client = _redis()
    now = utcnow()
    if redis_client is not None:
        cutoff = now.timestamp() - window.total_seconds()
        for name in redis_client.scan_iter(match=f"throttle:{prefix}*", count=1000):
            key = (name.decode() if isinstance(name, bytes) else name).removeprefix("throttle:")
            per_key[key] = redis_client.zcount(name, f"({cutoff}", "+inf")
    else:
        rows = db.session.execute(
            select(ThrottleHit.key, func.count())
            .where(ThrottleHit.key.startswith(prefix, autoescape=True), ThrottleHit.at > now - window)
            .group_by(ThrottleHit.key)
        )
        per_key = {key: count for key, count in rows}
    clients: dict[str, int] = defaultdict(int)
    failures: dict[str, int] = defaultdict(int)
    for key, count in per_key.items():
        if count and " " in key:
            subject = key[len(prefix):].split(" ", 1)[1]
            clients[subject] += 1
            failures[subject] += count
    spread = [Spread(subject, clients[subject], failures[subject]) for subject in clients]
    return sorted(spread, key=lambda row: (-row.clients, -row.failures, row.subject))


class UsernameUnderAttack(NamedTuple):
    username: str  # as folded (identity.fold_username)
    clients: int
    failures: int


class NumberUnderAttack(NamedTuple):
    number: str
    clients: int
    failures: int


def usernames_under_attack() -> list[UsernameUnderAttack]:
    """Usernames that failed to log in from at least ``LOGIN_ATTACK_MIN_CLIENTS`` clients within the login window:
    (username as folded, distinct clients, failures), most clients first. Shown to admins and exported as a metric;
    never a lockout."""
    config = current_app.config
    return [UsernameUnderAttack(*row) for row in _spread(_LOGIN_PAIR, config["LOGIN_WINDOW"])
            if row.clients >= config["LOGIN_ATTACK_MIN_CLIENTS"]]


def receipt_numbers_under_attack() -> list[NumberUnderAttack]:
    """Receipt numbers with failed verifications within ``VERIFY_NUMBER_WINDOW``, from every client: (number,
    distinct clients, failures), most clients first. Shown to central."""
    return [NumberUnderAttack(*row) for row in _spread(_VERIFY_NUMBER, current_app.config["VERIFY_NUMBER_WINDOW"])]


def login_attacks_view() -> dict[str, Any]:
    """:func:`usernames_under_attack` with its window and threshold, for the admin's API and page."""
    config = current_app.config
    return {"window_seconds": int(config["LOGIN_WINDOW"].total_seconds()),
            "min_clients": config["LOGIN_ATTACK_MIN_CLIENTS"],
            "items": [row._asdict() for row in usernames_under_attack()]}


def verification_failures_view() -> dict[str, Any]:
    """:func:`receipt_numbers_under_attack` with its window, for central's API and page."""
    return {"window_seconds": int(current_app.config["VERIFY_NUMBER_WINDOW"].total_seconds()),
            "items": [row._asdict() for row in receipt_numbers_under_attack()]}

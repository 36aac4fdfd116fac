"""Passwords (argon2id), opaque bearer tokens stored hashed, and the login throttle."""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy import bindparam, inspect, select, update
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from ..errors import InvalidCredentials, ValidationFailed
from ..extensions import db
from ..identity import fold_username
from ..models import Org, Token, User, utcnow
from . import throttle

_TOKENS, _USERS, _ORGS = Token.__table__, User.__table__, Org.__table__
# Every request asks for the user's org next (visibility, inbox, navigation): one statement brings the token, the
# user and the org, in Core, built once. The ORM's loading of the three (a joined eager load) cost four times the
# statement itself; the user and the org are made from the row instead (``_loaded``).
_TOKEN_WITH_USER_ORG = (
    select(_TOKENS.c.id, _TOKENS.c.revoked_at, _TOKENS.c.expires_at,
           *(column.label(f"user_{column.name}") for column in _USERS.c),
           *(column.label(f"org_{column.name}") for column in _ORGS.c))
    .join_from(_TOKENS, _USERS, _USERS.c.id == _TOKENS.c.user_id)
    .outerjoin(_ORGS, _ORGS.c.id == _USERS.c.org_id)
    .where(_TOKENS.c.token_hash == bindparam("token_hash"))
)

MIN_PASSWORD_LENGTH = 10


def _hasher() -> PasswordHasher:
    config = current_app.config
    hasher = current_app.extensions.get("duesflow_hasher")
    if hasher is None:
        hasher = current_app.extensions["duesflow_hasher"] = PasswordHasher(
            time_cost=config["ARGON2_TIME_COST"],
            memory_cost=config["ARGON2_MEMORY_COST"],
            parallelism=config["ARGON2_PARALLELISM"],
        )
    return hasher


def check_password_rules(password: str, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(fields={field: [f"密码至少需要 {MIN_PASSWORD_LENGTH} 个字符。"]})


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def _dummy_hash() -> str:
    """A hash of a random password, made once per process with the current parameters: an unknown username is
    verified against it, so that it costs one verification like a known one (SPEC §7, no enumeration by timing)."""
    dummy = current_app.extensions.get("duesflow_dummy_hash")
    if dummy is None:
        dummy = current_app.extensions["duesflow_dummy_hash"] = _hasher().hash(secrets.token_hex(16))
    return dummy


def password_matches(user: User | None, password: str) -> bool:
    """Verify; for an unknown user the dummy hash is checked, so that timing does not reveal usernames."""
    try:
        _hasher().verify(user.password_hash if user is not None else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return user is not None


def authenticate(username: str, password: str, address: str | None) -> User:
    """The active user with these credentials (the username in any case); 401 otherwise, 429 when this client
    failed too often, for this username or for any (SPEC §7). Failures elsewhere never refuse this client."""
    if "\x00" in username:  # no account has one, and PostgreSQL cannot even compare such text
        raise InvalidCredentials()
    config = current_app.config
    window = config["LOGIN_WINDOW"]
    folded = fold_username(username)
    pair_key, client_key = throttle.login_keys(folded, throttle.client_key(address))
    throttle.check(pair_key, config["LOGIN_MAX_FAILURES"], window)
    throttle.check(client_key, config["LOGIN_CLIENT_MAX_FAILURES"], window)
    user = db.session.scalars(select(User).where(User.username_folded == folded)).one_or_none()
    if not password_matches(user, password) or user is None or not user.active:
        throttle.hit(pair_key, window)
        throttle.hit(client_key, window)
        raise InvalidCredentials()
    throttle.clear(pair_key)
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int


def issue_token(user: User) -> IssuedToken:
    """A new opaque token; only its SHA-256 is kept."""
    ttl = current_app.config["TOKEN_TTL"]
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(Token(user_id=user.id, token_hash=_digest(token), created_at=now, expires_at=now + ttl))
    db.session.flush()
    return IssuedToken(token, int(ttl.total_seconds()))


@functools.cache
def _columns_of(model: type[Any], prefix: str) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    """The attribute names of ``model``'s columns and a getter of their values from a ``_TOKEN_WITH_USER_ORG`` row
    (the columns named ``prefix`` + column), by position: looking each one up by name cost more than the row."""
    attributes = inspect(model).column_attrs
    names = list(_TOKEN_WITH_USER_ORG.selected_columns.keys())
    positions = [names.index(prefix + attribute.columns[0].name) for attribute in attributes]
    return tuple(attribute.key for attribute in attributes), itemgetter(*positions)


def _loaded(model: type[Any], row: Any, prefix: str) -> Any:
    """The ``model`` instance of the columns named ``prefix`` + column in ``row``, in the session as a query would
    have loaded it (persistent, unchanged; its relationships load on first use): the one already there, if any."""
    identity = identity_key(model, getattr(row, prefix + "id"))
    present = db.session.identity_map.get(identity)
    if present is not None:
        return present
    keys, values = _columns_of(model, prefix)
    instance = inspect(model).class_manager.new_instance()
    # as the ORM's own loading does: the values straight into the instance's dict, then committed all at once
    instance.__dict__.update(zip(keys, values(row), strict=True))
    make_transient_to_detached(instance)
    db.session.add(instance)
    return instance


def user_for_token(token: str) -> tuple[User, int] | None:
    """The active user behind a live token and the token's id, or None."""
    if not token or len(token) > 200:
        return None
    # Core on the session's connection: the ORM's execute would only wrap a statement of plain tables in its result
    # pipeline (it never autoflushes for one)
    row = db.session.connection().execute(_TOKEN_WITH_USER_ORG, {"token_hash": _digest(token)}).one_or_none()
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow() or not row.user_active:
        return None
    user = _loaded(User, row, "user_")
    if "org" not in user.__dict__:  # newly made: its org comes from the same row (None for admins and members)
        set_committed_value(user, "org", _loaded(Org, row, "org_") if row.org_id is not None else None)
    return user, row.id


def revoke_token(token_id: int) -> None:
    db.session.execute(update(Token).where(Token.id == token_id).values(revoked_at=utcnow()))


# A web session is a token row too (it expires, logout and revoke_all end it), kept under another digest so that
# the secret in a session cookie is never accepted as a bearer token.
_SESSION_PREFIX = "web-session:"


def issue_session(user: User) -> str:
    """The secret of a new web session of ``user``, for the (signed) session cookie."""
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(Token(user_id=user.id, token_hash=_digest(_SESSION_PREFIX + secret), created_at=now,
                         expires_at=now + current_app.config["TOKEN_TTL"]))
    db.session.flush()
    return secret


def session_token(secret: str) -> tuple[User, int] | None:
    """The active user and token id of a live web session, or None."""
    if not isinstance(secret, str) or not secret or len(secret) > 200:
        return None
    return user_for_token(_SESSION_PREFIX + secret)


def revoke_all(user: User) -> None:
    """Revoke every token of ``user`` and void its web sessions."""
    db.session.execute(
        update(Token).where(Token.user_id == user.id, Token.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    user.auth_version = User.auth_version + 1  # in SQL: two revocations at once both count
    db.session.flush()


def set_password(user: User, password: str, field: str = "password") -> None:
    check_password_rules(password, field)
    user.password_hash = hash_password(password)
    revoke_all(user)


def change_own_password(user: User, old_password: str, new_password: str) -> None:
    if not password_matches(user, old_password):
        raise ValidationFailed(fields={"old_password": ["原密码不正确。"]})
    set_password(user, new_password, "new_password")

"""The plumbing every API view shares: authentication, body and query parsing, one commit, the answer's
shape, and the metadata the OpenAPI document is generated from."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Response, current_app, g, request
from marshmallow import Schema, ValidationError

from ..errors import (
    DomainError,
    InvalidAmount,
    MalformedRequest,
    RequestTooLarge,
    Unauthenticated,
    ValidationFailed,
)
from ..extensions import db
from ..models import User
from ..money import JsonNumber
from ..services import access_log
from ..services import auth as auth_service


@dataclass(frozen=True)
class EndpointDoc:
    """What the OpenAPI document says of one view; built from the same schemas the view uses."""

    summary: str
    body: type[Schema] | None
    query: type[Schema] | None
    response: type[Schema] | None
    status: int
    auth: bool
    errors: tuple[type[DomainError], ...]
    content_type: str = "application/json"
    extra_statuses: dict[int, str] = field(default_factory=dict)
    headers: tuple[dict[str, Any], ...] = ()
    # Other media types the success response may come in (e.g. a report as CSV), besides ``content_type``.
    alternatives: tuple[str, ...] = ()

    def statuses(self) -> dict[int, list[str]]:
        """Every status the view can answer with, and the error codes behind each."""
        codes: dict[int, list[str]] = {self.status: []}
        errors = list(self.errors)
        if self.auth:
            errors.append(Unauthenticated)
        if self.body is not None:
            errors += [MalformedRequest, RequestTooLarge, ValidationFailed]
        if self.query is not None:
            errors.append(ValidationFailed)
        for error in errors:
            codes.setdefault(error.status, [])
            if error.code not in codes[error.status]:
                codes[error.status].append(error.code)
        return codes


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def parse_json_body() -> dict[str, Any]:
    """The body as a JSON object; numbers with fractions stay text (never floats). Empty body: {}."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw.decode("utf-8"), parse_float=JsonNumber, parse_constant=_reject_constant)
        # "\ud800" is valid JSON but no text a database can store: UnicodeEncodeError is a ValueError.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):
        raise MalformedRequest("请求体不是有效的 JSON。") from None
    if not isinstance(body, dict):
        raise MalformedRequest("请求体必须是 JSON 对象。")
    return body


@functools.cache
def shared(schema: type[Schema]) -> Schema:
    """One instance of ``schema`` per process: building a schema costs more than most loads and dumps."""
    return schema()


def load(schema: type[Schema], data: dict[str, Any]) -> dict[str, Any]:
    """Validate ``data``; 422 with per-field messages (``invalid_amount`` when the amount is what is wrong)."""
    try:
        return shared(schema).load(data)
    except ValidationError as error:
        messages = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
        if "amount" in messages and "_schema" not in messages:
            raise InvalidAmount(fields=messages) from None
        raise ValidationFailed(fields=messages) from None


def read_body(schema: type[Schema]) -> dict[str, Any]:
    """The request body, parsed and validated by ``schema``."""
    return load(schema, parse_json_body())


def read_query(schema: type[Schema]) -> dict[str, Any]:
    """The query string, validated by ``schema``."""
    return load(schema, request.args.to_dict())


def bearer_user() -> User:
    """The user behind the request's bearer token; 401 otherwise."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated()
    found = auth_service.user_for_token(token.strip())
    if found is None:
        raise Unauthenticated("令牌无效、已过期或已注销，请重新登录。")
    g.user, g.token = found
    return g.user


def current_user() -> User:
    return g.user


def endpoint(
    *,
    summary: str,
    body: type[Schema] | None = None,
    query: type[Schema] | None = None,
    response: type[Schema] | None = None,
    status: int = 200,
    auth: bool = True,
    errors: tuple[type[DomainError], ...] = (),
    content_type: str = "application/json",
    headers: tuple[dict[str, Any], ...] = (),
    alternatives: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap a view: authenticate, call, dump through ``response``, commit once.

    The view reads its body and query with ``read_body``/``read_query`` itself, after its 404/403/409 checks,
    so that the SPEC's order of checks holds; ``body`` and ``query`` here document them, ``headers`` the
    request headers it reads (OpenAPI parameter objects).
    """
    doc = EndpointDoc(summary, body, query, response, status, auth, errors, content_type, headers=headers,
                      alternatives=alternatives)

    dumper = shared(response) if response is not None else None

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(**kwargs: Any) -> Any:
            if auth:
                bearer_user()
            result = view(**kwargs)
            if isinstance(result, Response):
                db.session.commit()
                access_log.write_pending()
                return result
            payload = dumper.dump(result) if dumper is not None else result
            db.session.commit()
            access_log.write_pending()
            if payload is None:
                return Response(status=status)
            return current_app.response_class(
                json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
                status=status,
                mimetype="application/json",
            )

        wrapper.api_doc = doc  # type: ignore[attr-defined]
        return wrapper

    return decorate


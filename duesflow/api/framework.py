"""The plumbing every API view shares: authentication, body and query parsing, one commit, the answer's
shape, and the metadata the OpenAPI document is generated from."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Response, current_app, g, request
from marshmallow import Schema, fields, missing
from marshmallow.decorators import POST_DUMP, PRE_DUMP

from ..errors import (
    DomainError,
    MalformedRequest,
    RequestTooLarge,
    ServiceBusy,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationFailed,
)
from ..extensions import db
from ..models import User
from ..money import JsonNumber
from ..schemas import load, shared
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
    # What the body may also be, as a multipart upload in field ``file`` (e.g. a spreadsheet of rows), if anything.
    uploads: str | None = None
    # The media type of a body that is a file, not JSON (e.g. a PDF to verify): read by the view itself.
    body_type: str | None = None

    def statuses(self) -> dict[int, list[str]]:
        """Every status the view can answer with, and the error codes behind each."""
        codes: dict[int, list[str]] = {self.status: []}
        errors = [*self.errors, ServiceBusy]
        if self.auth:
            errors.append(Unauthenticated)
        if self.body is not None:
            errors += [MalformedRequest, RequestTooLarge, UnsupportedMediaType, ValidationFailed]
        if self.body_type is not None:
            errors += [RequestTooLarge, ValidationFailed]
        if self.query is not None:
            errors.append(ValidationFailed)
        for error in errors:
            codes.setdefault(error.status, [])
            if error.code not in codes[error.status]:
                codes[error.status].append(error.code)
        return codes


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _declared_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def _once(key: Any, produce: Callable[[], Any]) -> Any:
    """``produce()``, worked out once per request: its value again, or its refusal (a ``DomainError``) raised again
    where it is asked for, so that an answer worked out early still comes in the SPEC's order of checks."""
    # in the request's environ, not in ``g``: a test's app context (and its ``g``) can outlast several requests
    done: dict[Any, tuple[bool, Any]] = request.environ.setdefault("duesflow.worked_out", {})
    if key not in done:
        try:
            done[key] = (True, produce())
        except DomainError as refusal:
            done[key] = (False, refusal)
    ok, outcome = done[key]
    if not ok:
        raise outcome
    return outcome


def parse_json_body() -> dict[str, Any]:
    """The body as a JSON object; numbers with fractions stay text (never floats). Empty body: {}. Parsed once per
    request (the Idempotency-Key's fingerprint and the schema read the same object; neither changes it)."""
    return _once("json", _parsed_json_body)


def _parsed_json_body() -> dict[str, Any]:
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    if not _declared_json(request.mimetype):
        raise UnsupportedMediaType()
    try:
        body = json.loads(raw.decode("utf-8"), parse_float=JsonNumber, parse_constant=_reject_constant)
        # "\ud800" is valid JSON but no text a database can store: UnicodeEncodeError is a ValueError.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):
        raise MalformedRequest("请求体不是有效的 JSON。") from None
    if not isinstance(body, dict):
        raise MalformedRequest("请求体必须是 JSON 对象。")
    return body


def _value_of(obj: Any, key: str) -> Any:
    """What marshmallow's default accessor reads (``utils.get_value`` for a key without dots)."""
    if not hasattr(obj, "__getitem__"):
        return getattr(obj, key, missing)
    try:
        return obj[key]
    except (KeyError, IndexError, TypeError, AttributeError):
        return getattr(obj, key, missing)


def _compile(schema: Schema) -> Callable[[Any], dict[str, Any]] | None:
    """``schema.dump`` of one object as a plain function, or None where it would not do the same (hooks, fields
    that read no attribute, dotted attributes); see ``dumper``."""
    if schema.many or schema._hooks[PRE_DUMP] or schema._hooks[POST_DUMP]:  # noqa: SLF001 - marshmallow's own record
        return None
    steps: list[tuple[str, str, str, Any, Callable[[Any, str, Any], Any]]] = []
    for name, declared in schema.dump_fields.items():
        attribute = declared.attribute or name
        if not declared._CHECK_ATTRIBUTE or "." in attribute:  # noqa: SLF001
            return None
        key = declared.data_key if declared.data_key is not None else name
        # a list of nested objects is dumped as the nested schema, once per item
        listed = type(declared) is fields.List and type(declared.inner) is fields.Nested
        writer = declared.inner if listed else declared
        if type(writer) is fields.Nested:
            nested = _compile(writer.schema)
            if nested is None:
                return None
            many = listed or writer.many or writer.schema.many

            def convert(value: Any, _attr: str, _obj: Any, nested: Any = nested, many: bool = many) -> Any:
                if value is None:
                    return None
                return [nested(each) for each in value] if many else nested(value)
        else:
            convert = writer._serialize  # noqa: SLF001 - what Field.serialize calls once it has the value
        steps.append((key, name, attribute, declared.dump_default, convert))

    def dump(obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, name, attribute, default, convert in steps:
            value = _value_of(obj, attribute)
            if value is missing:
                value = default() if callable(default) else default
                if value is missing:
                    continue
            out[key] = convert(value, name, obj)
        return out

    return dump


@functools.cache
def dumper(schema: type[Schema]) -> Callable[[Any], Any]:
    """``schema().dump`` for an answer, compiled once per schema and process: for each field, where its value is
    read and how it is written, decided once instead of for every field of every object dumped (marshmallow's
    dispatch was a sixth of a payment detail request, whose forty-odd nested fields it resolved one by one).
    The fields' own ``_serialize`` still writes each value, so formats stay those of ``schemas.py``; a schema
    this cannot compile keeps marshmallow's dump. The test suite checks every answer against marshmallow's."""
    return _compile(shared(schema)) or shared(schema).dump


def read_body(schema: type[Schema]) -> dict[str, Any]:
    """The request body, parsed and validated by ``schema`` (once per request)."""
    return _once(schema, lambda: load(schema, parse_json_body()))


# A JSON body up to this size is read and validated before the bearer token is (``_read_early``): a payment's is
# about 200 bytes, a reason's less. Small, so that the work done before the 401 of a stranger's token stays small.
EARLY_BODY_LIMIT = 2 * 1024


def _read_early(schema: type[Schema]) -> None:
    """Work out ``read_body(schema)`` ahead of the request's first statement, keeping its refusal for the view.

    On SQLite a writing request's first statement (the token's look-up) takes the database's one writer lock, held
    to the commit: parsed and validated before it, the body no longer keeps the other writers waiting. A body the
    view then reads comes from here; its refusal is raised where the view reads it, after the 401/403/404 checks,
    as before. Only a request that carries a bearer token and a small JSON body of declared length, within the
    request's size limit, is read this early: a request without a token gets its 401 without its body read, and a
    large body, a file upload or a body sent without a length is read by the view when it is allowed to."""
    length = request.content_length
    if (length is None or length > min(EARLY_BODY_LIMIT, request.max_content_length or EARLY_BODY_LIMIT)
            or not _declared_json(request.mimetype) or _bearer_token() is None):
        return
    try:
        read_body(schema)
    except DomainError:
        return  # kept by read_body for the view


def read_query(schema: type[Schema]) -> dict[str, Any]:
    """The query string, validated by ``schema``."""
    return load(schema, request.args.to_dict())


def _bearer_token() -> str | None:
    """The token of the request's ``Authorization: Bearer`` header, if it has one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def bearer_user() -> User:
    """The user behind the request's bearer token; 401 otherwise."""
    token = _bearer_token()
    if token is None:
        raise Unauthenticated()
    found = auth_service.user_for_token(token)
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
    uploads: str | None = None,
    body_type: str | None = None,
    body_read_early: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap a view: authenticate, call, dump through ``response``, commit once.

    The view reads its body and query with ``read_body``/``read_query`` itself, after its 404/403/409 checks,
    so that the SPEC's order of checks holds; ``body`` and ``query`` here document them, ``headers`` the
    request headers it reads (OpenAPI parameter objects). A small JSON body is worked out as ``read_body(body)``
    before the token is read (``_read_early``); a view that reads its body otherwise (batch entry's rows, each
    checked on its own) says ``body_read_early=False``, so that the work is not done twice.
    """
    doc = EndpointDoc(summary, body, query, response, status, auth, errors, content_type, headers=headers,
                      alternatives=alternatives, uploads=uploads, body_type=body_type)

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(**kwargs: Any) -> Any:
            if auth and body is not None and body_read_early:
                _read_early(body)
            if auth:
                bearer_user()
            result = view(**kwargs)
            payload = result if isinstance(result, Response) or response is None else dumper(response)(result)
            # Every request ends with a commit, read-only ones too: psycopg forgets its prepared statements at every
            # ROLLBACK (PostgreSQL would then plan each statement again). A read-only request runs in autocommit
            # mode there (duesflow._postgresql_setup), so its commit sends nothing.
            db.session.commit()
            access_log.write_pending()
            if isinstance(payload, Response):
                return payload
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


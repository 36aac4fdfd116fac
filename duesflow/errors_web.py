"""One place that turns errors into answers: the SPEC's JSON under /api, a Chinese page elsewhere."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, Response, render_template, request
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .errors import (
    AlreadyExists,
    DomainError,
    InvalidTransition,
    MalformedRequest,
    MethodNotAllowed,
    NotFound,
    RequestTooLarge,
    ServiceBusy,
)
from .extensions import db

log = logging.getLogger(__name__)

# An 18-character resident ID number and an 11-digit mobile number, wherever they stand in a text.
_PERSONAL_NUMBERS = re.compile(
    r"(?<![0-9])(?P<id_head>[0-9]{6})[0-9]{8}(?P<id_tail>[0-9]{3}[0-9Xx])(?![0-9A-Za-z])"
    r"|(?<![0-9])(?P<phone_head>1[3-9][0-9])[0-9]{4}(?P<phone_tail>[0-9]{4})(?![0-9])"
)


# Both hold a run of eleven digits; a text without one (nearly every log line) is left without the full scan,
# whose look-behinds cost ten times as much (a request's log line is masked on every request).
_ELEVEN_DIGITS = re.compile(r"[0-9]{11}")


def mask_personal_numbers(text: str) -> str:
    """``text`` with every resident ID and mobile number masked as the pages show them."""
    if _ELEVEN_DIGITS.search(text) is None:
        return text

    def masked(match: re.Match[str]) -> str:
        if match.group("id_head"):
            return f"{match.group('id_head')}{'*' * 8}{match.group('id_tail')}"
        return f"{match.group('phone_head')}****{match.group('phone_tail')}"

    return _PERSONAL_NUMBERS.sub(masked, text)


class _MaskPersonalNumbers(logging.Filter):
    """An unexpected error's message or traceback may quote what a client sent: mask it before any handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask_personal_numbers(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_personal_numbers(logging.Formatter().formatException(record.exc_info))
        return True


log.addFilter(_MaskPersonalNumbers())


class InternalError(DomainError):
    status, code, default_message = 500, "internal_error", "服务器内部错误，已记录，请联系管理员。"


def _answer(error: DomainError) -> Any:
    if request.path.startswith("/api/") or request.path == "/healthz":
        response = Response(
            __import__("json").dumps(error.to_json(), ensure_ascii=False), status=error.status,
            mimetype="application/json",
        )
    else:
        response = _error_page(error)
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def _error_page(error: DomainError) -> Response:
    """The Chinese error page; plain text when the page itself cannot be rendered, so that handling an error
    never raises a second one (the client gets an answer, never a dropped connection)."""
    try:
        return Response(render_template("error.html", error=error), status=error.status, mimetype="text/html")
    except Exception:  # a missing or broken template: the answer must still go out
        log.exception("the error page could not be rendered")
        return Response(f"无法完成请求（{error.status}）：{error.message}\n", status=error.status,
                        mimetype="text/plain")


def register(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(error: DomainError) -> Any:
        db.session.rollback()
        return _answer(error)

    @app.errorhandler(StaleDataError)
    def lost_race(_error: StaleDataError) -> Any:
        # Another request changed the payment between our read and our write: it won.
        db.session.rollback()
        return _answer(InvalidTransition("该款项刚被他人处理，请刷新后再试。"))

    @app.errorhandler(IntegrityError)
    def integrity(_error: IntegrityError) -> Any:
        db.session.rollback()
        return _answer(AlreadyExists("与已有记录冲突（可能是同时提交），请刷新后再试。"))

    @app.errorhandler(OperationalError)
    def busy(error: OperationalError) -> Any:
        db.session.rollback()
        log.warning("database unavailable: %s", error.orig)
        return _answer(ServiceBusy(headers={"Retry-After": "1"}))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        db.session.rollback()
        if isinstance(error, RequestEntityTooLarge):
            return _answer(RequestTooLarge())
        if error.code == 404:
            return _answer(NotFound())
        if error.code == 405:
            allowed = ", ".join(getattr(error, "valid_methods", None) or [])
            return _answer(MethodNotAllowed(headers={"Allow": allowed} if allowed else None))
        mapped = DomainError(error.description)
        mapped.status = error.code or 400  # type: ignore[misc]
        if mapped.status == 400:
            return _answer(MalformedRequest(error.description))
        return _answer(mapped)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Any:
        db.session.rollback()
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _answer(InternalError())

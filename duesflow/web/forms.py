"""HTML forms on top of the API's marshmallow schemas: a submitted form is turned into the JSON body the API
would receive and validated by the same schema, so no rule is written twice. Errors come back per field."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flask import request
from marshmallow import Schema

from ..api.framework import load
from ..errors import (
    AmountAboveMaximum,
    AmountBelowMinimum,
    DirectPaymentRefused,
    DomainError,
    InvalidAmount,
    RegularDuesUnpaid,
    ValidationFailed,
)

# How a form field becomes a JSON value: "text" drops a blank, "optional" sends a blank as null, "int" parses
# digits, "check" is a checkbox (true when sent), "secret" is a password (never stripped).
FieldKind = str

# Errors a service raises without naming a field, and the field of the form they belong next to.
_FIELD_OF_ERROR: dict[type[DomainError], str] = {
    InvalidAmount: "amount",
    AmountBelowMinimum: "amount",
    AmountAboveMaximum: "amount",
    RegularDuesUnpaid: "regular_dues_paid",
    DirectPaymentRefused: "member_id",
}

# marshmallow's own messages (the API keeps them as they are), in the pages' language.
_TRANSLATIONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(Missing data for required field|Field may not be null)\.$"), "此项必填。"),
    (re.compile(r"^Shorter than minimum length 1\.$"), "此项必填。"),
    (re.compile(r"^Length must be between 1 and (\d+)\.$"), r"此项必填，且不能超过 \1 个字符。"),
    (re.compile(r"^Length must be between (\d+) and (\d+)\.$"), r"长度须为 \1 到 \2 个字符。"),
    (re.compile(r"^Longer than maximum length (\d+)\.$"), r"不能超过 \1 个字符。"),
    (re.compile(r"^Not a valid integer\.$"), "请选择或填写有效的编号。"),
    (re.compile(r"^Not a valid email address\.$"), "电子邮件地址格式不正确。"),
    (re.compile(r"^Must be one of: .*$"), "请从所列选项中选择。"),
    (re.compile(r"^Must be greater than or equal to .*$"), "请选择或填写有效的编号。"),
    (re.compile(r"^Unknown field\.$"), "不接受此项。"),
]


def _translated(message: str) -> str:
    for pattern, replacement in _TRANSLATIONS:
        if pattern.match(message):
            return pattern.sub(replacement, message)
    return message


def _flatten(messages: Any) -> list[str]:
    if isinstance(messages, str):
        return [_translated(messages)]
    if isinstance(messages, dict):
        return [text for value in messages.values() for text in _flatten(value)]
    return [text for value in messages for text in _flatten(value)]


def form_body(kinds: dict[str, FieldKind]) -> dict[str, Any]:
    """The submitted form as the JSON object the API schema reads."""
    body: dict[str, Any] = {}
    for name, kind in kinds.items():
        raw = request.form.get(name)
        if kind == "check":
            body[name] = raw is not None
            continue
        if raw is None:
            continue
        text = raw if kind == "secret" else raw.strip()
        if text == "":
            if kind == "optional":
                body[name] = None
            continue
        body[name] = int(text) if kind == "int" and text.isdigit() and len(text) < 12 else text
    return body


def validated(schema: type[Schema], kinds: dict[str, FieldKind]) -> dict[str, Any]:
    """The form, validated by the API's ``schema`` (raises the same 422 errors, with ``fields``)."""
    return load(schema, form_body(kinds))


@dataclass(frozen=True)
class FormProblem:
    """What a page shows when a form was refused: a banner and the messages next to the fields."""

    message: str
    status: int
    fields: dict[str, list[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return True


def problem(error: DomainError) -> FormProblem:
    """Turn a domain error into the banner and per-field messages of a form."""
    fields = {name: _flatten(messages) for name, messages in (error.fields or {}).items()}
    message = error.message
    owner = _FIELD_OF_ERROR.get(type(error))
    if owner is not None:
        fields[owner] = [error.message]
        message = "请按下面标出的提示更正后再提交。"
    elif fields and error.message == ValidationFailed.default_message:
        message = "请按下面标出的提示更正后再提交。"
    return FormProblem(message=message, status=error.status, fields=fields)

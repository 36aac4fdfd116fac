"""HTML forms on top of the API's marshmallow schemas: a submitted form is turned into the JSON body the API
would receive and validated by the same schema, so no rule is written twice. Errors come back per field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import request
from marshmallow import Schema

from ..errors import DomainError, ValidationFailed
from ..messages import field_messages, owner_field
from ..schemas import load

# How a form field becomes a JSON value: "text" drops a blank, "optional" sends a blank as null, "int" parses
# digits, "check" is a checkbox (true when sent), "secret" is a password (never stripped).
FieldKind = str

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
    fields = field_messages(error)
    message = error.message
    if owner_field(error) is not None or fields and error.message == ValidationFailed.default_message:
        message = "请按下面标出的提示更正后再提交。"
    return FormProblem(message=message, status=error.status, fields=fields)

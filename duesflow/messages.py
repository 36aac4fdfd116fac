"""The messages of a refused input as people read them: marshmallow's messages in the pages' language, and the
field an error that names none belongs to. Used by the pages and by the spreadsheet imports (views and services
alike), so it lives below both."""

from __future__ import annotations

import re
from typing import Any

from .errors import (
    AmountAboveMaximum,
    AmountBelowMinimum,
    DirectPaymentRefused,
    DomainError,
    InvalidAmount,
    RegularDuesUnpaid,
)

# Errors a service raises without naming a field, and the field of the form they belong next to.
FIELD_OF_ERROR: dict[type[DomainError], str] = {
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


def owner_field(error: DomainError) -> str | None:
    """The field an error that names none belongs next to (an amount error: ``amount``), or None."""
    return FIELD_OF_ERROR.get(type(error))


def field_messages(error: DomainError) -> dict[str, list[str]]:
    """The error's messages per field, translated and flat; an error that names no field is put at its owner."""
    fields = {name: _flatten(messages) for name, messages in (error.fields or {}).items()}
    owner = owner_field(error)
    if owner is not None:
        fields[owner] = [error.message]
    return fields

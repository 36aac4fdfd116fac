"""The messages of a refused input as people read them, flat per field (``schemas.load`` has already put
marshmallow's messages in Chinese), and the field an error that names none belongs to. Used by the pages and by
the spreadsheet imports (views and services alike), so it lives below both."""

from __future__ import annotations

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

def _flatten(messages: Any) -> list[str]:
    if isinstance(messages, str):
        return [messages]
    if isinstance(messages, dict):
        return [text for value in messages.values() for text in _flatten(value)]
    return [text for value in messages for text in _flatten(value)]


def owner_field(error: DomainError) -> str | None:
    """The field an error that names none belongs next to (an amount error: ``amount``), or None."""
    return FIELD_OF_ERROR.get(type(error))


def field_messages(error: DomainError) -> dict[str, list[str]]:
    """The error's messages per field, flat; an error that names no field is put at its owner."""
    fields = {name: _flatten(messages) for name, messages in (error.fields or {}).items()}
    owner = owner_field(error)
    if owner is not None:
        fields[owner] = [error.message]
    return fields

"""Payments as the API shows them, read as rows: the payment, its member, grassroots and holder orgs and its
latest receipt with that version's delivery in one statement; its events in another.

The ORM loads a payment for changing it (``permissions.visible_payment_or_404``); what is only shown is read
here, where each statement is built once per process: a detail request spent more time building, hashing and
loading its statements through the ORM (three of them for the payment alone) than the database spent running
them (BENCHMARKS.md, "Where the time goes").
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, bindparam, func, select
from sqlalchemy.orm import aliased

from .. import permissions
from ..errors import NotFound
from ..extensions import db
from ..models import Event, Member, Org, Payment, Receipt, ReceiptDelivery, User

_GRASSROOTS, _HOLDER, _FROM, _TO = aliased(Org), aliased(Org), aliased(Org), aliased(Org)
_EARLIER_RECEIPT = aliased(Receipt)
# A payment shows its latest receipt (voided or not); a reissue or a void adds a row, never changes the number.
_LATEST_RECEIPT_ID = (
    select(func.max(_EARLIER_RECEIPT.id)).where(_EARLIER_RECEIPT.payment_id == Payment.id)
    .correlate(Payment).scalar_subquery()
)

PAYMENT_ROWS: Select[Any] = (
    select(
        Payment.id, Payment.state, Payment.amount, Payment.collected_on, Payment.method, Payment.note,
        Payment.member_id, Member.name.label("member_name"),
        Payment.grassroots_org_id, _GRASSROOTS.name.label("grassroots_org_name"),
        Payment.holder_org_id, _HOLDER.name.label("holder_org_name"),
        Payment.path, Payment.created_at, Payment.updated_at,
        Receipt.id.label("receipt_id"), Receipt.number.label("receipt_number"),
        Receipt.verification_code.label("receipt_verification_code"),
        Receipt.issued_on.label("receipt_issued_on"), Receipt.version.label("receipt_version"),
        Receipt.voided.label("receipt_voided"), ReceiptDelivery.delivered_on.label("receipt_delivered_on"),
    )
    .join(Member, Member.id == Payment.member_id)
    .join(_GRASSROOTS, _GRASSROOTS.id == Payment.grassroots_org_id)
    .join(_HOLDER, _HOLDER.id == Payment.holder_org_id)
    .outerjoin(Receipt, Receipt.id == _LATEST_RECEIPT_ID)
    .outerjoin(ReceiptDelivery, and_(ReceiptDelivery.receipt_id == Receipt.id,
                                     ReceiptDelivery.version == Receipt.version))
)
"""Every payment column a view shows, with the names of ``Payment``'s attributes where it has them (so the
permission checks that read ``state``, ``holder_org_id``, ``member_id`` or ``path`` take a row as well)."""

PaymentRow = Row[Any]


def payment_rows(where: ColumnElement[bool]) -> Select[Any]:
    """``PAYMENT_ROWS`` of the payments ``where`` admits (a list adds its order and page)."""
    return PAYMENT_ROWS.where(where)


@functools.cache
def _one_payment(role: str) -> Select[Any]:
    return PAYMENT_ROWS.where(Payment.id == bindparam("payment_id"), permissions.prepared_payment_visibility(role))


def visible_payment_row_or_404(user: User, payment_id: int) -> PaymentRow:
    """The payment's row if ``user`` may see it; 404 whether it is unknown or merely invisible (as
    ``permissions.visible_payment_or_404``, which loads the payment for a change)."""
    row = db.session.execute(
        _one_payment(user.role), {"payment_id": payment_id, **permissions.viewer_parameters(user)}
    ).one_or_none()
    if row is None:
        raise NotFound("未找到该款项。")
    return row


_EVENT_ROWS = (
    select(
        Event.action, Event.from_state, Event.to_state, Event.from_org_id, _FROM.name.label("from_org_name"),
        Event.to_org_id, _TO.name.label("to_org_name"), Event.actor_id, User.username.label("actor_username"),
        Event.note, Event.at,
    )
    .join(User, User.id == Event.actor_id)
    .outerjoin(_FROM, _FROM.id == Event.from_org_id)
    .join(_TO, _TO.id == Event.to_org_id)
    .where(Event.payment_id == bindparam("payment_id"))
    .order_by(Event.id)
)


def event_rows(payment_id: int) -> list[Row[Any]]:
    """The payment's events, oldest first, with their orgs' names and the actor's username."""
    return list(db.session.execute(_EVENT_ROWS, {"payment_id": payment_id}))

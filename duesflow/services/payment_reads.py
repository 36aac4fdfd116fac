"""Payments as the API shows them, read as rows: the payment, its member, grassroots and holder orgs and its
latest receipt with that version's delivery in one statement; for a detail its events join it (a row per event),
for a download the receipt's stored document does; a page of a list is one statement too.

The ORM loads a payment for changing it (``permissions.visible_payment_or_404``); what is only shown is read
here, where each statement is built once per process: a detail request spent more time building, hashing and
loading its statements through the ORM (three of them for the payment alone) than the database spent running
them (BENCHMARKS.md, "Where the time goes").
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Row, Select, bindparam, func, select
from sqlalchemy.orm import aliased

from .. import permissions
from ..errors import NotFound
from ..extensions import db
from ..models import Event, Member, Org, Payment, Receipt, ReceiptDelivery, ReceiptDocument, User

_FROM, _TO = aliased(Org), aliased(Org)
_EARLIER_RECEIPT = aliased(Receipt)
# A payment shows its latest receipt, voided or not: a confirmation after a void adds a row with a new number.
_LATEST_RECEIPT_ID = (
    select(func.max(_EARLIER_RECEIPT.id)).where(_EARLIER_RECEIPT.payment_id == Payment.id)
    .correlate(Payment).scalar_subquery()
)


def _name_of(model: Any, key: Any) -> Any:
    """The ``name`` of the ``model`` row whose id is ``key``, as a scalar subquery of the payment's row."""
    return select(model.name).where(model.id == key).correlate(Payment).scalar_subquery()


# The names and the delivery are scalar subqueries, not joins: each is planned on its own, where a join of all
# seven tables made PostgreSQL weigh every join order, and it plans a list's page anew on every request at a
# million payments (~1.2 ms of planning for 0.1 ms of work; BENCHMARKS.md, "Lists").
_COLUMNS = (
    Payment.id, Payment.state, Payment.amount, Payment.collected_on, Payment.method, Payment.note,
    Payment.member_id, _name_of(Member, Payment.member_id).label("member_name"),
    Payment.grassroots_org_id, _name_of(Org, Payment.grassroots_org_id).label("grassroots_org_name"),
    Payment.holder_org_id, _name_of(Org, Payment.holder_org_id).label("holder_org_name"),
    Payment.path, Payment.created_at, Payment.updated_at,
    Receipt.id.label("receipt_id"), Receipt.number.label("receipt_number"),
    Receipt.verification_code.label("receipt_verification_code"),
    Receipt.issued_on.label("receipt_issued_on"), Receipt.version.label("receipt_version"),
    Receipt.voided.label("receipt_voided"),
    select(ReceiptDelivery.delivered_on)
    .where(ReceiptDelivery.receipt_id == Receipt.id, ReceiptDelivery.version == Receipt.version)
    .correlate(Receipt).scalar_subquery().label("receipt_delivered_on"),
)


def _shown_with(rows: Select[Any]) -> Select[Any]:
    """``rows`` (which select from payments) joined to the latest receipt a payment is shown with."""
    return rows.outerjoin(Receipt, Receipt.id == _LATEST_RECEIPT_ID)


PAYMENT_ROWS: Select[Any] = _shown_with(select(*_COLUMNS).select_from(Payment))
"""Every payment column a view shows, with the names of ``Payment``'s attributes where it has them (so the
permission checks that read ``state``, ``holder_org_id``, ``member_id`` or ``path`` take a row as well)."""

PaymentRow = Row[Any]


def page_rows(page_ids: Select[Any]) -> Select[Any]:
    """``PAYMENT_ROWS`` of one page, newest first: ``page_ids`` selects the page's payment ids (from payments alone,
    ordered and limited by ``pagination.page`` or ``merged_page``), and only those are joined. Joined first,
    SQLite joined every payment of a district (10,000 at a million) before it sorted them and kept fifty."""
    chosen = page_ids.subquery("page")
    return _shown_with(select(*_COLUMNS).select_from(chosen).join(Payment, Payment.id == chosen.c.id)).order_by(
        Payment.created_at.desc(), Payment.id.desc())


@functools.cache
def _one_payment(role: str, *, with_events: bool = False, with_document: bool = False) -> Select[Any]:
    found = PAYMENT_ROWS.where(Payment.id == bindparam("payment_id"), permissions.prepared_payment_visibility(role))
    if with_document:
        # The receipt's stored PDF, whatever its fingerprint: services.receipt_documents decides whether it still
        # matches, and a download needs no second statement (a round trip on PostgreSQL) to find out.
        return found.add_columns(
            ReceiptDocument.fingerprint.label("document_fingerprint"), ReceiptDocument.pdf.label("document_pdf")
        ).outerjoin(ReceiptDocument, ReceiptDocument.receipt_id == Receipt.id)
    if not with_events:
        return found
    # One row per event, the payment's columns repeated: a round trip less than a second statement (PostgreSQL).
    return (
        found.add_columns(
            Event.action.label("event_action"), Event.from_state.label("event_from_state"),
            Event.to_state.label("event_to_state"), Event.from_org_id.label("event_from_org_id"),
            _FROM.name.label("event_from_org_name"), Event.to_org_id.label("event_to_org_id"),
            _TO.name.label("event_to_org_name"), Event.actor_id.label("event_actor_id"),
            User.username.label("event_actor_username"),
            User.display_name.label("event_actor_display_name"), Event.note.label("event_note"),
            Event.at.label("event_at"),
        )
        .outerjoin(Event, Event.payment_id == Payment.id)
        .outerjoin(User, User.id == Event.actor_id)
        .outerjoin(_FROM, _FROM.id == Event.from_org_id)
        .outerjoin(_TO, _TO.id == Event.to_org_id)
        .order_by(Event.id)
    )


def _rows_or_404(user: User, payment_id: int, *, with_events: bool = False,
                 with_document: bool = False) -> list[PaymentRow]:
    db.session.flush()  # what the request changed is in its rows; then Core on the session's connection, without
    # the ORM's result pipeline around a statement that loads no objects
    rows = db.session.connection().execute(
        _one_payment(user.role, with_events=with_events, with_document=with_document),
        {"payment_id": payment_id, **permissions.viewer_parameters(user)},
    ).all()
    if not rows:
        raise NotFound("未找到该款项。")
    return rows


def visible_payment_row_or_404(user: User, payment_id: int) -> PaymentRow:
    """The payment's row if ``user`` may see it; 404 whether it is unknown or merely invisible (as
    ``permissions.visible_payment_or_404``, which loads the payment for a change)."""
    return _rows_or_404(user, payment_id)[0]


def visible_payment_with_document_or_404(user: User, payment_id: int) -> PaymentRow:
    """The payment's row with its latest receipt's stored document (``document_fingerprint`` and
    ``document_pdf``, None when none is stored); 404 as ``visible_payment_row_or_404``."""
    return _rows_or_404(user, payment_id, with_document=True)[0]


def visible_payment_with_events_or_404(user: User, payment_id: int) -> tuple[PaymentRow, list[PaymentRow]]:
    """The payment's row and its events, oldest first, each with its orgs' names and its actor's username (the
    ``event_`` columns of one row per event); 404 as ``visible_payment_row_or_404``."""
    rows = _rows_or_404(user, payment_id, with_events=True)
    return rows[0], [row for row in rows if row.event_action is not None]

"""Payments: record, list, read, correct, act; the receipt PDF, its reissue and void; the collection slip."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import current_app, request
from sqlalchemy import select

from .. import permissions, schemas
from ..errors import (
    AmountAboveMaximum,
    AmountBelowMinimum,
    DirectPaymentRefused,
    Forbidden,
    FundsNotReceived,
    IdempotencyConflict,
    InvalidAmount,
    InvalidTransition,
    NotFound,
    RegularDuesUnpaid,
    ValidationFailed,
)
from ..extensions import db
from ..models import Payment, User
from ..pagination import merged_page, page, split
from ..services import idempotency, payment_reads, receipt_documents
from ..services.idempotency import MAX_KEY_LENGTH
from ..services.payments import PaymentInput, act, correct_payment, record
from ..services.receipts import change_receipt
from ..workflow import TRANSITIONS, Action, ReceiptChange, Role
from . import bp
from .framework import current_user, dumper, endpoint, parse_json_body, read_body, read_query
from .presenters import payment_view

PAYMENT_ROLES = (Role.CLERK, Role.REVIEWER, Role.CENTRAL, Role.MEMBER)
IDEMPOTENCY_KEY_HEADER = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
    "description": "A replay with the same key and body returns the first response and creates nothing; one "
                   "that arrives while the first is in flight waits for it (at most 10 s, then 409 "
                   "idempotency_conflict); the same key with another body: 409 idempotency_conflict.",
}


def _payment_roles_only(user: User) -> None:
    """Admins manage orgs and accounts only: every payment endpoint is 403 for them."""
    if user.role not in PAYMENT_ROLES:
        raise Forbidden("管理员不处理款项。")


def detail(payment_id: int, user: User) -> dict[str, Any]:
    """The payment with its events, as ``user`` sees it (also the answer of every action on it)."""
    row, events = payment_reads.visible_payment_with_events_or_404(user, payment_id)
    return payment_view(row, user, events=events)


def _recorded(user: User) -> dict[str, Any]:
    """Record the request's payment; its view is made from what was written, not read back."""
    return payment_view(record(user, PaymentInput(**read_body(schemas.PaymentCreate))), user)


@bp.post("/payments")
@endpoint(
    summary="Record a payment collected by the grassroots committee (clerk)",
    body=schemas.PaymentCreate,
    response=schemas.PaymentOut,
    status=201,
    errors=(Forbidden, DirectPaymentRefused, InvalidAmount, AmountBelowMinimum, AmountAboveMaximum,
            RegularDuesUnpaid, IdempotencyConflict),
    headers=(IDEMPOTENCY_KEY_HEADER,),
)
def create_payment() -> Any:
    user = current_user()
    if user.role == Role.MEMBER:
        raise DirectPaymentRefused()
    permissions.require_role(user, Role.CLERK)
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return _recorded(user)
    claim = idempotency.claim(user, key, parse_json_body())
    if isinstance(claim, idempotency.Replay):
        return _replayed(claim)
    answer: list[str] = []

    def stored(payment: Any) -> tuple[idempotency.Write]:
        # the answer is made from what was written, before the event: its key row goes with the event's statement
        answer.append(_json_text(dumper(schemas.PaymentOut)(payment_view(payment, user))))
        return (idempotency.completion(claim, 201, answer[0]),)

    record(user, PaymentInput(**read_body(schemas.PaymentCreate)), also=stored)
    return current_app.response_class(answer[0], status=201, mimetype="application/json")


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _replayed(replay: idempotency.Replay) -> Any:
    return current_app.response_class(replay.body, status=replay.status, mimetype="application/json")


def answer_once(user: User, key: str, fingerprint: Any, status: int, produce: Callable[[], Any]) -> Any:
    """The answer of ``produce()`` (a JSON-ready value) for a request with an Idempotency-Key, stored with the work
    it describes; a replay of ``fingerprint`` under the same key gets the stored answer (SPEC §7)."""
    claim = idempotency.claim(user, key, fingerprint)
    if isinstance(claim, idempotency.Replay):
        return _replayed(claim)
    # The key row, the work and the stored answer commit together (the endpoint's one commit) or not at all.
    text = _json_text(produce())
    idempotency.complete(claim, status, text)
    return current_app.response_class(text, status=status, mimetype="application/json")


@bp.get("/payments")
@endpoint(summary="List visible payments, newest first (keyset pagination); holder=me is the inbox",
          query=schemas.PaymentQuery, response=schemas.PaymentPage, errors=(Forbidden,))
def list_payments() -> Any:
    user = current_user()
    _payment_roles_only(user)
    params = read_query(schemas.PaymentQuery)
    where = permissions.payment_visibility(user)
    if params.get("state"):
        where &= Payment.state == params["state"]
    ids = select(Payment.id).where(where)
    if params.get("holder") == "me":
        chosen = merged_page(ids, Payment, permissions.inbox_branches(user), params)
    else:
        chosen = page(ids, Payment, params)
    rows, next_cursor = split(list(db.session.execute(payment_reads.page_rows(chosen))), params["limit"])
    return {"items": [payment_view(payment, user) for payment in rows], "next_cursor": next_cursor}


@bp.get("/payments/<int:payment_id>")
@endpoint(summary="A payment with its events", response=schemas.PaymentDetail, errors=(NotFound, Forbidden))
def get_payment(payment_id: int) -> Any:
    user = current_user()
    _payment_roles_only(user)
    return detail(payment_id, user)


@bp.patch("/payments/<int:payment_id>")
@endpoint(summary="Correct amount, collection date or method (clerk; recorded or returned)",
          body=schemas.PaymentCorrect, response=schemas.PaymentDetail,
          errors=(NotFound, Forbidden, InvalidTransition, InvalidAmount, AmountBelowMinimum, AmountAboveMaximum))
def correct(payment_id: int) -> Any:
    user = current_user()
    _payment_roles_only(user)
    payment = permissions.visible_payment_or_404(user, payment_id)
    permissions.may_correct(user, payment)
    correct_payment(user, payment, read_body(schemas.PaymentCorrect))
    return detail(payment.id, user)


@bp.post("/payments/<int:payment_id>/<action>")
@endpoint(summary="Take a workflow action: submit, forward, return, reject, confirm, withdraw (a refund has its own "
                  "route)",
          body=schemas.ActionBody, response=schemas.PaymentDetail,
          errors=(NotFound, Forbidden, InvalidTransition, FundsNotReceived))
def act_on_payment(payment_id: int, action: str) -> Any:
    user = current_user()
    _payment_roles_only(user)
    payment = permissions.visible_payment_or_404(user, payment_id)
    try:
        chosen = Action(action)
    except ValueError:
        raise NotFound("没有这个操作。") from None
    permissions.check_action(user, payment, chosen)
    reason = read_body(schemas.ActionBody).get("reason")
    if TRANSITIONS[chosen].needs_reason and not reason:
        raise ValidationFailed(fields={"reason": ["请填写理由。"]})
    act(payment, chosen, user, reason=reason)
    return detail(payment.id, user)


@bp.get("/payments/<int:payment_id>/receipt.pdf")
@endpoint(summary="Download the commemorative receipt (member, central, orgs on the payment's path)",
          errors=(NotFound, Forbidden), content_type="application/pdf")
def receipt_pdf(payment_id: int) -> Any:
    user = current_user()
    _payment_roles_only(user)
    return receipt_pdf_response(user, payment_id)


def receipt_pdf_response(user: User, payment_id: int) -> Any:
    """The receipt PDF of a payment ``user`` can see; 404 when it has none or ``user`` may not download it.

    Shared by this API view (bearer token) and the page route (web session).
    """
    payment = payment_reads.visible_payment_with_document_or_404(user, payment_id)
    if payment.receipt_id is None or not permissions.may_download_receipt(user, payment):
        raise NotFound("该款项还没有收据。")
    return _pdf_response(receipt_documents.receipt_pdf(payment), f"receipt-{payment.receipt_number}.pdf")


def _pdf_response(pdf: bytes, filename: str) -> Any:
    """A PDF built for this request; never kept by a cache (it carries personal data)."""
    return current_app.response_class(
        pdf,
        mimetype="application/pdf",
        headers={"Cache-Control": "no-store", "Content-Disposition": f'inline; filename="{filename}"'},
    )


def _change_receipt(payment_id: int, change: ReceiptChange) -> Any:
    """Checks in the SPEC's order: 403 admin, 404 not visible, 403 not central, 409 no live receipt, 422 reason."""
    user = current_user()
    _payment_roles_only(user)
    payment = permissions.visible_payment_or_404(user, payment_id)
    permissions.check_receipt_change(user, payment, change)
    change_receipt(payment, change, user, reason=read_body(schemas.ReasonBody)["reason"])
    return detail(payment.id, user)


@bp.post("/payments/<int:payment_id>/receipt/reissue")
@endpoint(summary="Reissue a lost receipt (补发, central): same number, next version, new verification code",
          body=schemas.ReasonBody, response=schemas.PaymentDetail, errors=(NotFound, Forbidden, InvalidTransition))
def reissue_receipt(payment_id: int) -> Any:
    return _change_receipt(payment_id, ReceiptChange.REISSUE)


@bp.post("/payments/<int:payment_id>/receipt/void")
@endpoint(summary="Void a receipt confirmed in error (central): the payment returns to at_central",
          body=schemas.ReasonBody, response=schemas.PaymentDetail, errors=(NotFound, Forbidden, InvalidTransition))
def void_receipt(payment_id: int) -> Any:
    return _change_receipt(payment_id, ReceiptChange.VOID)


@bp.get("/payments/<int:payment_id>/slip.pdf")
@endpoint(summary="Print the collection slip (收款凭条) for the member: not the central receipt "
                  "(the collecting clerk)",
          errors=(NotFound, Forbidden), content_type="application/pdf")
def slip_pdf(payment_id: int) -> Any:
    user = current_user()
    _payment_roles_only(user)
    payment = permissions.visible_payment_or_404(user, payment_id)
    permissions.check_slip(user, payment)
    return _pdf_response(receipt_documents.slip_pdf(payment), f"slip-{payment.id}.pdf")


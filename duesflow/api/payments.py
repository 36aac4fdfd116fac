"""Payments: record, list, read, correct, act, and the receipt PDF."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .. import permissions, schemas
from ..errors import (
    AmountAboveMaximum,
    AmountBelowMinimum,
    DirectPaymentRefused,
    Forbidden,
    IdempotencyConflict,
    InvalidAmount,
    InvalidTransition,
    NotFound,
    RegularDuesUnpaid,
    ValidationFailed,
)
from ..extensions import db
from ..models import Event, Payment, User
from ..receipts.pdf import render_receipt_pdf
from ..services import idempotency, receipt_documents
from ..services.payments import PaymentInput, act, correct_payment, record_payment
from ..workflow import TRANSITIONS, Action, Role, actionable_states
from . import bp
from .framework import current_user, endpoint, parse_json_body, read_body, read_query
from .pagination import page, split
from .presenters import payment_view

PAYMENT_ROLES = (Role.CLERK, Role.REVIEWER, Role.CENTRAL, Role.MEMBER)


def _payment_roles_only(user: User) -> None:
    """Admins manage orgs and accounts only: every payment endpoint is 403 for them."""
    if user.role not in PAYMENT_ROLES:
        raise Forbidden("管理员不处理款项。")


def detail(payment: Payment, user: User) -> dict[str, Any]:
    events = list(
        db.session.scalars(select(Event).where(Event.payment_id == payment.id).order_by(Event.id))
    )
    return payment_view(payment, user, events=events)


@bp.post("/payments")
@endpoint(
    summary="Record a payment collected by the grassroots committee (clerk)",
    body=schemas.PaymentCreate,
    response=schemas.PaymentOut,
    status=201,
    errors=(Forbidden, DirectPaymentRefused, InvalidAmount, AmountBelowMinimum, AmountAboveMaximum,
            RegularDuesUnpaid, IdempotencyConflict),
)
def create_payment() -> Any:
    user = current_user()
    if user.role == Role.MEMBER:
        raise DirectPaymentRefused()
    permissions.require_role(user, Role.CLERK)
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return payment_view(record_payment(user, PaymentInput(**read_body(schemas.PaymentCreate))), user)
    raw_body = parse_json_body()
    claim = idempotency.claim(user, key, raw_body)
    if isinstance(claim, idempotency.Replay):
        return current_app.response_class(claim.body, status=claim.status, mimetype="application/json")
    claim_id = claim.id
    try:
        data = read_body(schemas.PaymentCreate)
        view = schemas.PaymentOut().dump(payment_view(record_payment(user, PaymentInput(**data)), user))
        text = json.dumps(view, ensure_ascii=False, separators=(",", ":"))
        idempotency.complete(claim, 201, text)
    except BaseException:
        idempotency.release(claim_id)
        raise
    db.session.commit()
    return current_app.response_class(text, status=201, mimetype="application/json")


@bp.get("/payments")
@endpoint(summary="List visible payments, newest first (keyset pagination); holder=me is the inbox",
          query=schemas.PaymentQuery, response=schemas.PaymentPage, errors=(Forbidden,))
def list_payments() -> Any:
    user = current_user()
    _payment_roles_only(user)
    params = read_query(schemas.PaymentQuery)
    query = select(Payment).where(permissions.payment_visibility(user))
    if params.get("state"):
        query = query.where(Payment.state == params["state"])
    if params.get("holder") == "me":
        query = query.where(
            Payment.holder_org_id == user.org_id,
            Payment.state.in_([s.value for s in actionable_states(Role(user.role))]),
        )
    query = page(query, Payment, params).options(
        selectinload(Payment.member), selectinload(Payment.grassroots_org), selectinload(Payment.holder_org)
    )
    rows, next_cursor = split(list(db.session.scalars(query)), params["limit"])
    return {"items": [payment_view(payment, user) for payment in rows], "next_cursor": next_cursor}


@bp.get("/payments/<int:payment_id>")
@endpoint(summary="A payment with its events", response=schemas.PaymentDetail, errors=(NotFound, Forbidden))
def get_payment(payment_id: int) -> Any:
    user = current_user()
    _payment_roles_only(user)
    return detail(permissions.visible_payment_or_404(user, payment_id), user)


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
    return detail(payment, user)


@bp.post("/payments/<int:payment_id>/<action>")
@endpoint(summary="Take a workflow action: submit, forward, return, reject, confirm, withdraw",
          body=schemas.ActionBody, response=schemas.PaymentDetail,
          errors=(NotFound, Forbidden, InvalidTransition))
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
    return detail(payment, user)


@bp.get("/payments/<int:payment_id>/receipt.pdf")
@endpoint(summary="Download the commemorative receipt (member, central, orgs on the payment's path)",
          errors=(NotFound, Forbidden), content_type="application/pdf")
def receipt_pdf(payment_id: int) -> Any:
    user = current_user()
    _payment_roles_only(user)
    payment = permissions.visible_payment_or_404(user, payment_id)
    receipt = payment.receipt
    if receipt is None or not permissions.may_download_receipt(user, payment):
        raise NotFound("该款项还没有收据。")
    pdf = render_receipt_pdf(receipt_documents.content_for(receipt), current_app.config["RECEIPT_FONT"])
    return current_app.response_class(
        pdf,
        mimetype="application/pdf",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'inline; filename="receipt-{receipt.number}.pdf"',
        },
    )


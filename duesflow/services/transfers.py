"""Transfer batches (汇总上缴, SPEC §9): payments moved up one level together, with one bank transfer of their
total; the receiving org records the money received; central confirms nothing whose money has not arrived."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, select

from .. import permissions
from ..errors import AmountMismatch, InvalidTransition, NotEligible
from ..extensions import db
from ..models import Payment, Transfer, TransferDiscrepancy, TransferItem, User, utcnow
from ..receipts.capitals import format_yuan
from ..workflow import STATE_NAMES, Action
from . import payments as payment_service

# One bank transfer, one printed list: a batch larger than this is a mistake, not a workload.
MAX_BATCH = 500


@dataclass(frozen=True)
class TransferInput:
    payment_ids: list[int]
    bank_reference: str
    note: str | None = None


def _next_org_id(payment: Payment) -> int:
    """The org one level up from the payment's holder, along its (fixed or about to be fixed) path."""
    path = payment_service.upward_path(payment)
    return path[path.index(payment.holder_org_id) + 1]


def _locked_payments(user: User, ids: list[int]) -> list[Payment]:
    """The visible payments among ``ids``, locked in id order: every transfer takes its rows in the same order, and
    before the audit chain's lock, so batches and single actions cannot deadlock on PostgreSQL."""
    query = (
        select(Payment)
        .where(Payment.id.in_(ids), permissions.payment_visibility(user))
        .order_by(Payment.id)
        .with_for_update(of=Payment)
        .execution_options(populate_existing=True)
    )
    return list(db.session.scalars(query))


def _why_not(user: User, payment: Payment | None, payment_id: int, action: Action) -> str | None:
    """Why the payment cannot travel in this batch, or None when it can."""
    if payment is None:
        return f"#{payment_id}（不存在或无权办理）"
    try:
        permissions.check_action(user, payment, action)
    except InvalidTransition:
        return f"#{payment.id}（{STATE_NAMES[payment.state]}，在{payment.holder_org.name}）"
    return None


def create_transfer(user: User, data: TransferInput) -> Transfer:
    """Move every payment up one level as ``submit``/``forward`` would, each with its own event naming the
    transfer, in the caller's transaction; 409 ``not_eligible`` (and nothing moves) if any one cannot go."""
    action = permissions.transfer_move(user)
    ids = sorted(set(data.payment_ids))
    found = {payment.id: payment for payment in _locked_payments(user, ids)}
    refused = [reason for payment_id in ids if (reason := _why_not(user, found.get(payment_id), payment_id, action))]
    if refused:
        raise NotEligible(f"以下款项不能由本单位汇总上缴：{'、'.join(refused)}。所选款项均未上缴。")
    payments = [found[payment_id] for payment_id in ids]
    destinations = {_next_org_id(payment) for payment in payments}
    if len(destinations) != 1:
        raise NotEligible("所选款项的上一级组织不同（转交路径在首次上报时已固定），不能合并为一笔上缴。"
                          "所选款项均未上缴。")
    transfer = Transfer(
        from_org_id=user.org_id,
        to_org_id=destinations.pop(),
        bank_reference=data.bank_reference,
        note=data.note,
        count=len(payments),
        total=sum((payment.amount for payment in payments), Decimal("0.00")),
        state="sent",
        created_by_id=user.id,
        created_at=utcnow(),
    )
    transfer.items = [TransferItem(payment_id=payment.id, amount=payment.amount) for payment in payments]
    db.session.add(transfer)
    db.session.flush()
    for payment in payments:
        payment_service.act(payment, action, user, reason=f"随汇总上缴单 #{transfer.id} 上缴",
                            details={"transfer_id": transfer.id})
    return transfer


def receive_transfer(user: User, transfer: Transfer, amount_received: Decimal) -> Transfer:
    """The receiving org records the money that arrived. Equal to the total: ``received``. Otherwise the
    discrepancy is added to the session and ``AmountMismatch`` raised: the caller commits the discrepancy
    before answering (the transfer itself stays ``sent``)."""
    permissions.check_receive(user, transfer)
    if amount_received != transfer.total:
        db.session.add(TransferDiscrepancy(
            transfer_id=transfer.id, amount_expected=transfer.total, amount_received=amount_received,
            recorded_by_id=user.id, recorded_at=utcnow(),
        ))
        db.session.flush()
        difference = amount_received - transfer.total
        raise AmountMismatch(
            f"实收 {format_yuan(amount_received)} 与上缴单合计 {format_yuan(transfer.total)} 不符"
            f"（{'多' if difference > 0 else '少'} {format_yuan(abs(difference))}），差额已登记；"
            "上缴单仍为待确认到账，请与上缴单位核对后重新登记。"
        )
    transfer.state = "received"
    transfer.amount_received = amount_received
    transfer.received_by_id = user.id
    transfer.received_at = utcnow()
    db.session.flush()  # the version check: of two receivers racing, one wins here
    return transfer


def visible_transfers(user: User, *, state: str | None = None, direction: str | None = None) -> Select[Any]:
    """The transfers ``user`` may see, ``state`` ``sent``/``received``, ``direction`` ``in`` (sent to the user's
    org) or ``out`` (sent from it); unordered, for the caller's pagination."""
    query = select(Transfer).where(permissions.transfer_visibility(user))
    if state:
        query = query.where(Transfer.state == state)
    if direction == "in":
        query = query.where(Transfer.to_org_id == user.org_id)
    elif direction == "out":
        query = query.where(Transfer.from_org_id == user.org_id)
    return query


def transfer_payments(transfer: Transfer) -> list[Payment]:
    """The payments of a transfer, in id order, with what their list shows loaded."""
    ids = [item.payment_id for item in transfer.items]
    return list(db.session.scalars(select(Payment).where(Payment.id.in_(ids)).order_by(Payment.id)))


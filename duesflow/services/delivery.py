"""Receipt delivery (SPEC §9): the receipt travels back down and the member signs the collection register
(领取登记) at the grassroots committee, whose clerk records it; what is not delivered yet is counted per org."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, func, select
from sqlalchemy.orm import selectinload

from .. import permissions
from ..errors import ValidationFailed
from ..extensions import db
from ..models import Org, Payment, Receipt, ReceiptDelivery, User, utcnow
from ..receipts.pdf import chinese_date
from ..timeutil import beijing_today
from ..workflow import State
from .audit import append_event


@dataclass(frozen=True)
class DeliveryInput:
    delivered_on: date
    signed_by: str


def record_delivery(user: User, payment: Payment, data: DeliveryInput) -> ReceiptDelivery:
    """Record that the live receipt was handed over and signed for; writes a ``deliver`` event."""
    permissions.check_delivery(user, payment)
    receipt = payment.receipt
    assert receipt is not None  # checked above
    if data.delivered_on > beijing_today():
        raise ValidationFailed(fields={"delivered_on": ["领取日期不能晚于今天（北京时间）。"]})
    if data.delivered_on < receipt.issued_on:
        raise ValidationFailed(fields={"delivered_on": ["领取日期不能早于收据开具日期。"]})
    payment.updated_at = utcnow()  # the payment's version check: of two clerks recording at once, one wins
    db.session.flush()
    delivery = ReceiptDelivery(version=receipt.version, delivered_on=data.delivered_on, signed_by=data.signed_by,
                               recorded_by_id=user.id)
    receipt.deliveries.append(delivery)  # the loaded collection, too, shows it at once
    append_event(
        payment, action="deliver", actor=user, from_state=payment.state, from_org_id=payment.holder_org_id,
        note=f"收据 {receipt.number} 已于{chinese_date(data.delivered_on)}由 {data.signed_by} 签收",
        details={"receipt_number": receipt.number, "version": receipt.version,
                 "delivered_on": data.delivered_on.isoformat(), "signed_by": data.signed_by},
    )
    return delivery


def _undelivered_clause():  # noqa: ANN202 - a SQLAlchemy expression
    """Receipted payments whose live receipt version has no delivery."""
    delivered = select(ReceiptDelivery.id).where(
        ReceiptDelivery.receipt_id == Receipt.id, ReceiptDelivery.version == Receipt.version).exists()
    return and_(Payment.state == State.RECEIPTED.value, Receipt.voided.is_(False), ~delivered)


def undelivered_counts(user: User) -> list[tuple[Org, int]]:
    """Per grassroots org of ``user``'s subtree, how many live receipts are not delivered yet (orgs with none are
    left out), by org name."""
    permissions.require_operations_role(user)
    rows = db.session.execute(
        select(Payment.grassroots_org_id, func.count())
        .join(Receipt, Receipt.payment_id == Payment.id)
        .where(permissions.payment_visibility(user), _undelivered_clause())
        .group_by(Payment.grassroots_org_id)
    ).all()
    orgs = {org.id: org for org in db.session.scalars(select(Org).where(Org.id.in_([r[0] for r in rows])))}
    return sorted(((orgs[org_id], count) for org_id, count in rows), key=lambda pair: (pair[0].name, pair[0].id))


@dataclass(frozen=True)
class RegisterLine:
    payment: Payment
    receipt: Receipt
    delivery: ReceiptDelivery | None


def register_lines(org: Org, *, undelivered_only: bool = False) -> list[RegisterLine]:
    """The collection register of a grassroots org: its live receipts in number order, each with its delivery."""
    query = (
        select(Payment, Receipt)
        .join(Receipt, Receipt.payment_id == Payment.id)
        .where(Payment.grassroots_org_id == org.id, Payment.state == State.RECEIPTED.value,
               Receipt.voided.is_(False))
        .order_by(Receipt.year, Receipt.sequence)
        .options(selectinload(Payment.member))
    )
    if undelivered_only:
        query = query.where(_undelivered_clause())
    return [RegisterLine(payment, receipt, receipt.delivery) for payment, receipt in db.session.execute(query)]

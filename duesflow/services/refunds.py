"""Money owed back (SPEC §9): a rejected payment is refunded to the member by the committee that collected it; a
refused direct remittance is returned to its sender by central. ``owed`` reports what is still owed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .. import permissions
from ..errors import ValidationFailed
from ..extensions import db
from ..models import DirectRemittance, Event, Payment, Refund, User
from ..receipts.pdf import chinese_date
from ..timeutil import beijing_today
from ..workflow import Action, Role, State
from .payments import act

# How the money went back, in words for the event's note (the same methods as collection).
REFUND_METHOD_NAMES = {"cash": "现金", "bank_transfer": "银行转账", "wechat": "微信支付", "alipay": "支付宝",
                       "other": "其他方式"}


@dataclass(frozen=True)
class RefundInput:
    refunded_on: date
    method: str
    reference: str | None = None


def refund_payment(user: User, payment: Payment, data: RefundInput) -> Refund:
    """The grassroots clerk records that a rejected payment's money went back to the member: ``refunded``, with
    its event, in the caller's transaction."""
    permissions.check_action(user, payment, Action.REFUND)
    if data.refunded_on > beijing_today():
        raise ValidationFailed(fields={"refunded_on": ["退还日期不能晚于今天（北京时间）。"]})
    if data.refunded_on < payment.collected_on:
        raise ValidationFailed(fields={"refunded_on": ["退还日期不能早于代收日期。"]})
    note = f"已于{chinese_date(data.refunded_on)}以{REFUND_METHOD_NAMES[data.method]}退还党员"
    if data.reference:
        note += f"（凭证号 {data.reference}）"
    act(payment, Action.REFUND, user, reason=note, details={
        "refunded_on": data.refunded_on.isoformat(), "method": data.method, "reference": data.reference,
    })
    refund = Refund(payment_id=payment.id, refunded_on=data.refunded_on, method=data.method,
                    reference=data.reference, recorded_by_id=user.id)
    db.session.add(refund)
    db.session.flush()
    return refund


@dataclass(frozen=True)
class OwedPayment:
    """A rejected payment not yet refunded, with who rejected it, when and why."""

    payment: Payment
    rejected_at: datetime | None
    reason: str | None


@dataclass(frozen=True)
class Owed:
    payments: list[OwedPayment]
    remittances: list[DirectRemittance]

    @property
    def payments_amount(self) -> Decimal:
        return sum((owed.payment.amount for owed in self.payments), Decimal("0.00"))

    @property
    def remittances_amount(self) -> Decimal:
        return sum((remittance.amount for remittance in self.remittances), Decimal("0.00"))


def owed(user: User) -> Owed:
    """What is still owed back over ``user``'s subtree: rejected payments not refunded, oldest rejection first;
    for central also the refused direct remittances not yet returned."""
    permissions.require_operations_role(user)
    payments = list(db.session.scalars(
        select(Payment)
        .where(permissions.payment_visibility(user), Payment.state == State.REJECTED.value)
        .order_by(Payment.updated_at, Payment.id)
        .options(selectinload(Payment.member), selectinload(Payment.grassroots_org),
                 selectinload(Payment.holder_org))
    ))
    rejections: dict[int, tuple[datetime, str | None]] = {}
    if payments:
        rows = db.session.execute(
            select(Event.payment_id, Event.at, Event.note)
            .where(Event.payment_id.in_([p.id for p in payments]), Event.action == Action.REJECT.value)
            .order_by(Event.id)
        )
        rejections = {payment_id: (at, note) for payment_id, at, note in rows}  # the latest rejection wins
    remittances: list[DirectRemittance] = []
    if user.role == Role.CENTRAL:
        remittances = list(db.session.scalars(
            select(DirectRemittance).where(DirectRemittance.state == "refused").order_by(DirectRemittance.id)
        ))
    return Owed(
        payments=[OwedPayment(p, *rejections.get(p.id, (None, None))) for p in payments],
        remittances=remittances,
    )

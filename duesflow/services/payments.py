"""Recording, correcting and moving payments along their path."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, insert, literal_column, select

from .. import permissions
from ..errors import (
    AmountAboveMaximum,
    AmountBelowMinimum,
    DirectPaymentRefused,
    DomainError,
    RegularDuesUnpaid,
    ValidationFailed,
)
from ..extensions import db
from ..models import Member, Org, Payment, User, utcnow
from ..money import MINIMUM_AMOUNT, format_amount
from ..timeutil import beijing_today
from ..workflow import Action, Position, Role, State, target
from . import arrival, notifications, receipts
from .audit import Write, append_event, insert_reserving


def check_amount(amount: Decimal) -> None:
    """The rule's minimum and the configured maximum (both inclusive)."""
    if amount < MINIMUM_AMOUNT:
        raise AmountBelowMinimum()
    if amount > current_app.config["MAX_AMOUNT"]:
        raise AmountAboveMaximum(
            f"金额超过系统允许的上限 {format_amount(current_app.config['MAX_AMOUNT'])} 元。"
        )


# The rule on voluntary extra dues dates from the 2008 regulation; nothing collected earlier belongs here.
EARLIEST_COLLECTION = date(2008, 1, 1)


def check_collected_on(collected_on: date) -> None:
    if collected_on > beijing_today():
        raise ValidationFailed(fields={"collected_on": ["代收日期不能晚于今天（北京时间）。"]})
    if collected_on < EARLIEST_COLLECTION:
        raise ValidationFailed(fields={"collected_on": ["代收日期不能早于2008年1月1日。"]})


@dataclass(frozen=True)
class PaymentInput:
    member_id: int
    amount: Decimal
    collected_on: date
    method: str
    regular_dues_paid: bool
    note: str | None = None


def check_regular_dues(paid: bool) -> None:
    if not paid:
        raise RegularDuesUnpaid()


# What every payment must satisfy once its body is well-formed, in the order a single recording checks them; a
# batch runs each one on every row to report all that is wrong.
PAYMENT_RULES: tuple[Callable[[PaymentInput], None], ...] = (
    lambda data: check_amount(data.amount),
    lambda data: check_regular_dues(data.regular_dues_paid),
    lambda data: check_collected_on(data.collected_on),
)

NO_SUCH_MEMBER = "本单位没有这名党员。"


def recording_org(clerk: User) -> Org:
    """The org a clerk records payments for: 403 for a member (direct payment) or another role, 422 when the org
    is deactivated."""
    if clerk.role == Role.MEMBER:
        raise DirectPaymentRefused()
    permissions.require_role(clerk, Role.CLERK)
    org = clerk.org
    assert org is not None
    if not org.active:
        raise ValidationFailed("本单位已停用，不能登记新的款项。")
    return org


@dataclass(frozen=True, slots=True)
class RecordedPayment:
    """A payment just recorded, with everything its view shows: the attributes of a ``payment_reads`` row, so that
    ``api.presenters.payment_view`` takes it as it is, without reading back what was just written."""

    id: int
    member_id: int
    member_name: str
    grassroots_org_id: int
    grassroots_org_name: str
    amount: Decimal
    collected_on: date
    method: str
    note: str | None
    created_at: datetime
    state: str = State.RECORDED.value
    path: list[int] | None = None
    receipt_id: None = None

    @property
    def holder_org_id(self) -> int:
        return self.grassroots_org_id

    @property
    def holder_org_name(self) -> str:
        return self.grassroots_org_name

    @property
    def updated_at(self) -> datetime:
        return self.created_at


_MEMBERS = Member.__table__
_PAYMENTS = Payment.__table__
_MEMBER_OF_ORG = select(_MEMBERS.c.id, _MEMBERS.c.name).where(
    _MEMBERS.c.id == bindparam("member_id"), _MEMBERS.c.org_id == bindparam("org_id"))
# The payment's columns given as parameters of the INSERT below (besides the member's id, which the row of
# ``members`` gives); the others stay NULL, as the ORM leaves them (``path``: until the first submit).
_GIVEN = [_PAYMENTS.c[name] for name in (
    "grassroots_org_id", "holder_org_id", "state", "amount", "collected_on", "method", "regular_dues_paid", "note",
    "created_by_id", "created_at", "updated_at", "version")]
# The member check and the payment in one statement: the row is inserted only when the member belongs to the
# org (no row back: not a member of it), and the member's name comes back with the new id.
_INSERT_PAYMENT = insert(_PAYMENTS).from_select(
    ["member_id", *(column.name for column in _GIVEN)],
    select(_MEMBERS.c.id, *(bindparam(column.name, type_=column.type) for column in _GIVEN)).where(
        _MEMBERS.c.id == bindparam("member_id"), _MEMBERS.c.org_id == bindparam("org_id")),
).returning(_PAYMENTS.c.id, literal_column(
    # written out: SQLAlchemy does not correlate a subquery of RETURNING with the table written to
    "(SELECT members.name FROM members WHERE members.id = payments.member_id)", type_=_MEMBERS.c.name.type,
).label("member_name"))


def _refusal(clerk: User, data: PaymentInput) -> DomainError | None:
    """What refuses a recording once its member is known to be the org's, in the order the checks run: the
    payment rules, then a deactivated org; None when nothing does."""
    try:
        for rule in PAYMENT_RULES:
            rule(data)
        recording_org(clerk)
    except DomainError as refused:
        return refused
    return None


def record(clerk: User, data: PaymentInput,
           also: Callable[[RecordedPayment], Sequence[Write]] | None = None) -> RecordedPayment:
    """A clerk records money collected from one of its org's members; writes the ``record`` event.

    The hot path of the service (SPEC §7, issue 15): the member check with the payment's INSERT (one statement,
    which on PostgreSQL also locks the audit chain and reserves the event's position), then the chain's lock, the
    event's INSERT and the head's UPDATE, in SQLAlchemy Core, since the ORM's unit of work for one new row cost
    more than the statements themselves. The checks keep their order (the
    member, the payment rules, the org): a request the rules or the org refuse reads the member first, so that a
    stranger's payment is still refused as such. ``also(payment)`` gives statements of the same transaction that
    go with the event's (the stored answer of an Idempotency-Key)."""
    if clerk.role == Role.MEMBER:
        raise DirectPaymentRefused()
    permissions.require_role(clerk, Role.CLERK)
    refused = _refusal(clerk, data)
    if refused is not None:
        if db.session.execute(_MEMBER_OF_ORG, {"member_id": data.member_id, "org_id": clerk.org_id}).first() is None:
            raise ValidationFailed(fields={"member_id": [NO_SUCH_MEMBER]})
        raise refused
    org = clerk.org
    assert org is not None
    now = utcnow()
    written, reserved = insert_reserving(_INSERT_PAYMENT, {
        "member_id": data.member_id, "org_id": org.id, "grassroots_org_id": org.id, "holder_org_id": org.id,
        "state": State.RECORDED.value, "amount": data.amount, "collected_on": data.collected_on,
        "method": data.method, "regular_dues_paid": True, "note": data.note, "created_by_id": clerk.id,
        "created_at": now, "updated_at": now, "version": 1,  # the ORM's first version_id
    }, org.id)
    if written is None:
        raise ValidationFailed(fields={"member_id": [NO_SUCH_MEMBER]})
    payment = RecordedPayment(written[0], data.member_id, written[1], org.id, org.name, data.amount,
                              data.collected_on, data.method, data.note, now)
    append_event(payment, action="record", actor=clerk, from_state=None, from_org_id=None,
                 details={"amount": format_amount(data.amount)}, also=also(payment) if also is not None else (),
                 reserved=reserved)
    return payment


def record_payment(clerk: User, data: PaymentInput) -> Payment:
    """``record``, giving the payment as a model (the pages, the demo and tests act on it next)."""
    payment = db.session.get(Payment, record(clerk, data).id)
    assert payment is not None
    return payment


CORRECTABLE_FIELDS = ("amount", "collected_on", "method")
CORRECTION_LABELS = {"amount": "金额", "collected_on": "代收日期", "method": "交纳方式"}


def _shown(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format_amount(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def correct_payment(clerk: User, payment: Payment, changes: dict[str, Any]) -> Payment:
    """Correct amount, collection date or method of a recorded or returned payment; writes ``correct``."""
    permissions.may_correct(clerk, payment)
    if "amount" in changes:
        check_amount(changes["amount"])
    if "collected_on" in changes:
        check_collected_on(changes["collected_on"])
    old = {name: _shown(getattr(payment, name)) for name in CORRECTABLE_FIELDS if name in changes}
    new = {name: _shown(changes[name]) for name in old}
    if old == new:
        return payment
    for name in old:
        setattr(payment, name, changes[name])
    payment.updated_at = utcnow()
    details: dict[str, Any] = {"old": old, "new": new}
    if "amount" in new:
        details["amount"] = new["amount"]
    summary = "；".join(f"{CORRECTION_LABELS[name]}：{old[name]} → {new[name]}" for name in old)
    append_event(
        payment, action="correct", actor=clerk, from_state=payment.state,
        from_org_id=payment.holder_org_id, note=f"更正 {summary}", details=details,
    )
    return payment


def _ancestor_path(org: Org) -> list[int]:
    """Org ids from ``org`` up to central."""
    return list(reversed(org.ancestor_ids))


def upward_path(payment: Payment) -> list[int]:
    """The payment's path: fixed at its first submit, or the one that submit will fix."""
    return payment.path or _ancestor_path(payment.grassroots_org)


def act(payment: Payment, action: Action, user: User, *, reason: str | None = None,
        details: dict[str, Any] | None = None) -> Payment:
    """Take a workflow action on a payment, writing its event (``details`` adds to it, e.g. the transfer);
    confirm also issues the receipt and queues the member's notification."""
    permissions.check_action(user, payment, action)
    if action is Action.CONFIRM:
        arrival.require_funds_received(payment)
    if action is Action.SUBMIT and payment.path is None:
        payment.path = upward_path(payment)
    path = payment.path or [payment.grassroots_org_id]  # withdrawn before ever being submitted
    here = Position(State(payment.state), path.index(payment.holder_org_id))
    there = target(action, here, path)
    from_state, from_org_id = payment.state, payment.holder_org_id
    payment.state = there.state.value
    payment.holder_org_id = path[there.holder_index]
    payment.updated_at = utcnow()
    details = dict(details or {})
    if action is Action.CONFIRM:
        db.session.flush()  # the version check settles the race before a receipt number is taken
        receipt = receipts.issue_receipt(payment)
        details["receipt_number"] = receipt.number
        notifications.queue_receipt_issued(payment, receipt)
    append_event(
        payment, action=action.value, actor=user, from_state=from_state, from_org_id=from_org_id,
        note=reason, details=details,
    )
    return payment


"""Whether a payment's money has reached central (SPEC §9): a payment that came into central in a transfer batch
may be confirmed only once that transfer was received. Below both the workflow actions (``payments.act`` asks it
before a confirmation) and the transfer batches (which move payments by ``payments.act``)."""

from __future__ import annotations

from sqlalchemy import select

from ..errors import FundsNotReceived
from ..extensions import db
from ..models import Event, Payment, Transfer
from ..workflow import Action, State


def arrival_transfer_id(payment: Payment) -> int | None:
    """The transfer the payment last reached central in, or None when it came by a plain forward."""
    details = db.session.scalars(
        select(Event.details)
        .where(Event.payment_id == payment.id, Event.to_state == State.AT_CENTRAL.value,
               Event.action.in_([Action.SUBMIT.value, Action.FORWARD.value]))
        .order_by(Event.id.desc())
        .limit(1)
    ).first()
    transfer_id = (details or {}).get("transfer_id")
    return transfer_id if isinstance(transfer_id, int) else None


def require_funds_received(payment: Payment) -> None:
    """409 ``funds_not_received`` when the payment came into central in a transfer whose money has not been
    recorded as received."""
    transfer_id = arrival_transfer_id(payment)
    if transfer_id is None:
        return
    state = db.session.scalar(select(Transfer.state).where(Transfer.id == transfer_id))
    if state != "received":
        raise FundsNotReceived(
            f"该款项随汇总上缴单 #{transfer_id} 转来，该单款项尚未确认到账，暂不能确认开具收据。"
        )

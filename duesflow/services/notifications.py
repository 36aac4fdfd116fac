"""The notification outbox (SPEC §9): the member is told when the receipt is issued.

The message is written in the transaction that issues the receipt (``queue_receipt_issued``), so it exists if
and only if the receipt does. Sending happens after commit (``deliver_due``): right after the request that
confirmed, and from ``flask --app duesflow send-notifications`` for anything left over. Each row is claimed with
one conditional UPDATE that is committed before the sender is called, so two senders never both send it; a
failed attempt is retried later, a bounded number of times; a claim whose sender died is taken over once its
lease has run out.

Unlike the other services this runner commits, in a session of its own: a claim must be on record before
anything is sent, and must never carry a caller's unfinished work with it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from flask import Flask, Response, current_app
from sqlalchemy import ColumnElement, and_, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..extensions import db
from ..mail import OutgoingMessage, Sender, sender_from_config
from ..models import Member, Notification, Org, Payment, Receipt, utcnow
from ..receipts.capitals import format_yuan
from ..receipts.pdf import chinese_date
from .receipts import ISSUER

log = logging.getLogger(__name__)

RECEIPT_ISSUED = "receipt_issued"
SENDER_EXTENSION = "duesflow.notification_sender"
# Ids of the rows this session queued, tried right after the request that wrote them.
_QUEUED = "duesflow.queued_notifications"


def _receipt_issued_message(member_name: str, org_name: str, amount: Decimal, collected_on: date, number: str,
                            issued_on: date) -> tuple[str, str]:
    """The subject and body telling a member a receipt was issued."""
    subject = f"您的自愿多交党费纪念收据已开具（{number}）"
    body = (
        f"{member_name}同志：\n\n"
        f"您于{chinese_date(collected_on)}通过{org_name}交纳的自愿多交党费"
        f" {format_yuan(amount)}，已由{ISSUER}确认收到，并于{chinese_date(issued_on)}开具纪念收据，"
        f"编号 {number}。\n\n"
        f"收据将经党组织逐级转交，由{org_name}交给您本人签收；"
        f"您也可以登录 {current_app.config['PUBLIC_URL']}/ 下载收据（PDF）。\n\n"
        f"{ISSUER}"
    )
    return subject, body


def queue_receipt_issued(payment: Payment, receipt: Receipt) -> Notification:
    """Write the member's message about the new receipt, in the caller's transaction. A member without an e-mail
    address gets it ``kept``: it is shown on the member's page only."""
    member = payment.member
    subject, body = _receipt_issued_message(member.name, payment.grassroots_org.name, payment.amount,
                                            payment.collected_on, receipt.number, receipt.issued_on)
    now = utcnow()
    notification = Notification(
        member_id=member.id, payment_id=payment.id, kind=RECEIPT_ISSUED, recipient=member.email,
        subject=subject, body=body, state="pending" if member.email else "kept", attempts=0,
        next_attempt_at=now, created_at=now,
    )
    db.session.add(notification)
    db.session.flush()
    db.session.info.setdefault(_QUEUED, []).append(notification.id)
    return notification


def queue_receipts_issued(numbers: dict[int, str], issued_on: date) -> None:
    """The messages of a bulk confirmation (payment id → receipt number), in the caller's transaction: one SELECT
    of what they show and one executemany INSERT. They are not tried right after the request (thousands of sends
    would hold its worker): ``send-notifications`` sends them."""
    if not numbers:
        return
    now = utcnow()
    shown = db.session.execute(
        select(Payment.id, Payment.member_id, Member.name, Member.email, Org.name, Payment.amount,
               Payment.collected_on)
        .join(Member, Member.id == Payment.member_id).join(Org, Org.id == Payment.grassroots_org_id)
        .where(Payment.id.in_(list(numbers))).order_by(Payment.id)
    )
    rows = []
    for payment_id, member_id, name, email, org_name, amount, collected_on in shown:
        subject, body = _receipt_issued_message(name, org_name, amount, collected_on, numbers[payment_id], issued_on)
        rows.append({"member_id": member_id, "payment_id": payment_id, "kind": RECEIPT_ISSUED, "recipient": email,
                     "subject": subject, "body": body, "state": "pending" if email else "kept", "attempts": 0,
                     "next_attempt_at": now, "created_at": now})
    db.session.execute(insert(Notification.__table__), rows)


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0  # failed this time, will be tried again
    gave_up: int = 0  # out of attempts: ``failed``


def _claimable(now: datetime) -> ColumnElement[bool]:
    """Rows a sender may take now: pending and due, or claimed by a sender whose lease ran out (it died)."""
    config = current_app.config
    return and_(
        Notification.attempts < config["NOTIFICATION_MAX_ATTEMPTS"],
        or_(
            and_(Notification.state == "pending", Notification.next_attempt_at <= now),
            and_(Notification.state == "sending", Notification.claimed_at < now - config["NOTIFICATION_LEASE"]),
        ),
    )


def _claim(session: Session, notification_id: int) -> str | None:
    """Take the row for this sender, committed before anything is sent; None when another sender has it."""
    token, now = secrets.token_hex(16), utcnow()
    claimed = session.execute(
        update(Notification)
        .where(Notification.id == notification_id, _claimable(now))
        .values(state="sending", attempts=Notification.attempts + 1, claim_token=token, claimed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    return token if claimed == 1 else None


def _finish(session: Session, notification_id: int, token: str, **values: object) -> bool:
    """Release our claim with ``values``; False when the lease ran out and another sender took the row over."""
    done = session.execute(
        update(Notification)
        .where(Notification.id == notification_id, Notification.claim_token == token)
        .values(claim_token=None, claimed_at=None, **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    return done == 1


def _give_up_abandoned(session: Session) -> int:
    """Rows whose sender died on the last attempt allowed: ``failed``, so they do not look in flight for ever."""
    config, now = current_app.config, utcnow()
    count = session.execute(
        update(Notification)
        .where(Notification.state == "sending", Notification.claimed_at < now - config["NOTIFICATION_LEASE"],
               Notification.attempts >= config["NOTIFICATION_MAX_ATTEMPTS"])
        .values(state="failed", claim_token=None, claimed_at=None, last_error="发送进程中断，重试次数已用完。")
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    return count


def deliver_due(sender: Sender, *, limit: int = 100, ids: Sequence[int] | None = None) -> DeliveryReport:
    """Send what is due (only ``ids``, when given), oldest first, each row claimed before it is sent."""
    report = DeliveryReport()
    config = current_app.config
    with Session(db.engine) as session:
        report.gave_up += _give_up_abandoned(session)
        query = select(Notification.id).where(_claimable(utcnow())).order_by(Notification.id).limit(limit)
        if ids is not None:
            query = query.where(Notification.id.in_(list(ids)))
        candidates = list(session.scalars(query))
        session.commit()
        for notification_id in candidates:
            token = _claim(session, notification_id)
            if token is None:
                continue  # another sender took it first
            row = session.get_one(Notification, notification_id)
            assert row.recipient is not None  # only addressed rows are ever pending
            message = OutgoingMessage(row.id, row.recipient, row.subject, row.body)
            attempts = row.attempts
            session.commit()
            try:
                sender.send(message)
            except Exception as error:  # noqa: BLE001 - whatever a sender raises, the attempt failed; it is recorded
                log.warning("notification %s: attempt %s failed: %s", notification_id, attempts, error)
                final = attempts >= config["NOTIFICATION_MAX_ATTEMPTS"]
                delay = config["NOTIFICATION_RETRY_DELAY"] * 2 ** (attempts - 1)
                _finish(session, notification_id, token, state="failed" if final else "pending",
                        last_error=f"{type(error).__name__}: {error}"[:500], next_attempt_at=utcnow() + delay)
                if final:
                    report.gave_up += 1
                else:
                    report.retrying += 1
                continue
            if _finish(session, notification_id, token, state="sent", sent_at=utcnow(), last_error=None):
                report.sent += 1
            else:
                log.error("notification %s was sent after its claim had expired and been taken over", notification_id)
    return report


def configured_sender(app: Flask) -> Sender | None:
    return app.extensions.get(SENDER_EXTENSION)


def _send_after_request(response: Response) -> Response:
    """Try the messages this request queued, after its commit; whatever fails stays for the next run."""
    queued = db.session.info.pop(_QUEUED, None)
    sender = configured_sender(current_app)
    if not queued or sender is None or not current_app.config["NOTIFY_AFTER_REQUEST"]:
        return response
    # The request's work is committed; ending its transaction releases SQLite's write lock for the sender.
    db.session.rollback()
    try:
        deliver_due(sender, ids=queued)
    except SQLAlchemyError:
        log.exception("notifications %s left for send-notifications", queued)
    return response


def init_app(app: Flask) -> None:
    """Build the configured sender once and send each request's messages after it commits."""
    app.extensions[SENDER_EXTENSION] = sender_from_config(app.config)
    app.after_request(_send_after_request)

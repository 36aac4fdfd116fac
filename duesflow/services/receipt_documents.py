"""What goes on a receipt's PDF (and on the collection slip), gathered from the database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from urllib.parse import quote

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload, lazyload

from ..extensions import db
from ..models import Payment, Receipt
from ..receipts.pdf import ReceiptContent
from ..receipts.slip import SlipContent
from ..timeutil import beijing_today
from .payment_reads import PaymentRow
from .receipts import ISSUER


def slip_content_for(payment: Payment) -> SlipContent:
    """The collection slip of a payment, printed today (Beijing time)."""
    return SlipContent(
        payment_id=payment.id,
        member_name=payment.member.name,
        amount=payment.amount,
        collected_on=payment.collected_on,
        method=payment.method,
        grassroots_org_name=payment.grassroots_org.name,
        printed_on=beijing_today(),
    )


def verify_url(number: str, code: str) -> str:
    """The public verification page a receipt's QR code opens."""
    return f"{current_app.config['PUBLIC_URL']}/verify/{quote(number)}?code={quote(code)}"


def _content(*, member_name: str, amount: Decimal, grassroots_org_name: str, number: str, verification_code: str,
             issued_on: date, version: int, voided: bool) -> ReceiptContent:
    return ReceiptContent(
        member_name=member_name,
        amount=amount,
        grassroots_org_name=grassroots_org_name,
        number=number,
        verification_code=verification_code,
        issued_on=issued_on,
        verify_url=verify_url(number, verification_code),
        issuer=ISSUER,
        version=version,
        voided=voided,
    )


def content_for(receipt: Receipt) -> ReceiptContent:
    """What the PDF of ``receipt`` shows (the receipt loaded with its payment, member and org)."""
    payment = receipt.payment
    return _content(
        member_name=payment.member.name, amount=payment.amount, grassroots_org_name=payment.grassroots_org.name,
        number=receipt.number, verification_code=receipt.verification_code, issued_on=receipt.issued_on,
        version=receipt.version, voided=receipt.voided,
    )


def content_of(payment: PaymentRow) -> ReceiptContent:
    """What the PDF of a payment's latest receipt shows, from the payment's row (``payment_reads``)."""
    return _content(
        member_name=payment.member_name, amount=payment.amount, grassroots_org_name=payment.grassroots_org_name,
        number=payment.receipt_number, verification_code=payment.receipt_verification_code,
        issued_on=payment.receipt_issued_on, version=payment.receipt_version, voided=payment.receipt_voided,
    )


def _live_in_year(year: int):  # noqa: ANN202 - a SQLAlchemy Select
    return select(Receipt).where(Receipt.year == year, Receipt.voided.is_(False))


def count_live_receipts(year: int) -> int:
    """How many live (not voided) receipts were issued in Beijing year ``year``."""
    return db.session.scalar(select(func.count()).select_from(_live_in_year(year).subquery())) or 0


def live_receipt_contents(year: int, chunk_size: int = 200) -> Iterator[list[ReceiptContent]]:
    """The contents of the live receipts issued in Beijing year ``year``, in issue order, ``chunk_size`` at a time.

    Keyset pagination on the receipt id: each chunk is one short query, no cursor stays open between chunks, and
    the session lets go of each chunk's rows, so memory stays bounded however many receipts the year holds.
    """
    last_id = 0
    while True:
        receipts = db.session.scalars(
            _live_in_year(year).where(Receipt.id > last_id).order_by(Receipt.id).limit(chunk_size).options(
                joinedload(Receipt.payment).options(
                    joinedload(Payment.member), joinedload(Payment.grassroots_org), lazyload(Payment.receipts)
                )
            )
        ).all()
        if not receipts:
            return
        contents = [content_for(receipt) for receipt in receipts]
        last_id = receipts[-1].id
        db.session.expunge_all()
        yield contents


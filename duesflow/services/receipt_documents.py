"""What goes on a receipt's PDF, gathered from the database."""

from __future__ import annotations

from urllib.parse import quote

from flask import current_app

from ..models import Receipt
from ..receipts.pdf import ReceiptContent
from .receipts import ISSUER


def verify_url(number: str, code: str) -> str:
    """The public verification page a receipt's QR code opens."""
    return f"{current_app.config['PUBLIC_URL']}/verify/{quote(number)}?code={quote(code)}"


def content_for(receipt: Receipt) -> ReceiptContent:
    payment = receipt.payment
    return ReceiptContent(
        member_name=payment.member.name,
        amount=payment.amount,
        grassroots_org_name=payment.grassroots_org.name,
        number=receipt.number,
        verification_code=receipt.verification_code,
        issued_on=receipt.issued_on,
        verify_url=verify_url(receipt.number, receipt.verification_code),
        issuer=ISSUER,
        version=receipt.version,
        voided=receipt.voided,
    )

"""What goes on a receipt's PDF (and on the collection slip), gathered from the database; the PDF a download
sends, stored once rendered."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import reportlab
from flask import Response, after_this_request, current_app
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import joinedload, lazyload

from .. import receipts as receipts_package
from ..extensions import db, insert_on_conflict
from ..models import Payment, Receipt, ReceiptDocument, utcnow
from ..receipts.pdf import ReceiptContent, render_receipt_pdf
from ..receipts.slip import SlipContent, render_slip_pdf
from ..signing import signing
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


def slip_pdf(payment: Payment) -> bytes:
    """The collection slip of a payment as a PDF."""
    return render_slip_pdf(slip_content_for(payment), current_app.config["RECEIPT_FONT"])


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


@functools.cache
def _renderer_version() -> str:
    """A hash of the code a receipt's PDF comes from: the receipts package's sources and reportlab's version. A
    change to either makes every stored document stale, so nobody has to remember to invalidate them."""
    digest = hashlib.sha256(reportlab.Version.encode())
    for source in sorted(Path(receipts_package.__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def fingerprint(content: ReceiptContent, font_path: str | None, signer: str) -> str:
    """Everything the PDF of ``content`` depends on, hashed: the same fingerprint renders the same page, signed by the
    same certificate (``signer``, its fingerprint; a new key makes every stored document stale)."""
    parts = [_renderer_version(), font_path, signer, dataclasses.asdict(content)]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


log = logging.getLogger(__name__)


def receipt_pdf(payment: PaymentRow) -> bytes:
    """The PDF of the payment's latest receipt, from a row of ``payment_reads.visible_payment_with_document_or_404``:
    its stored document while that still matches what the receipt shows and the key that signs; otherwise rendered
    and signed now and stored once the answer is ready, so that each receipt version is signed once, not at every
    download."""
    content = content_of(payment)
    font_path = current_app.config["RECEIPT_FONT"]
    signing_key = signing().key
    key = fingerprint(content, font_path, signing_key.fingerprint)
    if payment.document_fingerprint == key:
        return payment.document_pdf
    pdf = render_receipt_pdf(content, signing_key, font_path)
    _store_after_request(payment.receipt_id, key, pdf)
    return pdf


def _store_after_request(receipt_id: int, key: str, pdf: bytes) -> None:
    """Keep ``pdf`` as the receipt's document, in a transaction of its own after the request's: a download is a
    GET, and on SQLite its read transaction cannot turn into a writer (see ``access_log``). A failure costs only
    the next download a rendering."""

    @after_this_request
    def store(response: Response) -> Response:
        if response.status_code != 200:
            return response
        db.session.rollback()
        row = {"receipt_id": receipt_id, "fingerprint": key, "pdf": pdf, "created_at": utcnow()}
        try:
            statement = insert_on_conflict()(ReceiptDocument).values(row)
            db.session.execute(statement.on_conflict_do_update(index_elements=["receipt_id"], set_=row))
            db.session.commit()
        except SQLAlchemyError:
            db.session.rollback()
            log.warning("the document of receipt %s was not stored; the next download renders it again", receipt_id,
                        exc_info=True)
        return response

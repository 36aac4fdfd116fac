"""Issuing and verifying receipts: gapless numbers per Beijing year, random verification codes, and the check of
a signed receipt PDF against the live receipt version it names."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from flask import current_app
from sqlalchemy import insert, select, update

from .. import permissions
from ..errors import ReceiptNotFound, ValidationFailed
from ..extensions import db, insert_on_conflict
from ..models import Payment, Receipt, ReceiptSequence, User, utcnow
from ..receipts.verification import DocumentProblem, NotAPdf, read_signed_document
from ..signing import signing
from ..timeutil import beijing_today
from ..workflow import RECEIPT_TRANSITIONS, ReceiptChange
from . import throttle
from .audit import append_event

# No 0/O and no 1/I/L. 31 symbols: 8 of them carry 39.6 bits (see docs/decisions.md, "Verification codes").
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
ISSUER = "中共中央组织部"


def new_verification_code() -> str:
    """A fresh random verification code."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


RECEIPT_NUMBER = re.compile(r"[0-9]{4}-[0-9]{6,11}")  # six digits, more past 999,999 in a year


def receipt_number(year: int, sequence: int) -> str:
    """``YYYY-NNNNNN``: six digits at least, seven from the millionth receipt of a year on."""
    return f"{year:04d}-{sequence:06d}"


def _next_sequence(year: int, count: int = 1) -> int:
    """Take the next ``count`` numbers of ``year``; gives the last of them. The counter row stays locked until
    commit, so numbers have no gaps: a transaction that rolls back gives its numbers back with it."""
    db.session.execute(
        insert_on_conflict()(ReceiptSequence).values(year=year, last_number=0)
        .on_conflict_do_nothing(index_elements=["year"])
    )
    return db.session.execute(
        update(ReceiptSequence)
        .where(ReceiptSequence.year == year)
        .values(last_number=ReceiptSequence.last_number + count)
        .returning(ReceiptSequence.last_number)
    ).scalar_one()


def issue_receipt(payment: Payment) -> Receipt:
    """Issue the receipt for a payment being confirmed, in the caller's transaction."""
    issued_on = beijing_today()
    sequence = _next_sequence(issued_on.year)
    receipt = Receipt(
        payment=payment,
        number=receipt_number(issued_on.year, sequence),
        year=issued_on.year,
        sequence=sequence,
        verification_code=new_verification_code(),
        version=1,
        issued_on=issued_on,
        voided=False,
    )
    db.session.add(receipt)
    db.session.flush()
    return receipt


def issue_receipts(payment_ids: list[int]) -> tuple[date, list[tuple[int, str]]]:
    """Issue the receipts of many payments being confirmed, in the caller's transaction: consecutive numbers in the
    order given, taken under the same counter lock as a single confirmation's (so none is skipped or doubled
    beside concurrent ones), one executemany INSERT. Gives the day of issue and (payment id, number) in order."""
    issued_on, issued_at = beijing_today(), utcnow()
    if not payment_ids:
        return issued_on, []
    last = _next_sequence(issued_on.year, len(payment_ids))
    first = last - len(payment_ids) + 1
    rows = [{"payment_id": payment_id, "number": receipt_number(issued_on.year, sequence), "year": issued_on.year,
             "sequence": sequence, "verification_code": new_verification_code(), "version": 1,
             "issued_on": issued_on, "issued_at": issued_at, "voided": False}
            for payment_id, sequence in zip(payment_ids, range(first, last + 1), strict=True)]
    db.session.execute(insert(Receipt.__table__), rows)
    return issued_on, [(row["payment_id"], row["number"]) for row in rows]


def change_receipt(payment: Payment, change: ReceiptChange, user: User, *, reason: str) -> Receipt:
    """Reissue (补发: next version, new code, same number) or void the payment's live receipt; writes the event.

    A void keeps the number used, so the sequence stays gapless, and puts the payment back to ``at_central``,
    where a new ``confirm`` issues a new number. Both go through the payment's optimistic lock first.
    """
    permissions.check_receipt_change(user, payment, change)
    receipt = payment.receipt
    assert receipt is not None  # checked above: a live receipt exists
    from_state, from_org_id = payment.state, payment.holder_org_id
    payment.state = RECEIPT_TRANSITIONS[change].target.value
    payment.updated_at = utcnow()  # a reissue changes no column of its own: this puts the version check in
    db.session.flush()  # of two racing changes one wins here; the loser gets 409 before touching the receipt
    if change is ReceiptChange.REISSUE:
        receipt.version += 1
        receipt.verification_code = new_verification_code()
    else:
        receipt.voided = True
    append_event(
        payment, action=change.value, actor=user, from_state=from_state, from_org_id=from_org_id, note=reason,
        details={"receipt_number": receipt.number, "version": receipt.version},
    )
    return receipt


@dataclass(frozen=True)
class Verification:
    valid: bool
    voided: bool
    number: str
    amount: Decimal
    issued_on: date
    member_name: str
    issuer: str = ISSUER


def count_verification(address: str | None) -> str:
    """Count one verification attempt (by code or by document) of the client at ``address`` against its budget:
    429 past the limit, IPv6 grouped by /64. Gives the client's key."""
    config = current_app.config
    client = throttle.client_key(address)
    throttle.check(throttle.verification_key(client), config["VERIFY_MAX_ATTEMPTS"], config["VERIFY_WINDOW"])
    throttle.hit(throttle.verification_key(client), config["VERIFY_WINDOW"])
    return client


def verify_attempt(number: str, code: str, address: str | None) -> Verification:
    """Public verification from ``address`` (SPEC §5): every attempt counts against the client (429 past the limit,
    IPv6 by /64); a failed one also against the receipt number, from whichever client, for central to see."""
    client = count_verification(address)
    try:
        return verify_receipt(number, code)
    except ReceiptNotFound:
        if RECEIPT_NUMBER.fullmatch(number):
            throttle.hit(throttle.number_failure_key(client, number), current_app.config["VERIFY_NUMBER_WINDOW"])
        raise


def verify_receipt(number: str, code: str) -> Verification:
    """Look a receipt up by number and code (any letter case); 404 ``receipt_not_found`` when either is wrong."""
    if not RECEIPT_NUMBER.fullmatch(number):  # never send stray text (a NUL, say) to the database
        raise ReceiptNotFound()
    receipt = db.session.scalars(select(Receipt).where(Receipt.number == number)).one_or_none()
    if receipt is None or not secrets.compare_digest(receipt.verification_code.encode(), code.strip().upper().encode()):
        raise ReceiptNotFound()
    payment = receipt.payment
    return Verification(
        valid=not receipt.voided,
        voided=receipt.voided,
        number=receipt.number,
        amount=payment.amount,
        issued_on=receipt.issued_on,
        member_name=payment.member.name,
    )


DOCUMENT_MAX_BYTES = 2 * 1024 * 1024  # SPEC §5: verify-document takes a PDF of at most 2 MiB


@dataclass(frozen=True)
class DocumentVerification:
    """The answer about an uploaded receipt PDF: genuine and live, or the reason it is not."""

    valid: bool
    reason: DocumentProblem | None = None
    number: str | None = None
    version: int | None = None
    amount: Decimal | None = None
    issued_on: date | None = None
    member_name: str | None = None  # unmasked: the view masks it
    signed_by: str | None = None


def verify_document(pdf: bytes) -> DocumentVerification:
    """Is ``pdf`` a receipt signed by the service's key (current or retired), unchanged since, naming the receipt
    version that is live now? 422 ``validation_error`` when it is not a PDF at all."""
    try:
        signed = read_signed_document(pdf, signing().known)
    except NotAPdf:
        raise ValidationFailed("上传的文件不是PDF文件。", fields={"document": ["不是PDF文件。"]}) from None
    if signed.problem is not None:
        return DocumentVerification(False, signed.problem)
    receipt = None
    if signed.number is not None and RECEIPT_NUMBER.fullmatch(signed.number):
        receipt = db.session.scalars(select(Receipt).where(Receipt.number == signed.number)).one_or_none()
    if receipt is None:  # signed by us, yet no receipt of ours: a sample, or some other document
        return DocumentVerification(False, DocumentProblem.NOT_A_RECEIPT)
    if receipt.voided:
        return DocumentVerification(False, DocumentProblem.VOIDED)
    if signed.version != receipt.version:
        return DocumentVerification(False, DocumentProblem.SUPERSEDED)
    payment = receipt.payment
    return DocumentVerification(
        True, number=receipt.number, version=receipt.version, amount=payment.amount, issued_on=receipt.issued_on,
        member_name=payment.member.name, signed_by=signed.signed_by,
    )

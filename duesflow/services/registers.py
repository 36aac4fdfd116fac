"""The printed registers as documents: a transfer batch's list (汇总上缴清单) and a grassroots committee's
collection register (领取登记表), made here from the database and only sent by the views that ask for them."""

from __future__ import annotations

from flask import current_app

from ..models import Org, Transfer
from ..receipts.registers import (
    RegisterContent,
    RegisterLine,
    TransferListContent,
    TransferListLine,
    render_collection_register_pdf,
    render_transfer_list_pdf,
)
from ..timeutil import BEIJING, beijing_today
from .delivery import register_lines
from .transfers import transfer_payments


def transfer_list_content(transfer: Transfer) -> TransferListContent:
    """What the printed list of a transfer shows."""
    return TransferListContent(
        transfer_id=transfer.id, from_org_name=transfer.from_org.name, to_org_name=transfer.to_org.name,
        bank_reference=transfer.bank_reference, note=transfer.note,
        sent_on=transfer.created_at.astimezone(BEIJING).date(),
        lines=[TransferListLine(p.id, p.member.name, p.grassroots_org.name, p.collected_on, item.amount)
               for p, item in zip(transfer_payments(transfer), transfer.items, strict=True)],
        total=transfer.total, printed_on=beijing_today(),
    )


def transfer_list_pdf(transfer: Transfer) -> bytes:
    """The list that goes with a transfer's bank transfer, as a PDF."""
    return render_transfer_list_pdf(transfer_list_content(transfer), current_app.config["RECEIPT_FONT"])


def collection_register_pdf(org: Org, *, undelivered_only: bool) -> bytes:
    """The collection register of a grassroots org as a PDF: every live receipt, or only those still to be signed
    for."""
    lines = [
        RegisterLine(receipt_number=line.receipt.number, member_name=line.payment.member.name,
                     amount=line.payment.amount, issued_on=line.receipt.issued_on, version=line.receipt.version,
                     delivered_on=line.delivery.delivered_on if line.delivery else None,
                     signed_by=line.delivery.signed_by if line.delivery else None)
        for line in register_lines(org, undelivered_only=undelivered_only)
    ]
    content = RegisterContent(org_name=org.name, lines=lines, printed_on=beijing_today(),
                              undelivered_only=undelivered_only)
    return render_collection_register_pdf(content, current_app.config["RECEIPT_FONT"])

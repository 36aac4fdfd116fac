"""Transfer batches (汇总上缴, SPEC §9): create, list, read, receive, and the printed list for the bank transfer."""

from __future__ import annotations

from typing import Any

from .. import permissions, schemas
from ..errors import AmountMismatch, Forbidden, FundsNotReceived, InvalidTransition, NotEligible, NotFound
from ..extensions import db
from ..models import Transfer, User
from ..pagination import page, split
from ..services import registers
from ..services.transfers import (
    TransferInput,
    confirm_transfer,
    create_transfer,
    receive_transfer,
    transfer_payment_ids,
    visible_transfers,
)
from . import bp
from .framework import current_user, endpoint, read_body, read_query
from .payments import _pdf_response
from .presenters import org_ref


def transfer_view(transfer: Transfer) -> dict[str, Any]:
    created_by = db.session.get(User, transfer.created_by_id)
    assert created_by is not None
    return {
        "id": transfer.id, "from_org": org_ref(transfer.from_org), "to_org": org_ref(transfer.to_org),
        "count": transfer.count, "total": transfer.total, "bank_reference": transfer.bank_reference,
        "note": transfer.note, "state": transfer.state,
        "payment_ids": transfer_payment_ids(transfer),
        "created_by": {"id": created_by.id, "username": created_by.username}, "created_at": transfer.created_at,
        "amount_received": transfer.amount_received, "received_at": transfer.received_at,
        "discrepancies": [
            {"amount_expected": d.amount_expected, "amount_received": d.amount_received,
             "recorded_by": {"id": d.recorded_by.id, "username": d.recorded_by.username},
             "recorded_at": d.recorded_at}
            for d in transfer.discrepancies
        ],
    }


@bp.post("/transfers")
@endpoint(summary="Send several payments up one level together with one bank transfer (clerk: recorded or "
                  "returned at its org; reviewer: in_review at its org); all or nothing",
          body=schemas.TransferCreate, response=schemas.TransferOut, status=201,
          errors=(Forbidden, NotEligible, InvalidTransition))
def create_transfer_view() -> Any:
    user = current_user()
    permissions.require_operations_role(user)
    permissions.transfer_move(user)
    transfer = create_transfer(user, TransferInput(**read_body(schemas.TransferCreate)))
    return transfer_view(transfer)


@bp.get("/transfers")
@endpoint(summary="Transfer batches sent within the caller's subtree, newest first (keyset pagination)",
          query=schemas.TransferQuery, response=schemas.TransferPage, errors=(Forbidden,))
def list_transfers() -> Any:
    user = current_user()
    permissions.require_operations_role(user)
    params = read_query(schemas.TransferQuery)
    query = visible_transfers(user, state=params.get("state"), direction=params.get("direction"))
    rows, next_cursor = split(list(db.session.scalars(page(query, Transfer, params))), params["limit"])
    return {"items": [transfer_view(transfer) for transfer in rows], "next_cursor": next_cursor}


@bp.get("/transfers/<int:transfer_id>")
@endpoint(summary="A transfer batch", response=schemas.TransferOut, errors=(Forbidden, NotFound))
def get_transfer(transfer_id: int) -> Any:
    user = current_user()
    permissions.require_operations_role(user)
    return transfer_view(permissions.visible_transfer_or_404(user, transfer_id))


@bp.post("/transfers/<int:transfer_id>/receive")
@endpoint(summary="Record the money received for a transfer (a reviewer or central at the receiving org): equal "
                  "to the total, it is received; otherwise 409 amount_mismatch, and the discrepancy is recorded",
          body=schemas.TransferReceive, response=schemas.TransferOut,
          errors=(Forbidden, NotFound, InvalidTransition, AmountMismatch))
def receive_transfer_view(transfer_id: int) -> Any:
    user = current_user()
    permissions.require_operations_role(user)
    transfer = permissions.visible_transfer_or_404(user, transfer_id)
    permissions.check_receive(user, transfer)
    amount = read_body(schemas.TransferReceive)["amount_received"]
    try:
        receive_transfer(user, transfer, amount)
    except AmountMismatch:
        db.session.commit()  # the discrepancy stays on record although the answer is an error
        raise
    return transfer_view(transfer)


@bp.post("/transfers/<int:transfer_id>/confirm")
@endpoint(summary="Confirm a received transfer into central as a whole (central): every payment of it still "
                  "at_central is receipted, consecutive receipt numbers in the order of the payments' ids",
          response=schemas.TransferConfirmOut,
          errors=(Forbidden, NotFound, InvalidTransition, FundsNotReceived))
def confirm_transfer_view(transfer_id: int) -> Any:
    user = current_user()
    permissions.require_operations_role(user)
    transfer = permissions.visible_transfer_or_404(user, transfer_id)
    confirmed = confirm_transfer(user, transfer)
    return {"count": confirmed.count, "first_number": confirmed.first_number, "last_number": confirmed.last_number}


def transfer_list_response(transfer: Transfer) -> Any:
    """Send the list PDF; shared by this API and the page route."""
    return _pdf_response(registers.transfer_list_pdf(transfer), f"transfer-{transfer.id}.pdf")


@bp.get("/transfers/<int:transfer_id>/list.pdf")
@endpoint(summary="The printed list of a transfer batch (汇总上缴清单) that goes with the bank transfer",
          errors=(Forbidden, NotFound), content_type="application/pdf")
def transfer_list_pdf(transfer_id: int) -> Any:
    user = current_user()
    permissions.require_operations_role(user)
    return transfer_list_response(permissions.visible_transfer_or_404(user, transfer_id))

"""Pages of the operations (SPEC §9): transfer batches (汇总上缴) with their printed list, what is still owed back,
receipt delivery with the collection register (领取登记表), and returning refused direct remittances. The same
permission checks and services as the API."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy.orm.exc import StaleDataError

from .. import permissions, schemas
from ..api.delivery import register_response
from ..api.framework import load
from ..api.transfers import transfer_list_response
from ..errors import AmountMismatch, DomainError, InvalidTransition, NotFound
from ..extensions import db
from ..models import DirectRemittance, Transfer, User
from ..pagination import page, split
from ..services.delivery import DeliveryInput, record_delivery, register_lines, undelivered_counts
from ..services.refunds import owed
from ..services.remittances import check_return, return_direct_remittance
from ..services.transfers import (
    TransferInput,
    confirm_transfer,
    create_transfer,
    receive_transfer,
    transfer_payments,
    visible_transfers,
)
from ..timeutil import beijing_today
from ..workflow import TRANSFER_MOVES, Role, State
from . import bp
from .central import _page as remittances_page
from .common import login_required
from .forms import FormProblem, form_body, problem, validated
from .payments import _allowed, _detail_page, _inbox_page, _selected_ids

OFFICE_ROLES = (Role.CLERK, Role.REVIEWER, Role.CENTRAL)


@bp.app_context_processor
def _operation_helpers() -> dict[str, Any]:
    return {"sends_transfers": lambda user: user.role in TRANSFER_MOVES}


# ---- transfer batches ------------------------------------------------------------------------------------


@bp.get("/transfers")
@login_required(*OFFICE_ROLES)
def transfers(user: User) -> Any:
    params = load(schemas.TransferQuery, {name: request.args[name] for name in ("direction", "state", "cursor")
                                          if request.args.get(name)})
    query = visible_transfers(user, state=params.get("state"), direction=params.get("direction"))
    rows, next_cursor = split(list(db.session.scalars(page(query, Transfer, params))), params["limit"])
    return render_template("transfers.html", user=user, transfers=rows, next_cursor=next_cursor,
                           direction=params.get("direction"), state=params.get("state"))


@bp.post("/transfers")
@login_required(*OFFICE_ROLES)
def send_transfer(user: User) -> Any:
    """From the inbox: the ticked payments go up together; if any one cannot, nothing moves and the page says why."""
    selected: frozenset[int] = frozenset()
    try:
        permissions.transfer_move(user)
        ids = _selected_ids()
        selected = frozenset(ids)
        body = load(schemas.TransferCreate,
                    {"payment_ids": ids, **form_body({"bank_reference": "text", "note": "optional"})})
        transfer = create_transfer(user, TransferInput(**body))
        db.session.commit()
    except (DomainError, StaleDataError) as error:
        db.session.rollback()
        failure = error if isinstance(error, DomainError) else InvalidTransition("所选款项刚被他人处理，均未上缴。")
        return _inbox_page(user, problem(failure), selected)
    flash(f"已汇总上缴 {transfer.count} 笔款项（上缴单 #{transfer.id}），请打印清单随银行转账一并交接。")
    return redirect(url_for("web.transfer_detail", transfer_id=transfer.id))


def _transfer_page(user: User, transfer: Transfer, failure: FormProblem | None = None) -> Any:
    payments = transfer_payments(transfer)
    awaiting = sum(payment.state == State.AT_CENTRAL for payment in payments)
    return render_template(
        "transfer.html", user=user, transfer=transfer, payments=payments,
        may_receive=_allowed(permissions.check_receive, user, transfer),
        may_confirm=awaiting if awaiting and _allowed(permissions.check_confirm_transfer, user, transfer) else 0,
        problem=failure,
    ), failure.status if failure else 200


@bp.get("/transfers/<int:transfer_id>")
@login_required(*OFFICE_ROLES)
def transfer_detail(user: User, transfer_id: int) -> Any:
    return _transfer_page(user, permissions.visible_transfer_or_404(user, transfer_id))


@bp.post("/transfers/<int:transfer_id>/receive")
@login_required(*OFFICE_ROLES)
def receive_transfer_form(user: User, transfer_id: int) -> Any:
    transfer = permissions.visible_transfer_or_404(user, transfer_id)
    try:
        permissions.check_receive(user, transfer)
        amount = validated(schemas.TransferReceive, {"amount_received": "text"})["amount_received"]
        receive_transfer(user, transfer, amount)
        db.session.commit()
    except AmountMismatch as mismatch:
        db.session.commit()  # the discrepancy stays on record
        return _transfer_page(user, permissions.visible_transfer_or_404(user, transfer_id), problem(mismatch))
    except (DomainError, StaleDataError) as error:
        db.session.rollback()
        failure = error if isinstance(error, DomainError) else InvalidTransition("该上缴单刚被他人确认到账。")
        return _transfer_page(user, permissions.visible_transfer_or_404(user, transfer_id), problem(failure))
    flash(f"上缴单 #{transfer.id} 已确认到账。")
    return redirect(url_for("web.transfer_detail", transfer_id=transfer.id))


@bp.post("/transfers/<int:transfer_id>/confirm")
@login_required(*OFFICE_ROLES)
def confirm_transfer_form(user: User, transfer_id: int) -> Any:
    transfer = permissions.visible_transfer_or_404(user, transfer_id)
    try:
        confirmed = confirm_transfer(user, transfer)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        return _transfer_page(user, permissions.visible_transfer_or_404(user, transfer_id), problem(error))
    if confirmed.count:
        flash(f"已确认上缴单 #{transfer.id} 的 {confirmed.count} 笔款项，收据编号 {confirmed.first_number} 至 "
              f"{confirmed.last_number}。")
    else:
        flash(f"上缴单 #{transfer.id} 没有待确认的款项。")
    return redirect(url_for("web.transfer_detail", transfer_id=transfer.id))


@bp.get("/transfers/<int:transfer_id>/list.pdf")
@login_required(*OFFICE_ROLES)
def transfer_list(user: User, transfer_id: int) -> Any:
    return transfer_list_response(permissions.visible_transfer_or_404(user, transfer_id))


# ---- what is still owed back -----------------------------------------------------------------------------


@bp.get("/owed")
@login_required(*OFFICE_ROLES)
def owed_page(user: User) -> Any:
    return render_template("owed.html", user=user, report=owed(user), today=beijing_today().isoformat())


@bp.post("/direct-remittances/<int:remittance_id>/return")
@login_required(Role.CENTRAL)
def return_remittance(user: User, remittance_id: int) -> Any:
    remittance = db.session.get(DirectRemittance, remittance_id)
    if remittance is None:
        raise NotFound("未找到该笔直接汇款。")
    try:
        check_return(user, remittance)
        body = validated(schemas.RemittanceReturn, {"returned_on": "text", "reference": "optional"})
        return_direct_remittance(user, remittance, body["returned_on"], body.get("reference"))
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        failure = problem(error)
        details = "；".join(text for texts in failure.fields.values() for text in texts) or failure.message
        # one banner: the messages belong to a row's small form, not to the recording form on the same page
        message = FormProblem(f"{remittance.remitter_name} 的直接汇款未能登记退回：{details}", failure.status)
        if request.form.get("next") == "owed":
            return render_template("owed.html", user=user, report=owed(user), today=beijing_today().isoformat(),
                                   problem=message), message.status
        return remittances_page(user, {"received_on": beijing_today().isoformat()}, message)
    flash(f"已登记：{remittance.remitter_name} 的直接汇款已退回汇款人。")
    if request.form.get("next") == "owed":
        return redirect(url_for("web.owed_page"))
    return redirect(url_for("web.direct_remittances"))


# ---- receipt delivery ------------------------------------------------------------------------------------


@bp.get("/deliveries")
@login_required(*OFFICE_ROLES)
def deliveries(user: User) -> Any:
    """The clerk: receipts still to hand over, and the register to print; others: what is undelivered per org."""
    lines = register_lines(user.org, undelivered_only=True) if user.role == Role.CLERK and user.org else []
    return render_template("deliveries.html", user=user, counts=undelivered_counts(user), lines=lines,
                           today=beijing_today().isoformat())


@bp.get("/orgs/<int:org_id>/collection-register.pdf")
@login_required(*OFFICE_ROLES)
def collection_register(user: User, org_id: int) -> Any:
    org = permissions.visible_grassroots_org_or_404(user, org_id)
    return register_response(org, undelivered_only=request.args.get("scope") == "undelivered")


@bp.post("/payments/<int:payment_id>/receipt/delivered")
@login_required()
def receipt_delivered(user: User, payment_id: int) -> Any:
    payment = permissions.visible_payment_or_404(user, payment_id)
    try:
        permissions.check_delivery(user, payment)
        body = validated(schemas.DeliveryBody, {"delivered_on": "text", "signed_by": "text"})
        record_delivery(user, payment, DeliveryInput(**body))
        db.session.commit()
    except (DomainError, StaleDataError) as error:
        db.session.rollback()
        failure = error if isinstance(error, DomainError) else InvalidTransition("该款项刚被他人处理。")
        return _detail_page(user, permissions.visible_payment_or_404(user, payment_id), problem(failure), "deliver")
    flash(f"已登记：收据 {payment.receipt.number if payment.receipt else ''} 已送达党员签收。")
    if request.form.get("next") == "deliveries":
        return redirect(url_for("web.deliveries"))
    return redirect(url_for("web.payment_detail", payment_id=payment.id))

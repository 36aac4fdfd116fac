"""Payment pages every payment role shares: the lists, the inbox, the detail with its timeline and buttons,
workflow actions (one at a time or several together) and the receipt download with a web session."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from .. import permissions, schemas
from ..api.framework import load
from ..api.payments import receipt_pdf_response
from ..api.presenters import member_view
from ..errors import DomainError, InvalidTransition, NotFound, ValidationFailed
from ..extensions import db
from ..models import Event, Org, Payment, User
from ..pagination import merged_page, newest_first, page, split
from ..receipts.capitals import format_yuan
from ..services.payments import act
from ..services.receipts import change_receipt
from ..services.refunds import RefundInput, refund_payment
from ..timeutil import beijing_today
from ..workflow import TRANSITIONS, Action, ReceiptChange, Role, State, role_may
from . import bp
from .common import ACTION_NAMES, login_required, needs_reason
from .forms import FormProblem, problem, validated

PAYMENT_ROLES = (Role.CLERK, Role.REVIEWER, Role.CENTRAL, Role.MEMBER)
ACTING_ROLES = (Role.CLERK, Role.REVIEWER, Role.CENTRAL)


def _listed(query: Any, params: dict[str, Any]) -> tuple[list[Payment], str | None]:
    """A page of ``query`` (which selects payments, ordered and limited by ``page`` or ``merged_page``)."""
    query = query.options(
        selectinload(Payment.member), selectinload(Payment.grassroots_org), selectinload(Payment.holder_org)
    )
    return split(list(db.session.scalars(query)), params["limit"])


def _state_counts(user: User) -> dict[str, int]:
    rows = db.session.execute(
        select(Payment.state, func.count()).where(permissions.payment_visibility(user)).group_by(Payment.state)
    )
    return {state: count for state, count in rows}


def _list_page(user: User, template: str, *, title: str, fixed_state: str | None = None) -> Any:
    params = load(schemas.PaymentQuery, {name: request.args[name] for name in ("state", "cursor")
                                         if request.args.get(name)})
    state = fixed_state or params.get("state")
    query = select(Payment).where(permissions.payment_visibility(user))
    if state:
        query = query.where(Payment.state == state)
    rows, next_cursor = _listed(page(query, Payment, params), params)
    return render_template(template, user=user, title=title, payments=rows, next_cursor=next_cursor,
                           state=state, fixed_state=fixed_state, counts=_state_counts(user),
                           states=[s.value for s in State])


@bp.get("/payments")
@login_required(*PAYMENT_ROLES)
def payments(user: User) -> Any:
    if user.role == Role.MEMBER:
        return _list_page(user, "member_payments.html", title="我的款项")
    title = "本单位款项" if user.role == Role.CLERK else "全部款项"
    return _list_page(user, "payments.html", title=title)


@bp.get("/receipts")
@login_required(Role.CENTRAL)
def receipts(user: User) -> Any:
    return _list_page(user, "payments.html", title="已开具收据的款项", fixed_state=State.RECEIPTED.value)


def _batch_actions(user: User) -> list[str]:
    """Actions that can be taken on several payments at once: those of the user's role that ask no reason and
    record no particulars of their own (a refund)."""
    return [action.value for action in Action
            if role_may(action, Role(user.role)) and not TRANSITIONS[action].needs_input]


def _inbox_page(user: User, failure: FormProblem | None = None, selected: frozenset[int] = frozenset()) -> Any:
    params = load(schemas.PaymentQuery, {"cursor": request.args["cursor"]} if request.args.get("cursor") else {})
    chosen = merged_page(select(Payment.id), Payment, permissions.inbox_branches(user), params).subquery()
    inbox = select(Payment).join(chosen, chosen.c.id == Payment.id).order_by(*newest_first(Payment))
    rows, next_cursor = _listed(inbox, params)
    return render_template("inbox.html", user=user, payments=rows, next_cursor=next_cursor,
                           batch_actions=_batch_actions(user), problem=failure,
                           selected=selected), failure.status if failure else 200


@bp.get("/inbox")
@login_required(*ACTING_ROLES)
def inbox(user: User) -> Any:
    return _inbox_page(user)


def _events(payment: Payment) -> list[Event]:
    return list(db.session.scalars(select(Event).where(Event.payment_id == payment.id).order_by(Event.id)))


def _allowed(check: Any, *args: Any) -> bool:
    try:
        check(*args)
    except DomainError:
        return False
    return True


# Actions that undo or refuse (a reason, and opened on purpose); the others move the payment on its way.
CAREFUL_ACTIONS = ("return", "reject", "withdraw", "reissue", "void")


def _next_in_inbox(user: User, payment: Payment) -> int | None:
    """The id of the newest other payment awaiting ``user``'s org (offered after an action), or None."""
    if user.role not in ACTING_ROLES:
        return None
    return db.session.scalar(select(Payment.id).where(permissions.inbox_clause(user), Payment.id != payment.id)
                             .order_by(*newest_first(Payment)).limit(1))


def _detail_page(user: User, payment: Payment, failure: FormProblem | None = None, failed_action: str = "") -> Any:
    path_orgs = {org.id: org for org in db.session.scalars(select(Org).where(Org.id.in_(payment.path or [])))}
    actions = permissions.available_actions(payment, user) + permissions.receipt_changes_available(payment, user)
    return render_template(
        "payment.html", user=user, payment=payment, events=_events(payment),
        member=member_view(payment.member, user),
        path=[path_orgs[org_id] for org_id in payment.path or [] if org_id in path_orgs],
        actions=[action for action in actions if action not in CAREFUL_ACTIONS],
        careful_actions=[action for action in actions if action in CAREFUL_ACTIONS],
        next_in_inbox=_next_in_inbox(user, payment),
        may_correct=_allowed(permissions.may_correct, user, payment),
        may_download=payment.receipt is not None and permissions.may_download_receipt(user, payment),
        sees_code=permissions.sees_verification_code(user, payment),
        # after a member transfer (组织关系转接) the collecting org keeps the payment but no longer sees the member
        member_visible=_allowed(permissions.visible_member_or_404, user, payment.member_id),
        may_deliver=_allowed(permissions.check_delivery, user, payment), today=beijing_today().isoformat(),
        problem=failure, failed_action=failed_action,
    ), failure.status if failure else 200


@bp.get("/payments/<int:payment_id>")
@login_required()
def payment_detail(user: User, payment_id: int) -> Any:
    return _detail_page(user, permissions.visible_payment_or_404(user, payment_id))


def take_action(user: User, payment: Payment, action: str) -> None:
    """One workflow action or receipt change from a form, through the same checks and services as the API."""
    changes = {change.value: change for change in ReceiptChange}
    if action in changes:
        permissions.check_receipt_change(user, payment, changes[action])
        reason = validated(schemas.ReasonBody, {"reason": "text"})["reason"]
        change_receipt(payment, changes[action], user, reason=reason)
        return
    try:
        chosen = Action(action)
    except ValueError:
        raise NotFound("没有这个操作。") from None
    permissions.check_action(user, payment, chosen)
    if chosen is Action.REFUND:
        fields = {"refunded_on": "text", "method": "text", "reference": "optional"}
        refund_payment(user, payment, RefundInput(**validated(schemas.RefundBody, fields)))
        return
    body_schema = schemas.ReasonBody if needs_reason(action) else schemas.ActionBody
    act(payment, chosen, user, reason=validated(body_schema, {"reason": "text"}).get("reason"))


@bp.post("/payments/<int:payment_id>/actions/<action>")
@login_required()
def act_on_payment(user: User, payment_id: int, action: str) -> Any:
    payment = permissions.visible_payment_or_404(user, payment_id)
    try:
        take_action(user, payment, action)
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        return _detail_page(user, permissions.visible_payment_or_404(user, payment_id),
                            problem(InvalidTransition("该款项刚被他人处理，请查看最新状态。")), action)
    except DomainError as error:
        db.session.rollback()
        return _detail_page(user, permissions.visible_payment_or_404(user, payment_id), problem(error), action)
    flash(f"已{ACTION_NAMES.get(action, action)}：款项 #{payment.id}（{payment.member.name}）。")
    return redirect(url_for("web.payment_detail", payment_id=payment.id))


def _selected_ids() -> list[int]:
    texts = request.form.getlist("payment_id")
    if not texts:
        raise ValidationFailed("请先勾选要办理的款项。")
    if not all(text.isdigit() and len(text) < 12 for text in texts):
        raise ValidationFailed("勾选的款项编号无效，请刷新页面后重试。")
    return list(dict.fromkeys(int(text) for text in texts))


@bp.post("/payments/batch")
@login_required(*ACTING_ROLES)
def batch_action(user: User) -> Any:
    """Several payments, one action, one transaction: if any one fails, nothing moves and the page says which."""
    action = request.form.get("action", "")
    if action not in _batch_actions(user):
        raise NotFound("没有这个批量操作。")
    try:
        ids = _selected_ids()
    except DomainError as error:
        return _inbox_page(user, problem(error))
    for payment_id in ids:
        label = f"#{payment_id}"
        try:
            payment = permissions.visible_payment_or_404(user, payment_id)
            label = f"#{payment.id}（{payment.member.name}，{format_yuan(payment.amount)}）"
            take_action(user, payment, action)
        except (DomainError, StaleDataError) as error:
            db.session.rollback()
            message = error.message if isinstance(error, DomainError) else "该款项刚被他人处理。"
            status = error.status if isinstance(error, DomainError) else 409
            failure = FormProblem(
                f"款项 {label} 未能{ACTION_NAMES[action]}：{message}"
                f" 所选的 {len(ids)} 笔款项均未办理，请取消勾选该笔后重试。",
                status,
            )
            return _inbox_page(user, failure, frozenset(ids))
    db.session.commit()
    flash(f"已{ACTION_NAMES[action]} {len(ids)} 笔款项。")
    return redirect(url_for("web.inbox"))


@bp.get("/payments/<int:payment_id>/receipt.pdf")
@login_required()
def receipt_pdf(user: User, payment_id: int) -> Any:
    """The same permission check and renderer as the API's receipt.pdf, for a browser session."""
    return receipt_pdf_response(user, payment_id)

"""The grassroots clerk's pages: the member register, a member's account, recording and correcting payments.

Reviewers and central may read the register of their subtree too (the same visibility as the API)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import and_, select
from sqlalchemy.orm import aliased, selectinload, undefer_group

from .. import permissions, schemas
from ..api.framework import load
from ..api.presenters import member_phone, member_summary, member_view
from ..errors import DirectPaymentRefused, DomainError, Forbidden, ValidationFailed
from ..extensions import db
from ..models import PERSONAL, Member, Org, Payment, User
from ..pagination import newest_first, page, split
from ..receipts.capitals import format_yuan
from ..report_files import XLSX_MIMETYPE
from ..schemas import PAYMENT_METHODS
from ..services import members as member_service
from ..services import payment_batch
from ..services import users as user_service
from ..services.payments import PaymentInput, correct_payment, record_payment
from ..spreadsheets import ImportRefused
from ..timeutil import beijing_today
from ..workflow import OrgKind, Role
from . import bp
from .common import login_required
from .dues import dues_panel
from .forms import FormProblem, form_body, problem, validated

REGISTER_ROLES = (Role.CLERK, Role.REVIEWER, Role.CENTRAL)
MEMBER_FIELDS = ("name", "gender", "birth_date", "joined_on", "id_number", "work_unit", "position", "phone",
                 "email")
PAYMENT_FIELDS = {"member_id": "int", "amount": "text", "collected_on": "text", "method": "text",
                  "regular_dues_paid": "check", "note": "optional"}
CORRECT_FIELDS = {"amount": "text", "collected_on": "text", "method": "text"}


# ---- the member register ------------------------------------------------------------------------------


@bp.get("/members")
@login_required(*REGISTER_ROLES)
def members(user: User) -> Any:
    return _register_page(user, request.args)


@bp.post("/members")
@login_required(*REGISTER_ROLES)
def search_members(user: User) -> Any:
    # Posted, so that a whole ID number searched for stays out of URLs and the logs that keep them.
    return _register_page(user, request.form)


def _register_page(user: User, source: Any) -> Any:
    params = load(schemas.MemberQuery, {name: source[name] for name in ("q", "id_number", "cursor")
                                        if source.get(name)})
    query = select(Member).where(permissions.member_visibility(user))
    q, id_number = params.get("q", ""), params.get("id_number", "")
    if q:
        query = query.where(member_service.search_clause(q))
    if id_number:
        query = query.where(member_service.id_number_clause(user, id_number))
    query = page(query, Member, params).options(selectinload(Member.org), undefer_group(PERSONAL))
    rows, next_cursor = split(list(db.session.scalars(query)), params["limit"])
    if id_number:
        member_service.log_id_number_lookup(user, rows)
    return render_template("members.html", user=user, members=[member_summary(m, user) for m in rows], q=q,
                           next_cursor=next_cursor, id_number_query=bool(id_number))


def _member_form(user: User, form: dict[str, Any], failure: FormProblem | None = None,
                 member_id: int | None = None) -> Any:
    return render_template("member_form.html", user=user, form=form, problem=failure,
                           member_id=member_id), failure.status if failure else 200


@bp.get("/members/new")
@login_required(Role.CLERK)
def new_member(user: User) -> Any:
    return _member_form(user, {})


@bp.post("/members/new")
@login_required(Role.CLERK)
def create_member(user: User) -> Any:
    try:
        member = member_service.register_member(
            user, validated(schemas.MemberCreate, dict.fromkeys(MEMBER_FIELDS, "text")))
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        return _member_form(user, request.form, problem(error))
    flash(f"已登记党员 {member.name}。")
    return redirect(url_for("web.member_detail", member_id=member.id))


@bp.get("/members/<int:member_id>/edit")
@login_required()
def edit_member(user: User, member_id: int) -> Any:
    member = permissions.visible_member_or_404(user, member_id)
    permissions.require_role(user, Role.CLERK)
    form = {name: getattr(member, name) or "" for name in MEMBER_FIELDS if name not in ("id_number", "phone")}
    form["phone"] = member_phone(member, user) or ""
    form["id_number_masked"] = member_summary(member, user)["id_number"] or ""
    return _member_form(user, form, member_id=member.id)


@bp.post("/members/<int:member_id>/edit")
@login_required()
def update_member(user: User, member_id: int) -> Any:
    member = permissions.visible_member_or_404(user, member_id)
    permissions.require_role(user, Role.CLERK)
    # A blank name or ID number leaves it as it is (the ID number is never shown unmasked to prefill the form).
    kinds = {name: "text" if name in ("name", "id_number") else "optional" for name in MEMBER_FIELDS}
    try:
        member_service.update_member(user, member, validated(schemas.MemberFields, kinds))
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        return _member_form(user, request.form, problem(error), member_id=member_id)
    flash("党员信息已更新。")
    return redirect(url_for("web.member_detail", member_id=member_id))


def _member_page(user: User, member: Member, failure: FormProblem | None = None,
                 form: dict[str, Any] | None = None, transfer_failure: FormProblem | None = None) -> Any:
    payments = db.session.scalars(
        select(Payment).where(Payment.member_id == member.id, permissions.payment_visibility(user))
        .order_by(*newest_first(Payment)).limit(100)
    )
    account = db.session.scalars(select(User).where(User.member_id == member.id)).one_or_none()
    is_own_clerk = user.role == Role.CLERK and user.org_id == member.org_id
    shown = failure or transfer_failure
    return render_template("member.html", user=user, member=member_view(member, user), payments=list(payments),
                           account=account, problem=failure, form=form or {}, is_own_clerk=is_own_clerk,
                           transfer_problem=transfer_failure,
                           transfer_targets=_transfer_targets(member) if is_own_clerk else [],
                           ), shown.status if shown else 200


def _transfer_targets(member: Member) -> list[tuple[str, list[tuple[int, str]]]]:
    """The active grassroots orgs a member can move to, by channel: [(channel, [(org id, "上级 / 名称")])]."""
    parent, channel = aliased(Org), aliased(Org)
    rows = db.session.execute(
        select(Org.id, Org.name, parent.name, channel.name)
        .join(parent, parent.id == Org.parent_id)
        .join(channel, and_(channel.kind == OrgKind.CHANNEL.value, Org.tree_path.startswith(channel.tree_path)))
        .where(Org.kind == OrgKind.GRASSROOTS.value, Org.active, Org.id != member.org_id)
        .order_by(channel.id, Org.tree_path)
    )
    return [(channel_name, [(org_id, name if parent_name == channel_name else f"{parent_name} / {name}")
                            for org_id, name, parent_name, _ in group])
            for channel_name, group in groupby(rows, key=lambda row: row[3])]


@bp.get("/members/<int:member_id>")
@login_required(*REGISTER_ROLES)
def member_detail(user: User, member_id: int) -> Any:
    return _member_page(user, permissions.visible_member_or_404(user, member_id))


@bp.post("/members/<int:member_id>/account")
@login_required()
def create_member_account(user: User, member_id: int) -> Any:
    """A clerk opens the member's own login (one per member), through the same service as POST /users."""
    member = permissions.visible_member_or_404(user, member_id)
    permissions.require_role(user, Role.CLERK)
    try:
        body = {**form_body({"username": "text", "password": "secret"}), "role": "member", "member_id": member.id}
        account = user_service.create_user(user, load(schemas.UserCreate, body))
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        return _member_page(user, member, problem(error), {"username": request.form.get("username", "")})
    flash(f"已为 {member.name} 开设党员账户 {account.username}，请将初始密码当面告知本人。")
    return redirect(url_for("web.member_detail", member_id=member_id))


@bp.post("/members/<int:member_id>/transfer")
@login_required()
def transfer_member(user: User, member_id: int) -> Any:
    """组织关系转接 through the same schema and service as POST /members/{id}/transfer."""
    member = permissions.visible_member_or_404(user, member_id)
    permissions.require_role(user, Role.CLERK)
    try:
        target = load(schemas.MemberTransfer, form_body({"to_org_id": "int"}))["to_org_id"]
        member_service.transfer_member(user, member, target)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        return _member_page(user, member, transfer_failure=problem(error))
    flash(f"{member.name} 的组织关系已转入 {member.org.name}。已登记的款项仍由本单位办理。")
    return redirect(url_for("web.members"))


# ---- payments -----------------------------------------------------------------------------------------


def _payment_form(user: User, form: dict[str, Any], failure: FormProblem | None = None,
                  batch: BatchProblem | None = None) -> Any:
    choices = db.session.scalars(select(Member).where(Member.org_id == user.org_id).order_by(Member.name))
    helper = dues_panel()  # the regular dues helper, sent as a GET form to this same page
    status = failure.status if failure else batch.status if batch else helper.status
    return render_template("payment_form.html", user=user, form=form, problem=failure, members=list(choices),
                           methods=PAYMENT_METHODS, today=beijing_today().isoformat(), dues=helper,
                           batch=batch, max_batch_rows=current_app.config["MAX_BATCH_ROWS"]), status


@dataclass(frozen=True)
class BatchProblem:
    """A refused upload: the banner, and one line per problem of a row (row number, column, message)."""

    message: str
    status: int
    lines: list[tuple[str, str, str]]


def _batch_problem(error: DomainError) -> BatchProblem:
    rows = (error.fields or {}).get("rows")
    lines = []
    if isinstance(rows, dict):
        for number, columns in rows.items():
            for column, messages in columns.items():
                label = "整行" if column == "_schema" else payment_batch.LAYOUT.label(column)
                lines += [(number, label, message) for message in messages]
    else:
        lines = [("", "", message) for messages in (error.fields or {}).values() for message in messages
                 if isinstance(message, str) and message != error.message]
    return BatchProblem(error.message, error.status, lines)


@bp.get("/payments/import-template.xlsx")
@login_required(Role.CLERK)
def payment_batch_template(user: User) -> Any:
    return current_app.response_class(
        payment_batch.template_xlsx(), mimetype=XLSX_MIMETYPE,
        headers={"Content-Disposition": "attachment; filename*=UTF-8''%E6%89%B9%E9%87%8F%E7%99%BB%E8%AE%B0%E6%A8%A1"
                                        "%E6%9D%BF.xlsx; filename=\"payment-batch-template.xlsx\""},
    )


@bp.post("/payments/import")
@login_required()
def upload_payment_batch(user: User) -> Any:
    if user.role == Role.MEMBER:
        raise DirectPaymentRefused()
    permissions.require_role(user, Role.CLERK)
    upload = request.files.get("file")
    try:
        if upload is None or not upload.filename:
            raise ValidationFailed("请选择要上传的 CSV 或 XLSX 文件。")
        try:
            rows = payment_batch.rows_of_file(upload.stream, upload.filename)
        except ImportRefused as refused:
            raise ValidationFailed(str(refused)) from None
        result = payment_batch.record_batch(user, rows)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        return _payment_form(user, {"collected_on": beijing_today().isoformat(), "method": "cash"},
                             batch=_batch_problem(error))
    flash(f"已批量登记 {result.count} 笔款项，合计 {format_yuan(result.total)}。核对无误后请在“本单位款项”中上报。")
    return redirect(url_for("web.payments", state="recorded"))


@bp.get("/payments/new")
@login_required()
def new_payment(user: User) -> Any:
    if user.role == Role.MEMBER:
        # A member cannot pay here: the page says where to pay instead (SPEC §6).
        return render_template("pay_notice.html", user=user, message=DirectPaymentRefused.default_message)
    if user.role != Role.CLERK:
        raise Forbidden("只有基层党委经办人可以登记款项。")
    return _payment_form(user, {"member_id": request.args.get("member_id", ""), "collected_on":
                                beijing_today().isoformat(), "method": "cash"})


@bp.post("/payments/new")
@login_required()
def create_payment(user: User) -> Any:
    if user.role == Role.MEMBER:
        raise DirectPaymentRefused()
    permissions.require_role(user, Role.CLERK)
    try:
        payment = record_payment(user, PaymentInput(**validated(schemas.PaymentCreate, PAYMENT_FIELDS)))
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        return _payment_form(user, request.form, problem(error))
    flash(f"已登记款项 #{payment.id}：{payment.member.name}。核对无误后请点“上报”。")
    return redirect(url_for("web.payment_detail", payment_id=payment.id))


def _correct_form(user: User, payment: Payment, form: dict[str, Any], failure: FormProblem | None = None) -> Any:
    return render_template("payment_correct.html", user=user, payment=payment, form=form, problem=failure,
                           methods=PAYMENT_METHODS, today=beijing_today().isoformat()), \
        failure.status if failure else 200


@bp.get("/payments/<int:payment_id>/correct")
@login_required()
def correct_form(user: User, payment_id: int) -> Any:
    payment = permissions.visible_payment_or_404(user, payment_id)
    permissions.may_correct(user, payment)
    form = {"amount": f"{payment.amount:.2f}", "collected_on": payment.collected_on.isoformat(),
            "method": payment.method}
    return _correct_form(user, payment, form)


@bp.post("/payments/<int:payment_id>/correct")
@login_required()
def correct(user: User, payment_id: int) -> Any:
    payment = permissions.visible_payment_or_404(user, payment_id)
    permissions.may_correct(user, payment)
    try:
        correct_payment(user, payment, validated(schemas.PaymentCorrect, CORRECT_FIELDS))
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        return _correct_form(user, permissions.visible_payment_or_404(user, payment_id), request.form,
                             problem(error))
    flash(f"款项 #{payment_id} 已更正。")
    return redirect(url_for("web.payment_detail", payment_id=payment_id))

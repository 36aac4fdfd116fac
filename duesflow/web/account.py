"""Pages for every logged-in user: the role's home page and changing one's own password."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from .. import permissions, schemas
from ..errors import DomainError, ValidationFailed
from ..extensions import db
from ..models import Member, Notification, Org, Payment, User
from ..pagination import newest_first
from ..services import auth
from ..services.delivery import undelivered_counts
from ..workflow import Role
from . import bp
from .common import inbox_count, login_required
from .forms import FormProblem, problem, validated
from .session import session_user, start_session


@bp.get("/")
def home() -> Any:
    user = session_user()
    if user is None:
        return redirect(url_for("web.login_form"))
    return home_page(user)


def home_page(user: User) -> Any:
    """The home page of ``user``'s role: what awaits it and where to go next."""
    context: dict[str, Any] = {"user": user}
    if user.role == Role.ADMIN:
        context["org_count"] = db.session.scalar(select(func.count()).select_from(Org))
        context["user_count"] = db.session.scalar(select(func.count()).select_from(User))
    elif user.role == Role.MEMBER:
        context["payments"] = list(db.session.scalars(
            select(Payment).where(permissions.payment_visibility(user))
            .order_by(*newest_first(Payment)).limit(20)))
        context["messages"] = list(db.session.scalars(
            select(Notification).where(Notification.member_id == user.member_id)
            .order_by(*newest_first(Notification)).limit(20)))
    else:
        rows = db.session.execute(select(Payment.state, func.count(), func.sum(Payment.amount))
                                  .where(permissions.payment_visibility(user)).group_by(Payment.state))
        context["summary"] = {state: (count, total) for state, count, total in rows}
        context["inbox"] = inbox_count(user)
        if user.role == Role.CLERK:
            context["member_count"] = db.session.scalar(
                select(func.count()).select_from(Member).where(permissions.member_visibility(user)))
            context["undelivered"] = sum(count for _, count in undelivered_counts(user))
    return render_template(f"home_{user.role}.html", **context)


def _password_page(user: User, failure: FormProblem | None = None) -> Any:
    return render_template("password.html", user=user, problem=failure), failure.status if failure else 200


@bp.get("/password")
@login_required()
def password_form(user: User) -> Any:
    return _password_page(user)


@bp.post("/password")
@login_required()
def change_password(user: User) -> Any:
    try:
        body = validated(schemas.PasswordChange, {"old_password": "secret", "new_password": "secret"})
        if request.form.get("new_password_again", "") != body["new_password"]:
            raise ValidationFailed(fields={"new_password_again": ["两次输入的新密码不一致。"]})
        auth.change_own_password(user, body["old_password"], body["new_password"])
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        return _password_page(user, problem(error))
    start_session(user)  # the change ended every session and token of the user; this browser goes on in a new one
    db.session.commit()
    flash("密码已修改。您在其他设备上的登录和接口令牌均已失效。")
    return redirect(url_for("web.home"))

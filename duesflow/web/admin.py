"""The administrator's pages: the organization tree and user accounts, through the services the API uses."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select

from .. import schemas
from ..api.framework import load
from ..errors import DomainError, NotFound, ValidationFailed
from ..extensions import db
from ..models import Org, User
from ..services import orgs as org_service
from ..services import users as user_service
from ..workflow import ALLOWED_PARENT_KINDS, OrgKind, Role
from . import bp
from .common import login_required
from .forms import FormProblem, form_body, problem, validated
from .session import start_session

USER_FIELDS = {"username": "text", "display_name": "text", "password": "secret", "role": "text", "org_id": "int",
               "member_id": "int"}


@dataclass
class OrgNode:
    org: Org
    children: list[OrgNode] = field(default_factory=list)


def org_tree() -> list[OrgNode]:
    """Every org as a forest (normally one tree under central), children in the order they were added."""
    nodes = {org.id: OrgNode(org) for org in db.session.scalars(select(Org).order_by(Org.id))}
    roots: list[OrgNode] = []
    children: dict[int, list[OrgNode]] = defaultdict(list)
    for node in nodes.values():
        parent_id = node.org.parent_id
        (children[parent_id] if parent_id in nodes else roots).append(node)
    for org_id, node in nodes.items():
        node.children = children.get(org_id, [])
    return roots


@bp.get("/admin/orgs")
@login_required(Role.ADMIN)
def orgs(user: User) -> Any:
    return render_template("admin_orgs.html", user=user, tree=org_tree())


def child_kinds(org: Org) -> list[str]:
    """The kinds of org that may be added under ``org`` (the workflow's table of parents)."""
    return [kind.value for kind, parents in ALLOWED_PARENT_KINDS.items() if OrgKind(org.kind) in parents]


def _org_page(user: User, org: Org, failure: FormProblem | None = None, form: dict[str, Any] | None = None) -> Any:
    children = db.session.scalars(select(Org).where(Org.parent_id == org.id).order_by(Org.id))
    members_of = db.session.scalars(select(User).where(User.org_id == org.id).order_by(User.id))
    ancestors = {o.id: o for o in db.session.scalars(select(Org).where(Org.id.in_(org.ancestor_ids)))}
    return render_template("admin_org.html", user=user, org=org, children=list(children), users=list(members_of),
                           path=[ancestors[i] for i in org.ancestor_ids if i in ancestors],
                           child_kinds=child_kinds(org), problem=failure, form=form or {}), \
        failure.status if failure else 200


@bp.get("/admin/orgs/<int:org_id>")
@login_required(Role.ADMIN)
def org_detail(user: User, org_id: int) -> Any:
    return _org_page(user, org_service.get_org_or_404(org_id))


@bp.post("/admin/orgs/<int:org_id>")
@login_required(Role.ADMIN)
def update_org(user: User, org_id: int) -> Any:
    """Rename (field ``name``) or (de)activate (field ``active`` = 1 or 0)."""
    org = org_service.get_org_or_404(org_id)
    body = {"active": request.form["active"] == "1"} if "active" in request.form else None
    try:
        changes = load(schemas.OrgUpdate, body) if body is not None else validated(schemas.OrgUpdate, {"name": "text"})
        org_service.update_org(org, changes)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        form = {"name": request.form.get("name", "")}
        return _org_page(user, org_service.get_org_or_404(org_id), problem(error), form)
    flash("组织已更新。")
    return redirect(url_for("web.org_detail", org_id=org_id))


@bp.post("/admin/orgs/<int:org_id>/children")
@login_required(Role.ADMIN)
def create_org(user: User, org_id: int) -> Any:
    parent = org_service.get_org_or_404(org_id)
    try:
        body = form_body({"child_name": "text", "kind": "text", "parent_id": "int"})
        if "child_name" in body:  # the add form's field, named apart from the rename form's "name"
            body["name"] = body.pop("child_name")
        body = load(schemas.OrgCreate, body)
        org = org_service.create_org(body["name"], OrgKind(body["kind"]), body["parent_id"])
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        failure = problem(error)
        if "name" in failure.fields:
            failure.fields["child_name"] = failure.fields.pop("name")
        form = {"child_name": request.form.get("child_name", ""), "kind": request.form.get("kind", "")}
        return _org_page(user, org_service.get_org_or_404(parent.id), failure, form)
    flash(f"已添加组织 {org.name}。")
    return redirect(url_for("web.org_detail", org_id=org.id))


def _all_orgs() -> list[Org]:
    return list(db.session.scalars(select(Org).where(Org.active).order_by(Org.tree_path)))


def _users_page(user: User, failure: FormProblem | None = None, form: dict[str, Any] | None = None) -> Any:
    accounts = db.session.scalars(select(User).order_by(User.id))
    return render_template("admin_users.html", user=user, accounts=list(accounts), orgs=_all_orgs(),
                           roles=[role.value for role in Role], problem=failure, form=form or {}), \
        failure.status if failure else 200


@bp.get("/admin/users")
@login_required(Role.ADMIN)
def users(user: User) -> Any:
    return _users_page(user)


@bp.post("/admin/users")
@login_required(Role.ADMIN)
def create_user(user: User) -> Any:
    try:
        account = user_service.create_user(user, validated(schemas.UserCreate, USER_FIELDS))
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        form = {name: request.form.get(name, "") for name in USER_FIELDS if name != "password"}
        return _users_page(user, problem(error), form)
    flash(f"已开设账户 {account.username}。")
    return redirect(url_for("web.user_detail", user_id=account.id))


def _user_or_404(user_id: int) -> User:
    account = db.session.get(User, user_id)
    if account is None:
        raise NotFound("未找到该账户。")
    return account


def _user_page(user: User, account: User, failure: FormProblem | None = None) -> Any:
    return render_template("admin_user.html", user=user, account=account, problem=failure), \
        failure.status if failure else 200


@bp.get("/admin/users/<int:user_id>")
@login_required(Role.ADMIN)
def user_detail(user: User, user_id: int) -> Any:
    return _user_page(user, _user_or_404(user_id))


@bp.post("/admin/users/<int:user_id>")
@login_required(Role.ADMIN)
def update_user(user: User, user_id: int) -> Any:
    """Deactivate or reactivate (field ``active`` = 1 or 0), set the name (``display_name``) or a new password
    (``password``)."""
    account = _user_or_404(user_id)
    try:
        if "active" in request.form:
            changes = load(schemas.UserUpdate, {"active": request.form["active"] == "1"})
        elif "display_name" in request.form:
            changes = load(schemas.UserUpdate, {"display_name": request.form["display_name"]})
        else:
            changes = validated(schemas.UserUpdate, {"password": "secret"})
            if not changes:
                raise ValidationFailed(fields={"password": ["请填写新密码。"]})
        user_service.update_user(account, changes)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        return _user_page(user, _user_or_404(user_id), problem(error))
    flash("密码已重置，该用户的登录已全部失效。" if "password" in changes
          else "姓名已保存。" if "display_name" in changes else "账户状态已更新。")
    if account.id == user.id:
        start_session(account)  # the admin's own password: every session ended, this one goes on anew
        db.session.commit()
    return redirect(url_for("web.user_detail", user_id=user_id))

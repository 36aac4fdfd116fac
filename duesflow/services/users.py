"""User accounts: admins manage all; a clerk may open one member account per member of its own org."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..errors import AlreadyExists, Forbidden, ValidationFailed
from ..extensions import db
from ..identity import fold_username
from ..models import Member, Org, User
from ..workflow import ROLE_ORG_KINDS, Role
from . import auth


def create_user(actor: User | None, data: dict[str, Any]) -> User:
    """Create an account. ``actor`` None means the command line (acts as an admin)."""
    role = Role(data["role"])
    if actor is not None and actor.role == Role.CLERK and role != Role.MEMBER:
        raise Forbidden("基层党委只能为本单位党员开设党员账户。")
    if actor is not None and actor.role not in (Role.ADMIN, Role.CLERK):
        raise Forbidden()
    auth.check_password_rules(data["password"])
    org_id, member_id = data.get("org_id"), data.get("member_id")
    if role == Role.MEMBER:
        if member_id is None:
            raise ValidationFailed(fields={"member_id": ["党员账户须关联一名党员。"]})
        member = db.session.get(Member, member_id)
        if member is None or (actor is not None and actor.role == Role.CLERK and member.org_id != actor.org_id):
            raise ValidationFailed(fields={"member_id": ["本单位没有这名党员。"]})
        if db.session.scalar(select(User.id).where(User.member_id == member_id)):
            raise AlreadyExists("这名党员已有账户。")
        org_id = None
    elif role == Role.ADMIN:
        if org_id is not None or member_id is not None:
            raise ValidationFailed(fields={"org_id": ["管理员不隶属任何组织。"]})
    else:
        org = db.session.get(Org, org_id) if org_id is not None else None
        if org is None or org.kind not in ROLE_ORG_KINDS[role]:
            raise ValidationFailed(fields={"org_id": ["该角色须隶属于相应类型的组织。"]})
        if member_id is not None:
            raise ValidationFailed(fields={"member_id": ["只有党员账户关联党员。"]})
    if db.session.scalar(select(User.id).where(User.username_folded == fold_username(data["username"]))):
        raise AlreadyExists("用户名已被使用。")
    user = User(
        username=data["username"],
        display_name=data.get("display_name") or "",
        password_hash=auth.hash_password(data["password"]),
        role=role.value,
        org_id=org_id,
        member_id=member_id,
        active=True,
        auth_version=1,
    )
    db.session.add(user)
    db.session.flush()
    return user


def update_user(user: User, changes: dict[str, Any]) -> User:
    """Admin: (de)activate, set a new password (either revokes the user's tokens and sessions) or the name."""
    if "display_name" in changes:
        user.display_name = changes["display_name"] or ""
    if "password" in changes:
        auth.set_password(user, changes["password"])
    if "active" in changes and changes["active"] != user.active:
        user.active = changes["active"]
        auth.revoke_all(user)
    db.session.flush()
    return user

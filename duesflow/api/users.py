"""User accounts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from .. import permissions, schemas
from ..errors import AlreadyExists, Forbidden, NotFound
from ..extensions import db
from ..models import Member, User
from ..services import users
from ..workflow import Role
from . import bp
from .framework import current_user, endpoint, read_body


def user_view(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "display_name": user.display_name, "role": user.role,
            "org_id": user.org_id, "member_id": user.member_id, "active": user.active}


def _visible_users(viewer: User):  # noqa: ANN202 - a SQLAlchemy Select
    query = select(User).order_by(User.id)
    if viewer.role == Role.ADMIN:
        return query
    if viewer.role == Role.CLERK:
        return query.join(Member, User.member_id == Member.id).where(Member.org_id == viewer.org_id)
    return None


@bp.get("/users")
@endpoint(summary="Accounts (admin: all; clerk: its members' accounts)", response=schemas.UserList,
          errors=(Forbidden,))
def list_users() -> Any:
    query = _visible_users(current_user())
    if query is None:
        raise Forbidden()
    return {"items": [user_view(user) for user in db.session.scalars(query)]}


@bp.post("/users")
@endpoint(summary="Create an account (admin: any role; clerk: a member account for its own member)",
          body=schemas.UserCreate, response=schemas.UserOut, status=201, errors=(Forbidden, AlreadyExists))
def create_user() -> Any:
    actor = current_user()
    permissions.require_role(actor, Role.ADMIN, Role.CLERK)
    return user_view(users.create_user(actor, read_body(schemas.UserCreate)))


@bp.patch("/users/<int:user_id>")
@endpoint(summary="Deactivate or reset the password of an account (admin)", body=schemas.UserUpdate,
          response=schemas.UserOut, errors=(NotFound, Forbidden))
def update_user(user_id: int) -> Any:
    actor = current_user()
    query = _visible_users(actor)
    user = db.session.scalars(query.where(User.id == user_id)).one_or_none() if query is not None else None
    if user is None:
        raise NotFound("未找到该账户。")
    permissions.require_role(actor, Role.ADMIN)
    return user_view(users.update_user(user, read_body(schemas.UserUpdate)))

"""Member records."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload, undefer_group

from .. import permissions, schemas
from ..errors import Forbidden, NotFound
from ..extensions import db
from ..models import PERSONAL, Member, User
from ..pagination import page, split
from ..services import members
from ..workflow import Role
from . import bp
from .framework import current_user, endpoint, read_body, read_query
from .presenters import member_view


def _member_roles_only(user: User) -> None:
    if user.role == Role.ADMIN:
        raise Forbidden("管理员不管理党员信息。")


@bp.post("/members")
@endpoint(summary="Register a member of the clerk's org", body=schemas.MemberCreate, response=schemas.MemberOut,
          status=201, errors=(Forbidden,))
def create_member() -> Any:
    user = current_user()
    permissions.require_role(user, Role.CLERK)
    return member_view(members.register_member(user, read_body(schemas.MemberCreate)), user)


@bp.get("/members")
@endpoint(summary="Members of the caller's subtree, newest first; q searches names only; id_number finds a member "
                  "of the clerk's own org by a whole resident ID (access-logged; nobody for anyone else)",
          query=schemas.MemberQuery, response=schemas.MemberPage, errors=(Forbidden,))
def list_members() -> Any:
    user = current_user()
    _member_roles_only(user)
    params = read_query(schemas.MemberQuery)
    query = select(Member).where(permissions.member_visibility(user))
    if params.get("q"):
        query = query.where(members.search_clause(params["q"]))
    if params.get("id_number"):
        query = query.where(members.id_number_clause(user, params["id_number"]))
    query = page(query, Member, params).options(selectinload(Member.org), undefer_group(PERSONAL))
    rows, next_cursor = split(list(db.session.scalars(query)), params["limit"])
    if params.get("id_number"):
        members.log_id_number_lookup(user, rows)
    return {"items": [member_view(member, user) for member in rows], "next_cursor": next_cursor}


@bp.get("/members/<int:member_id>")
@endpoint(summary="One member", response=schemas.MemberOut, errors=(NotFound, Forbidden))
def get_member(member_id: int) -> Any:
    user = current_user()
    _member_roles_only(user)
    return member_view(permissions.visible_member_or_404(user, member_id), user)


@bp.patch("/members/<int:member_id>")
@endpoint(summary="Correct a member's particulars (the member's clerk)", body=schemas.MemberFields,
          response=schemas.MemberOut, errors=(NotFound, Forbidden))
def update_member(member_id: int) -> Any:
    user = current_user()
    _member_roles_only(user)
    member = permissions.visible_member_or_404(user, member_id)
    permissions.require_role(user, Role.CLERK)
    return member_view(members.update_member(user, member, read_body(schemas.MemberFields)), user)


@bp.post("/members/<int:member_id>/transfer")
@endpoint(summary="Move a member to another active grassroots org (组织关系转接; the member's clerk); payments "
                  "already recorded stay with the org that collected them",
          body=schemas.MemberTransfer, response=schemas.MemberOut, errors=(NotFound, Forbidden))
def transfer_member(member_id: int) -> Any:
    user = current_user()
    _member_roles_only(user)
    member = permissions.visible_member_or_404(user, member_id)
    permissions.require_role(user, Role.CLERK)
    moved = members.transfer_member(user, member, read_body(schemas.MemberTransfer)["to_org_id"])
    return member_view(moved, user)

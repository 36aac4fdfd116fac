"""The organization tree."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from .. import permissions, schemas
from ..errors import AlreadyExists, Forbidden, NotFound
from ..extensions import db
from ..models import Org
from ..services import orgs
from ..workflow import OrgKind, Role
from . import bp
from .framework import current_user, endpoint, read_body


def org_view(org: Org) -> dict[str, Any]:
    return {"id": org.id, "name": org.name, "kind": org.kind, "parent_id": org.parent_id, "active": org.active}


@bp.get("/orgs")
@endpoint(summary="Orgs of the caller's subtree and the path above it (admin: all)", response=schemas.OrgList)
def list_orgs() -> Any:
    query = select(Org).where(permissions.org_visibility(current_user())).order_by(Org.id)
    return {"items": [org_view(org) for org in db.session.scalars(query)]}


@bp.post("/orgs")
@endpoint(summary="Add an org (admin)", body=schemas.OrgCreate, response=schemas.OrgOut, status=201,
          errors=(Forbidden, AlreadyExists))
def create_org() -> Any:
    permissions.require_role(current_user(), Role.ADMIN)
    body = read_body(schemas.OrgCreate)
    return org_view(orgs.create_org(body["name"], OrgKind(body["kind"]), body["parent_id"]))


@bp.patch("/orgs/<int:org_id>")
@endpoint(summary="Rename or (de)activate an org (admin)", body=schemas.OrgUpdate, response=schemas.OrgOut,
          errors=(NotFound, Forbidden, AlreadyExists))
def update_org(org_id: int) -> Any:
    user = current_user()
    org = db.session.scalars(select(Org).where(Org.id == org_id, permissions.org_visibility(user))).one_or_none()
    if org is None:
        raise NotFound("未找到该组织。")
    permissions.require_role(user, Role.ADMIN)
    return org_view(orgs.update_org(org, read_body(schemas.OrgUpdate)))

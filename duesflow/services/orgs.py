"""The organization tree: create, rename, deactivate (never delete), and the seed of real channels."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from sqlalchemy import select

from ..errors import AlreadyExists, NotFound, ValidationFailed
from ..extensions import db
from ..models import Org
from ..workflow import ALLOWED_PARENT_KINDS, OrgKind


def create_org(name: str, kind: OrgKind, parent_id: int | None, code: str | None = None) -> Org:
    """Add an org under ``parent_id``; the kind must fit under the parent's kind."""
    parent = db.session.get(Org, parent_id) if parent_id is not None else None
    if parent_id is not None and parent is None:
        raise ValidationFailed(fields={"parent_id": ["上级组织不存在。"]})
    parent_kind = OrgKind(parent.kind) if parent is not None else None
    if parent_kind not in ALLOWED_PARENT_KINDS[kind]:
        raise ValidationFailed(fields={"kind": [f"{kind.value} 类组织不能设在 {parent_kind or '根'} 之下。"]})
    if kind is OrgKind.CENTRAL and db.session.scalar(select(Org.id).where(Org.kind == OrgKind.CENTRAL)):
        raise AlreadyExists("中央组织部已存在，只能有一个根组织。")
    if db.session.scalar(select(Org.id).where(Org.parent_id == parent_id, Org.name == name)):
        raise AlreadyExists("同一上级下已有同名组织。")
    org = Org(name=name, kind=kind.value, parent_id=parent_id, code=code, active=True, tree_path="")
    db.session.add(org)
    db.session.flush()
    org.tree_path = f"{parent.tree_path if parent else '/'}{org.id}/"
    db.session.flush()
    return org


def update_org(org: Org, changes: dict[str, Any]) -> Org:
    """Rename or (de)activate an org."""
    if "name" in changes and changes["name"] != org.name:
        clash = db.session.scalar(
            select(Org.id).where(Org.parent_id == org.parent_id, Org.name == changes["name"], Org.id != org.id)
        )
        if clash:
            raise AlreadyExists("同一上级下已有同名组织。")
        org.name = changes["name"]
    if "active" in changes:
        if org.kind == OrgKind.CENTRAL and not changes["active"]:
            raise ValidationFailed(fields={"active": ["中央组织部不能停用。"]})
        org.active = changes["active"]
    db.session.flush()
    return org


def get_org_or_404(org_id: int) -> Org:
    org = db.session.get(Org, org_id)
    if org is None:
        raise NotFound("未找到该组织。")
    return org


def load_channel_seed() -> dict[str, Any]:
    """The real channel list shipped with the package (duesflow/seed/channels.json)."""
    return json.loads(resources.files("duesflow.seed").joinpath("channels.json").read_text("utf-8"))


def seed_orgs() -> tuple[Org, int]:
    """Create central and the real forwarding channels; idempotent (matched by code). Returns central and
    how many orgs were added."""
    seed = load_channel_seed()
    added = 0
    central = db.session.scalars(select(Org).where(Org.kind == OrgKind.CENTRAL)).one_or_none()
    if central is None:
        central = create_org(seed["central"]["name"], OrgKind.CENTRAL, None, code="central")
        added += 1
    existing = set(db.session.scalars(select(Org.code).where(Org.parent_id == central.id)))
    for channel in seed["channels"]:
        if channel["code"] not in existing:
            create_org(channel["name"], OrgKind.CHANNEL, central.id, code=channel["code"])
            added += 1
    return central, added

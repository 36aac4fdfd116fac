"""Member records kept by grassroots committees."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, Text, and_, false, select, type_coerce, update

from ..errors import ValidationFailed
from ..extensions import db
from ..models import Member, Org, User, utcnow
from ..permissions import require_role
from ..personal_data import PERSONAL_FIELDS, data_keys
from ..receipts.pdf import missing_glyphs
from ..workflow import OrgKind, Role
from . import access_log


def check_printable_name(name: str) -> None:
    """422 on ``name`` when the receipt font cannot show some of its characters: the receipt would drop them."""
    missing = missing_glyphs(name, current_app.config["RECEIPT_FONT"])
    if missing:
        shown = "、".join(f"「{char}」(U+{ord(char):04X})" for char in dict.fromkeys(name) if char in missing)
        raise ValidationFailed(fields={"name": [
            f"纪念收据的字体无法显示姓名中的{shown}，收据上会缺字。请联系管理员配置包含该字的字体"
            "（DUESFLOW_RECEIPT_FONT）后再登记。"
        ]})


def search_clause(q: str) -> ColumnElement[bool]:
    """Members whose name contains ``q``: names only (SPEC §7), so that no masked phone or ID number can be learnt
    by asking whether a guess finds somebody."""
    return Member.name.contains(q, autoescape=True)


def id_number_clause(viewer: User, id_number: str) -> ColumnElement[bool]:
    """The member of ``viewer``'s own org whose whole resident ID is ``id_number`` (a normalised, valid one), by
    keyed hash; for anyone but that org's clerk nobody (SPEC §7). Log what it finds with
    :func:`log_id_number_lookup`."""
    if viewer.role != Role.CLERK:
        return false()
    return and_(Member.org_id == viewer.org_id,
                Member.id_number_hash.in_(data_keys().search_indexes("id_number", id_number)))


def log_id_number_lookup(viewer: User, found: list[Member]) -> None:
    """Write a look-up by whole resident ID to the access log of personal data, one row per member it found."""
    for member in found:
        access_log.record_unmasked(viewer, member.id, "id_number")


def register_member(clerk: User, data: dict[str, Any]) -> Member:
    """A clerk registers a member of its own org."""
    require_role(clerk, Role.CLERK)
    return add_member(clerk.org_id, data)


def add_member(org_id: int, data: dict[str, Any]) -> Member:
    """Add a member with particulars validated by ``schemas.MemberCreate`` (the API, the pages, the import)."""
    check_printable_name(data["name"])
    member = Member(org_id=org_id, **data)
    db.session.add(member)
    db.session.flush()
    return member


def update_member(clerk: User, member: Member, changes: dict[str, Any]) -> Member:
    """A clerk corrects the particulars of a member of its own org (visibility already checked: 404)."""
    require_role(clerk, Role.CLERK)
    if "name" in changes:
        check_printable_name(changes["name"])
    for name, value in changes.items():
        setattr(member, name, value)
    member.updated_at = utcnow()
    db.session.flush()
    return member


def transfer_member(clerk: User, member: Member, to_org_id: int) -> Member:
    """组织关系转接: the member's clerk moves the member to another active grassroots org (visibility already
    checked: 404). Payments already recorded stay with the org that collected them: their grassroots org is not
    touched, and a member account keeps seeing its own payments (it sees them by member, not by org)."""
    require_role(clerk, Role.CLERK)
    target = db.session.get(Org, to_org_id)
    if target is None or target.kind != OrgKind.GRASSROOTS:
        raise ValidationFailed(fields={"to_org_id": ["转入的组织须为基层党委。"]})
    if not target.active:
        raise ValidationFailed(fields={"to_org_id": ["转入的基层党委已停用。"]})
    if target.id == member.org_id:
        raise ValidationFailed(fields={"to_org_id": ["该党员已在这个基层党委。"]})
    current_app.logger.info("member %s transferred from org %s to org %s by user %s",
                            member.id, member.org_id, target.id, clerk.id)
    member.org = target
    member.updated_at = utcnow()
    db.session.flush()
    return member


@dataclass
class Rotation:
    checked: int = 0
    rewritten: int = 0


def rotate_data_key(batch_size: int = 1000) -> Rotation:
    """Re-encrypt under the current data key every ID number and phone that is not yet, and recompute their
    keyed hashes; committed batch by batch, so that it can run beside the service and be run again after a stop.

    ``updated_at`` stays: the particulars did not change, only how they are kept.
    """
    keys = data_keys()
    table = Member.__table__
    stored = [type_coerce(table.c[f"{field}_encrypted"], Text()).label(field) for field in PERSONAL_FIELDS]
    hashes = [table.c[f"{field}_hash"] for field in PERSONAL_FIELDS]
    rotation, last_id = Rotation(), 0
    while True:
        rows = db.session.execute(
            select(table.c.id, table.c.updated_at, *stored, *hashes)
            .where(table.c.id > last_id).order_by(table.c.id).limit(batch_size)
            .with_for_update()  # a clerk's concurrent edit waits, and is not overwritten with the old value
        ).all()
        if not rows:
            return rotation
        changes = []
        for row in rows:
            change: dict[str, Any] = {"id": row.id, "updated_at": row.updated_at}  # else onupdate sets it
            for field in PERSONAL_FIELDS:
                token = getattr(row, field)
                if token is None:
                    continue
                value = keys.decrypt(token)
                if not keys.is_current(token) or getattr(row, f"{field}_hash") != keys.blind_index(field, value):
                    change |= {field: value, f"{field}_hash": keys.blind_index(field, value)}
            if len(change) > 2:
                changes.append(change)
        if changes:
            db.session.execute(update(Member), changes)  # by primary key; the column type encrypts anew
        db.session.commit()
        rotation.checked += len(rows)
        rotation.rewritten += len(changes)
        last_id = rows[-1].id

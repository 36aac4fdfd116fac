"""Member records kept by grassroots committees."""

from __future__ import annotations

from typing import Any

from flask import current_app

from ..errors import ValidationFailed
from ..extensions import db
from ..models import Member, Org, User, utcnow
from ..permissions import require_role
from ..receipts.pdf import missing_glyphs
from ..workflow import OrgKind, Role


def check_printable_name(name: str) -> None:
    """422 on ``name`` when the receipt font cannot show some of its characters: the receipt would drop them."""
    missing = missing_glyphs(name, current_app.config["RECEIPT_FONT"])
    if missing:
        shown = "、".join(f"「{char}」(U+{ord(char):04X})" for char in dict.fromkeys(name) if char in missing)
        raise ValidationFailed(fields={"name": [
            f"纪念收据的字体无法显示姓名中的{shown}，收据上会缺字。请联系管理员配置包含该字的字体"
            "（DUESFLOW_RECEIPT_FONT）后再登记。"
        ]})


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

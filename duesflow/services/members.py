"""Member records kept by grassroots committees."""

from __future__ import annotations

from typing import Any

from ..extensions import db
from ..models import Member, User, utcnow
from ..permissions import require_role
from ..workflow import Role


def register_member(clerk: User, data: dict[str, Any]) -> Member:
    """A clerk registers a member of its own org."""
    require_role(clerk, Role.CLERK)
    member = Member(org_id=clerk.org_id, **data)
    db.session.add(member)
    db.session.flush()
    return member


def update_member(clerk: User, member: Member, changes: dict[str, Any]) -> Member:
    """A clerk corrects the particulars of a member of its own org (visibility already checked: 404)."""
    require_role(clerk, Role.CLERK)
    for name, value in changes.items():
        setattr(member, name, value)
    member.updated_at = utcnow()
    db.session.flush()
    return member

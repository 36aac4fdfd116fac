"""Money an individual sent directly to central: recorded as refused, never receipted (SPEC §6)."""

from __future__ import annotations

from typing import Any

from ..extensions import db
from ..models import DirectRemittance, User
from ..permissions import require_role
from ..workflow import Role


def record_direct_remittance(officer: User, data: dict[str, Any]) -> DirectRemittance:
    """Central records a direct remittance; it is refused from the start."""
    require_role(officer, Role.CENTRAL)
    remittance = DirectRemittance(state="refused", recorded_by_id=officer.id, **data)
    db.session.add(remittance)
    db.session.flush()
    return remittance

"""Money an individual sent directly to central: recorded as refused, never receipted (SPEC §6)."""

from __future__ import annotations

from typing import Any

from flask import current_app

from ..errors import AmountAboveMaximum, InvalidAmount, ValidationFailed
from ..extensions import db
from ..models import DirectRemittance, User
from ..permissions import require_role
from ..timeutil import beijing_today
from ..workflow import Role


def record_direct_remittance(officer: User, data: dict[str, Any]) -> DirectRemittance:
    """Central records a direct remittance; it is refused from the start. Any positive amount up to the
    configured maximum, received no later than today (Beijing time)."""
    require_role(officer, Role.CENTRAL)
    if data["amount"] <= 0:
        raise InvalidAmount(fields={"amount": ["金额须大于零。"]})
    if data["amount"] > current_app.config["MAX_AMOUNT"]:
        raise AmountAboveMaximum()
    if data["received_on"] > beijing_today():
        raise ValidationFailed(fields={"received_on": ["收到日期不能晚于今天（北京时间）。"]})
    remittance = DirectRemittance(state="refused", recorded_by_id=officer.id, **data)
    db.session.add(remittance)
    db.session.flush()
    return remittance

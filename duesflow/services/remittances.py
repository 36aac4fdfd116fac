"""Money an individual sent directly to central: recorded as refused, never receipted (SPEC §6)."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import current_app
from sqlalchemy import update

from ..errors import AmountAboveMaximum, InvalidAmount, InvalidTransition, ValidationFailed
from ..extensions import db
from ..models import DirectRemittance, User, utcnow
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


def check_return(officer: User, remittance: DirectRemittance) -> None:
    """403 unless central; 409 when the remittance was already returned."""
    require_role(officer, Role.CENTRAL)
    if remittance.state != "refused":
        raise InvalidTransition("该笔直接汇款已退回汇款人。")


def return_direct_remittance(officer: User, remittance: DirectRemittance, returned_on: date,
                             reference: str | None) -> DirectRemittance:
    """Central records that a refused remittance went back to its sender (SPEC §9): ``returned``, once."""
    check_return(officer, remittance)
    if returned_on > beijing_today():
        raise ValidationFailed(fields={"returned_on": ["退回日期不能晚于今天（北京时间）。"]})
    if returned_on < remittance.received_on:
        raise ValidationFailed(fields={"returned_on": ["退回日期不能早于收到日期。"]})
    # conditional on the state, so of two officers returning it at once exactly one succeeds
    changed = db.session.execute(
        update(DirectRemittance)
        .where(DirectRemittance.id == remittance.id, DirectRemittance.state == "refused")
        .values(state="returned", returned_on=returned_on, return_reference=reference,
                returned_by_id=officer.id, returned_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        raise InvalidTransition("该笔直接汇款刚被他人登记为已退回。")
    db.session.refresh(remittance)
    return remittance

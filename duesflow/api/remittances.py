"""Direct remittances: refused, never receipted (SPEC §6)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from .. import permissions, schemas
from ..errors import AmountAboveMaximum, Forbidden, InvalidAmount
from ..extensions import db
from ..models import DirectRemittance
from ..services.remittances import record_direct_remittance
from ..workflow import Role
from . import bp
from .framework import current_user, endpoint, read_body


def remittance_view(remittance: DirectRemittance) -> dict[str, Any]:
    return {
        "id": remittance.id, "remitter_name": remittance.remitter_name, "amount": remittance.amount,
        "received_on": remittance.received_on, "reference": remittance.reference, "note": remittance.note,
        "state": remittance.state, "created_at": remittance.created_at,
    }


@bp.post("/direct-remittances")
@endpoint(summary="Record money an individual sent directly to central (refused; never receipted)",
          body=schemas.DirectRemittanceCreate, response=schemas.DirectRemittanceOut, status=201,
          errors=(Forbidden, InvalidAmount, AmountAboveMaximum))
def create_direct_remittance() -> Any:
    user = current_user()
    permissions.require_role(user, Role.CENTRAL)
    return remittance_view(record_direct_remittance(user, read_body(schemas.DirectRemittanceCreate)))


@bp.get("/direct-remittances")
@endpoint(summary="Refused direct remittances (central)", response=schemas.DirectRemittanceList,
          errors=(Forbidden,))
def list_direct_remittances() -> Any:
    permissions.require_role(current_user(), Role.CENTRAL)
    rows = db.session.scalars(select(DirectRemittance).order_by(DirectRemittance.id.desc()))
    return {"items": [remittance_view(row) for row in rows]}

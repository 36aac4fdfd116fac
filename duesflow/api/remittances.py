"""Direct remittances: refused, never receipted (SPEC §6)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from .. import permissions, schemas
from ..errors import AmountAboveMaximum, Forbidden, InvalidAmount, InvalidTransition, NotFound
from ..extensions import db
from ..models import DirectRemittance
from ..services.remittances import check_return, record_direct_remittance, return_direct_remittance
from ..workflow import Role
from . import bp
from .framework import current_user, endpoint, read_body


def remittance_view(remittance: DirectRemittance) -> dict[str, Any]:
    return {
        "id": remittance.id, "remitter_name": remittance.remitter_name, "amount": remittance.amount,
        "received_on": remittance.received_on, "reference": remittance.reference, "note": remittance.note,
        "state": remittance.state, "created_at": remittance.created_at,
        "returned_on": remittance.returned_on, "return_reference": remittance.return_reference,
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


@bp.post("/direct-remittances/<int:remittance_id>/return")
@endpoint(summary="Record that a refused direct remittance was sent back to its sender (central)",
          body=schemas.RemittanceReturn, response=schemas.DirectRemittanceOut,
          errors=(Forbidden, NotFound, InvalidTransition))
def return_remittance(remittance_id: int) -> Any:
    user = current_user()
    permissions.require_role(user, Role.CENTRAL)
    remittance = db.session.get(DirectRemittance, remittance_id)
    if remittance is None:
        raise NotFound("未找到该笔直接汇款。")
    check_return(user, remittance)
    body = read_body(schemas.RemittanceReturn)
    return remittance_view(return_direct_remittance(user, remittance, body["returned_on"], body.get("reference")))

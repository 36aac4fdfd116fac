"""Receipt delivery (SPEC §9): the clerk records who signed for a receipt; the collection register (领取登记表)
of a grassroots org; how many receipts are not delivered yet, per org."""

from __future__ import annotations

from typing import Any

from .. import permissions, schemas
from ..errors import Forbidden, InvalidTransition, NotFound
from ..models import Org
from ..services import registers
from ..services.delivery import DeliveryInput, record_delivery, undelivered_counts
from . import bp
from .framework import current_user, endpoint, read_body, read_query
from .payments import _payment_roles_only, _pdf_response, detail
from .presenters import org_ref


@bp.post("/payments/<int:payment_id>/receipt/delivered")
@endpoint(summary="Record that the member signed for the receipt (领取登记; the grassroots org's clerk)",
          body=schemas.DeliveryBody, response=schemas.PaymentDetail, errors=(NotFound, Forbidden, InvalidTransition))
def receipt_delivered(payment_id: int) -> Any:
    user = current_user()
    _payment_roles_only(user)
    payment = permissions.visible_payment_or_404(user, payment_id)
    permissions.check_delivery(user, payment)
    record_delivery(user, payment, DeliveryInput(**read_body(schemas.DeliveryBody)))
    return detail(payment.id, user)


def register_response(org: Org, *, undelivered_only: bool) -> Any:
    """Send the collection register PDF of a grassroots org; shared by this API and the page route."""
    return _pdf_response(registers.collection_register_pdf(org, undelivered_only=undelivered_only),
                         f"collection-register-{org.id}.pdf")


@bp.get("/orgs/<int:org_id>/collection-register.pdf")
@endpoint(summary="The collection register (领取登记表) of a grassroots org of the caller's subtree: its live "
                  "receipts, with who signed for them and when; scope=undelivered lists only those still to sign",
          query=schemas.RegisterQuery, errors=(Forbidden, NotFound), content_type="application/pdf")
def collection_register(org_id: int) -> Any:
    user = current_user()
    permissions.require_operations_role(user)
    org = permissions.visible_grassroots_org_or_404(user, org_id)
    params = read_query(schemas.RegisterQuery)
    return register_response(org, undelivered_only=params["scope"] == "undelivered")


@bp.get("/reports/undelivered-receipts")
@endpoint(summary="Live receipts not yet delivered to their members, counted per grassroots org of the caller's "
                  "subtree", response=schemas.UndeliveredOut, errors=(Forbidden,))
def undelivered_report() -> Any:
    counts = undelivered_counts(current_user())
    return {"rows": [{"org": org_ref(org), "count": count} for org, count in counts],
            "total": sum(count for _, count in counts)}

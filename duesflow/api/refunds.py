"""Money owed back (SPEC §9): refunds of rejected payments, and the report of what is still owed."""

from __future__ import annotations

from typing import Any

from .. import permissions, schemas
from ..errors import Forbidden, InvalidTransition, NotFound
from ..services.refunds import Owed, RefundInput, owed, refund_payment
from ..workflow import Action
from . import bp
from .framework import current_user, endpoint, read_body
from .payments import _payment_roles_only, detail
from .presenters import org_ref
from .remittances import remittance_view


@bp.post("/payments/<int:payment_id>/refund")
@endpoint(summary="Record that a rejected payment's money went back to the member (the grassroots org's clerk): "
                  "refunded",
          body=schemas.RefundBody, response=schemas.PaymentDetail, errors=(NotFound, Forbidden, InvalidTransition))
def refund(payment_id: int) -> Any:
    user = current_user()
    _payment_roles_only(user)
    payment = permissions.visible_payment_or_404(user, payment_id)
    permissions.check_action(user, payment, Action.REFUND)
    refund_payment(user, payment, RefundInput(**read_body(schemas.RefundBody)))
    return detail(payment.id, user)


def owed_view(report: Owed) -> dict[str, Any]:
    return {
        "payments": [
            {"id": item.payment.id, "amount": item.payment.amount, "collected_on": item.payment.collected_on,
             "member": {"id": item.payment.member.id, "name": item.payment.member.name},
             "grassroots_org": org_ref(item.payment.grassroots_org), "rejected_by": org_ref(item.payment.holder_org),
             "rejected_at": item.rejected_at, "reason": item.reason}
            for item in report.payments
        ],
        "remittances": [remittance_view(remittance) for remittance in report.remittances],
        "payments_total": {"count": len(report.payments), "amount": report.payments_amount},
        "remittances_total": {"count": len(report.remittances), "amount": report.remittances_amount},
    }


@bp.get("/reports/owed")
@endpoint(summary="What is still owed back over the caller's subtree: rejected payments not refunded; for central "
                  "also refused direct remittances not returned",
          response=schemas.OwedOut, errors=(Forbidden,))
def owed_report() -> Any:
    return owed_view(owed(current_user()))

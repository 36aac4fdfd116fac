"""Turn models into the dicts the output schemas dump, applying what the viewer may see."""

from __future__ import annotations

from typing import Any

from .. import identity, permissions
from ..models import Member, Org, PersonalDataView, User
from ..services import access_log
from ..services.payment_reads import PaymentRow


def _named_ref(ref_id: int | None, name: str | None) -> dict[str, Any] | None:
    return None if ref_id is None else {"id": ref_id, "name": name}


def org_ref(org: Org | None) -> dict[str, Any] | None:
    return None if org is None else _named_ref(org.id, org.name)


def payment_view(payment: PaymentRow, viewer: User, *, events: list[PaymentRow] | None = None) -> dict[str, Any]:
    """A payment as ``viewer`` may see it, from its row (``services.payment_reads``) and, for the detail, the
    rows of its events (``visible_payment_with_events_or_404``)."""
    view: dict[str, Any] = {
        "id": payment.id,
        "state": payment.state,
        "amount": payment.amount,
        "collected_on": payment.collected_on,
        "method": payment.method,
        "note": payment.note,
        "member": {"id": payment.member_id, "name": payment.member_name},
        "grassroots_org": _named_ref(payment.grassroots_org_id, payment.grassroots_org_name),
        "holder_org": _named_ref(payment.holder_org_id, payment.holder_org_name),
        "receipt": None
        if payment.receipt_id is None
        else {
            "number": payment.receipt_number,
            "verification_code": payment.receipt_verification_code
            if permissions.sees_verification_code(viewer, payment)
            else None,
            "issued_on": payment.receipt_issued_on,
            "version": payment.receipt_version,
            "voided": payment.receipt_voided,
            "delivered_on": payment.receipt_delivered_on,
        },
        "available_actions": permissions.available_actions(payment, viewer),
        "created_at": payment.created_at,
        "updated_at": payment.updated_at,
    }
    if events is not None:
        view["events"] = [
            {
                "action": event.event_action,
                "from_state": event.event_from_state,
                "to_state": event.event_to_state,
                "from_org": _named_ref(event.event_from_org_id, event.event_from_org_name),
                "to_org": _named_ref(event.event_to_org_id, event.event_to_org_name),
                "actor": {"id": event.event_actor_id, "username": event.event_actor_username,
                          "display_name": event.event_actor_display_name},
                "note": event.event_note,
                "at": event.event_at,
            }
            for event in events
        ]
    return view


def member_summary(member: Member, viewer: User) -> dict[str, Any]:
    """What a register line shows ``viewer``: the ID number masked (it always is); the birth date, work unit and
    position only to the member's own clerk and the member (null for everyone else); no contact details."""
    private = permissions.sees_private_particulars(viewer, member)
    return {
        "id": member.id,
        "org": org_ref(member.org),
        "name": member.name,
        "gender": member.gender,
        "birth_date": member.birth_date if private else None,
        "joined_on": member.joined_on,
        "id_number": identity.mask_resident_id(member.id_number) if member.id_number else None,
        "work_unit": member.work_unit if private else None,
        "position": member.position if private else None,
        "created_at": member.created_at,
        "updated_at": member.updated_at,
    }


def member_phone(member: Member, viewer: User) -> str | None:
    """The phone as ``viewer`` may see it (whole for the own clerk, who is access-logged; masked for the member;
    null for everyone else)."""
    if not member.phone or not permissions.sees_private_particulars(viewer, member):
        return None
    if not permissions.sees_full_phone(viewer, member):
        return identity.mask_phone(member.phone)
    access_log.record_unmasked(viewer, member.id, "phone")
    return member.phone


def member_view(member: Member, viewer: User) -> dict[str, Any]:
    """A member as ``viewer`` may see it (SPEC §7): the summary, the phone and the email."""
    email = member.email if permissions.sees_private_particulars(viewer, member) else None
    return {**member_summary(member, viewer), "phone": member_phone(member, viewer), "email": email}


def personal_data_view(row: PersonalDataView) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.created_at,
        "viewer": {"id": row.viewer.id, "username": row.viewer.username, "role": row.viewer.role},
        "member": {"id": row.member.id, "name": row.member.name},
        "field": row.field,
        "shown_by": row.shown_by,
    }

"""Turn models into the dicts the output schemas dump, applying what the viewer may see."""

from __future__ import annotations

from typing import Any

from .. import identity, permissions
from ..models import Event, Member, Org, Payment, PersonalDataView, User
from ..services import access_log


def org_ref(org: Org | None) -> dict[str, Any] | None:
    return None if org is None else {"id": org.id, "name": org.name}


def payment_view(payment: Payment, viewer: User, *, events: list[Event] | None = None) -> dict[str, Any]:
    receipt = payment.receipt
    view: dict[str, Any] = {
        "id": payment.id,
        "state": payment.state,
        "amount": payment.amount,
        "collected_on": payment.collected_on,
        "method": payment.method,
        "note": payment.note,
        "member": {"id": payment.member.id, "name": payment.member.name},
        "grassroots_org": org_ref(payment.grassroots_org),
        "holder_org": org_ref(payment.holder_org),
        "receipt": None
        if receipt is None
        else {
            "number": receipt.number,
            "verification_code": receipt.verification_code
            if permissions.sees_verification_code(viewer, payment)
            else None,
            "issued_on": receipt.issued_on,
            "version": receipt.version,
            "voided": receipt.voided,
            "delivered_on": receipt.delivery.delivered_on if receipt.delivery is not None else None,
        },
        "available_actions": permissions.available_actions(payment, viewer),
        "created_at": payment.created_at,
        "updated_at": payment.updated_at,
    }
    if events is not None:
        view["events"] = [
            {
                "action": event.action,
                "from_state": event.from_state,
                "to_state": event.to_state,
                "from_org": org_ref(event.from_org),
                "to_org": org_ref(event.to_org),
                "actor": {"id": event.actor.id, "username": event.actor.username},
                "note": event.note,
                "at": event.at,
            }
            for event in events
        ]
    return view


def member_summary(member: Member) -> dict[str, Any]:
    """What a register line shows: no contact details, the ID number masked (it always is)."""
    return {
        "id": member.id,
        "org": org_ref(member.org),
        "name": member.name,
        "gender": member.gender,
        "birth_date": member.birth_date,
        "joined_on": member.joined_on,
        "id_number": identity.mask_resident_id(member.id_number) if member.id_number else None,
        "work_unit": member.work_unit,
        "position": member.position,
        "created_at": member.created_at,
        "updated_at": member.updated_at,
    }


def member_phone(member: Member, viewer: User) -> str | None:
    """The phone as ``viewer`` may see it; an unmasked one goes into the access log."""
    if not member.phone:
        return None
    if not permissions.sees_full_phone(viewer, member):
        return identity.mask_phone(member.phone)
    access_log.record_unmasked(viewer, member.id, "phone")
    return member.phone


def member_view(member: Member, viewer: User) -> dict[str, Any]:
    return {**member_summary(member), "phone": member_phone(member, viewer), "email": member.email}


def personal_data_view(row: PersonalDataView) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.created_at,
        "viewer": {"id": row.viewer.id, "username": row.viewer.username, "role": row.viewer.role},
        "member": {"id": row.member.id, "name": row.member.name},
        "field": row.field,
        "shown_by": row.shown_by,
    }

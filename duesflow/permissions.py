"""Who may see what and who may do what: one place, called by every view and every query.

Order of checks (SPEC §2): 401 unauthenticated → 404 not visible → 403 the role can never do it →
409 not held at the caller's org or not in a state that allows it → 400/422 the body.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, select, true

from .errors import Forbidden, InvalidTransition, NotFound
from .extensions import db
from .models import Member, Org, Payment, User
from .workflow import (
    CORRECTABLE_STATES,
    RECEIPT_TRANSITIONS,
    TRANSITIONS,
    Action,
    ReceiptChange,
    Role,
    State,
    actionable_states,
    is_possible,
    role_may,
)


def require_role(user: User, *roles: Role) -> None:
    """403 unless the user's role is one of ``roles``."""
    if user.role not in roles:
        raise Forbidden()


def subtree_org_ids(org: Org):  # noqa: ANN201 - a SQLAlchemy Select
    """A subquery of the ids of ``org`` and every org below it."""
    return select(Org.id).where(Org.tree_path.startswith(org.tree_path))


def in_subtree(org: Org, ancestor: Org) -> bool:
    """Whether ``org`` is ``ancestor`` or lies below it."""
    return org.tree_path.startswith(ancestor.tree_path)


def payment_visibility(user: User) -> ColumnElement[bool]:
    """The WHERE clause selecting exactly the payments ``user`` may see."""
    if user.role == Role.MEMBER:
        return Payment.member_id == user.member_id
    if user.role == Role.CENTRAL:
        return true()
    if user.role == Role.CLERK:
        return Payment.grassroots_org_id == user.org_id
    if user.role == Role.REVIEWER and user.org is not None:
        return Payment.grassroots_org_id.in_(subtree_org_ids(user.org))
    return false()


def inbox_clause(user: User) -> ColumnElement[bool]:
    """The WHERE clause of ``user``'s inbox: payments held at its org in a state awaiting its role's action."""
    if user.org_id is None or user.role not in (Role.CLERK, Role.REVIEWER, Role.CENTRAL):
        return false()
    states = [state.value for state in actionable_states(Role(user.role))]
    return (Payment.holder_org_id == user.org_id) & Payment.state.in_(states)


def member_visibility(user: User) -> ColumnElement[bool]:
    """The WHERE clause selecting exactly the member records ``user`` may see."""
    if user.role == Role.MEMBER:
        return Member.id == user.member_id
    if user.role == Role.CENTRAL:
        return true()
    if user.role == Role.CLERK:
        return Member.org_id == user.org_id
    if user.role == Role.REVIEWER and user.org is not None:
        return Member.org_id.in_(subtree_org_ids(user.org))
    return false()


def visible_payment_or_404(user: User, payment_id: int) -> Payment:
    """The payment if ``user`` may see it; 404 whether it is unknown or merely invisible."""
    query = select(Payment).where(Payment.id == payment_id, payment_visibility(user))
    payment = db.session.scalars(query).one_or_none()
    if payment is None:
        raise NotFound("未找到该款项。")
    return payment


def visible_member_or_404(user: User, member_id: int) -> Member:
    """The member record if ``user`` may see it; 404 otherwise."""
    member = db.session.scalars(
        select(Member).where(Member.id == member_id, member_visibility(user))
    ).one_or_none()
    if member is None:
        raise NotFound("未找到该党员。")
    return member


def check_action(user: User, payment: Payment, action: Action) -> None:
    """403 if the role can never take ``action``; 409 if the payment is not held here or not in a fitting state."""
    if not role_may(action, Role(user.role)):
        raise Forbidden()
    if payment.holder_org_id != user.org_id or not is_possible(action, State(payment.state)):
        raise InvalidTransition()


def may_correct(user: User, payment: Payment) -> None:
    """The same checks for a correction (PATCH) of the payment's particulars."""
    if user.role != Role.CLERK:
        raise Forbidden()
    if payment.holder_org_id != user.org_id or State(payment.state) not in CORRECTABLE_STATES:
        raise InvalidTransition()


def available_actions(payment: Payment, user: User) -> list[str]:
    """What ``user`` may do with ``payment`` now: drives both the API field and the buttons of the pages."""
    if user.role not in (Role.CLERK, Role.REVIEWER, Role.CENTRAL) or payment.holder_org_id != user.org_id:
        return []
    state = State(payment.state)
    # workflow actions only (POST /payments/{id}/{action}); reissue and void: receipt_changes_available
    return [
        action.value
        for action, transition in TRANSITIONS.items()
        if user.role in transition.roles and state in transition.sources
    ]


def receipt_changes_available(payment: Payment, user: User) -> list[str]:
    """The receipt changes (reissue, void) ``user`` may make now, at POST /payments/{id}/receipt/<change>."""
    if payment.holder_org_id != user.org_id:
        return []
    return [
        change.value
        for change, transition in RECEIPT_TRANSITIONS.items()
        if user.role in transition.roles and _receipt_change_possible(payment, change)
    ]


def _receipt_change_possible(payment: Payment, change: ReceiptChange) -> bool:
    """The payment is in a state the change starts from and has a live (not voided) receipt."""
    receipt = payment.receipt
    return State(payment.state) in RECEIPT_TRANSITIONS[change].sources and receipt is not None and not receipt.voided


def check_receipt_change(user: User, payment: Payment, change: ReceiptChange) -> None:
    """403 unless the role may ever reissue or void; 409 unless the payment is held here, receipted, with a live
    receipt."""
    if user.role not in RECEIPT_TRANSITIONS[change].roles:
        raise Forbidden()
    if payment.holder_org_id != user.org_id or not _receipt_change_possible(payment, change):
        raise InvalidTransition()


def check_slip(user: User, payment: Payment) -> None:
    """The collection slip is the collecting clerk's: 403 for anyone else who can see the payment."""
    if user.role != Role.CLERK or user.org_id != payment.grassroots_org_id:
        raise Forbidden("收款凭条只能由代收的基层党委经办人打印。")


def may_download_receipt(user: User, payment: Payment) -> bool:
    """The member it belongs to, central, and users whose org lies on the payment's path."""
    if user.role == Role.MEMBER:
        return payment.member_id == user.member_id
    if user.role == Role.CENTRAL:
        return True
    return user.org_id is not None and user.org_id in (payment.path or [payment.grassroots_org_id])


def sees_verification_code(user: User, payment: Payment) -> bool:
    """The receipt's verification code is shown only to its member and to central."""
    return user.role == Role.CENTRAL or (user.role == Role.MEMBER and payment.member_id == user.member_id)


def sees_full_phone(user: User, member: Member) -> bool:
    """A phone number is unmasked only for the member's own clerk."""
    return user.role == Role.CLERK and user.org_id == member.org_id


def org_visibility(user: User) -> ColumnElement[bool]:
    """The orgs ``user`` may list: its subtree and the path above it; an admin sees all."""
    if user.role == Role.ADMIN:
        return true()
    org = home_org(user)
    if org is None:
        return false()
    return Org.tree_path.startswith(org.tree_path) | Org.id.in_(org.ancestor_ids)


def home_org(user: User) -> Org | None:
    """The org a user acts for: its own, or for a member account the member's grassroots org."""
    if user.role == Role.MEMBER and user.member is not None:
        return user.member.org
    return user.org

"""Who may see what and who may do what: one place, called by every view and every query.

Order of checks (SPEC §2): 401 unauthenticated → 404 not visible → 403 the role can never do it →
409 not held at the caller's org or not in a state that allows it → 400/422 the body.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, bindparam, exists, false, literal, or_, select, true
from sqlalchemy.orm import joinedload

from .errors import Forbidden, FundsNotReceived, InvalidTransition, NotFound
from .extensions import db
from .models import Member, Org, Payment, Transfer, User
from .workflow import (
    CORRECTABLE_STATES,
    DELIVERABLE_STATES,
    RECEIPT_TRANSITIONS,
    TRANSFER_MOVES,
    TRANSFER_RECEIVERS,
    TRANSITIONS,
    ActingOrg,
    Action,
    OrgKind,
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
    return _subtree_ids(org.tree_path)


def _subtree_ids(tree_path: Any):  # noqa: ANN202 - a SQLAlchemy Select
    return select(Org.id).where(Org.tree_path.startswith(tree_path))


def in_subtree(org: Org, ancestor: Org) -> bool:
    """Whether ``org`` is ``ancestor`` or lies below it."""
    return org.tree_path.startswith(ancestor.tree_path)


def _subtree_rule(role: str, org_id: Any, tree_path: Any, org_column: ColumnElement[int], *,
                  one_row: bool) -> ColumnElement[bool]:
    """The one rule behind every visibility clause: central sees all, a clerk its own org, a reviewer its org and
    those below it, anyone else nothing. ``org_id`` and ``tree_path`` are the viewer's, as values or as bound
    parameters of a statement prepared once (``prepared_payment_visibility``)."""
    if role == Role.CENTRAL:
        return true()
    if role == Role.CLERK:
        return org_column == org_id
    if role == Role.REVIEWER and tree_path is not None:
        if one_row:
            return exists().where(Org.id == org_column, Org.tree_path.startswith(tree_path))
        return org_column.in_(_subtree_ids(tree_path))
    return false()


def in_users_subtree(user: User, org_column: ColumnElement[int], *, one_row: bool = False) -> ColumnElement[bool]:
    """Rows whose org (``org_column``) lies in the subtree of the staff user's org: all for central, its own org
    for a clerk, its org and those below it for a reviewer; nothing for anyone else.

    ``one_row`` for a look-up by id: a correlated test probes that row's org by its key, where ``IN (subquery)``
    first reads every org of the subtree (SQLite scans them all: LIKE cannot use the index). A list wants the
    ``IN`` form: SQLite then walks the subtree's orgs through the org index (0.2 ms for a district of 1,000,000
    payments, where the correlated form scans 16 ms of newest payments for the few of its subtree).
    """
    return _subtree_rule(user.role, user.org_id, _tree_path(user), org_column, one_row=one_row)


def _tree_path(user: User) -> str | None:
    return user.org.tree_path if user.org is not None else None


def payment_visibility(user: User, *, one_row: bool = False) -> ColumnElement[bool]:
    """The WHERE clause selecting exactly the payments ``user`` may see (``one_row``: see in_users_subtree)."""
    if user.role == Role.MEMBER:
        return Payment.member_id == user.member_id
    return in_users_subtree(user, Payment.grassroots_org_id, one_row=one_row)


# The viewer's particulars as bound parameters: a statement that finds one payment is built once per role and
# process, and each request only binds its viewer (building and hashing a statement costs more than running it).
_VIEWER_ORG_ID = bindparam("viewer_org_id")
_VIEWER_TREE_PATH = bindparam("viewer_tree_path")
_VIEWER_MEMBER_ID = bindparam("viewer_member_id")


def prepared_payment_visibility(role: str) -> ColumnElement[bool]:
    """``payment_visibility(user, one_row=True)`` for every user of ``role``, bound by ``viewer_parameters``."""
    if role == Role.MEMBER:
        return Payment.member_id == _VIEWER_MEMBER_ID
    return _subtree_rule(role, _VIEWER_ORG_ID, _VIEWER_TREE_PATH, Payment.grassroots_org_id, one_row=True)


def viewer_parameters(user: User) -> dict[str, Any]:
    """The values ``prepared_payment_visibility`` binds for ``user``."""
    return {
        "viewer_org_id": user.org_id,
        "viewer_tree_path": _tree_path(user),
        "viewer_member_id": user.member_id,
    }


# Where a payment awaits a role's action: at the org holding it, or at the committee that collected it.
_INBOX_PLACES = ((Payment.holder_org_id, ActingOrg.HOLDER), (Payment.grassroots_org_id, ActingOrg.GRASSROOTS))


def _written(state: str) -> ColumnElement[str]:
    """``state`` written into the statement rather than bound."""
    return literal(state, literal_execute=True)


def inbox_branches(user: User) -> list[ColumnElement[bool]]:
    """``user``'s inbox as clauses to be merged (``pagination.merged_page``): payments held at its org in a
    state awaiting its role's action, and payments its org collected in a state awaiting its action there (a
    rejected payment awaits its refund from the committee that collected it, wherever it was rejected).

    An inbox in one place (a reviewer's, central's) is one clause, the place and its states, which the engines
    seek on the (holder, state) index. An inbox in two places (a clerk's) is one clause per place and state, each
    an equality on the leading columns of an index: joined by OR, or with a set of states, SQLite walked the
    committee's whole history newest first instead (BENCHMARKS.md, "Lists"). The states are written into the
    statement (constants of the workflow, not input), so that PostgreSQL plans knowing how rare each is."""
    if user.org_id is None or user.role not in (Role.CLERK, Role.REVIEWER, Role.CENTRAL):
        return []
    role = Role(user.role)
    places = [(column, sorted(state.value for state in actionable_states(role, acting)))
              for column, acting in _INBOX_PLACES]
    places = [(column, states) for column, states in places if states]
    if len(places) == 1:
        column, states = places[0]
        return [(column == user.org_id) & Payment.state.in_([_written(state) for state in states])]
    return [(column == user.org_id) & (Payment.state == _written(state))
            for column, states in places for state in states]


def inbox_clause(user: User) -> ColumnElement[bool]:
    """The WHERE clause of ``user``'s inbox (``inbox_branches``, any of them)."""
    branches = inbox_branches(user)
    return or_(*branches) if branches else false()


def member_visibility(user: User, *, one_row: bool = False) -> ColumnElement[bool]:
    """The WHERE clause selecting exactly the member records ``user`` may see (``one_row``: see in_users_subtree)."""
    if user.role == Role.MEMBER:
        return Member.id == user.member_id
    return in_users_subtree(user, Member.org_id, one_row=one_row)


def _visible_or_404(model: Any, object_id: int, visibility: ColumnElement[bool], message: str,
                    *options: Any) -> Any:
    """The row of ``model`` with ``object_id`` if ``visibility`` admits it; 404 whether unknown or invisible."""
    found = db.session.scalars(select(model).where(model.id == object_id, visibility).options(*options)).one_or_none()
    if found is None:
        raise NotFound(message)
    return found


# What every answer about one payment shows beside it and never changes, brought by the look-up's own query (not
# the holder: an action changes it, and a relationship loaded before would go stale).
_PAYMENT_SHOWN_WITH = (joinedload(Payment.member), joinedload(Payment.grassroots_org))


def visible_payment_or_404(user: User, payment_id: int) -> Payment:
    """The payment if ``user`` may see it; 404 whether it is unknown or merely invisible."""
    return _visible_or_404(Payment, payment_id, payment_visibility(user, one_row=True), "未找到该款项。",
                           *_PAYMENT_SHOWN_WITH)


def visible_member_or_404(user: User, member_id: int) -> Member:
    """The member record if ``user`` may see it; 404 otherwise."""
    return _visible_or_404(Member, member_id, member_visibility(user, one_row=True), "未找到该党员。")


def acting_org_id(payment: Payment, action: Action) -> int:
    """The org whose users take ``action`` on ``payment``: its holder, or for a refund its grassroots org."""
    if TRANSITIONS[action].acting_org is ActingOrg.GRASSROOTS:
        return payment.grassroots_org_id
    return payment.holder_org_id


def check_action(user: User, payment: Payment, action: Action) -> None:
    """403 if the role can never take ``action``; 409 if the payment is not at the org that acts on it (its
    holder, or for a refund its grassroots org) or not in a fitting state."""
    if not role_may(action, Role(user.role)):
        raise Forbidden()
    if acting_org_id(payment, action) != user.org_id or not is_possible(action, State(payment.state)):
        raise InvalidTransition()


def may_correct(user: User, payment: Payment) -> None:
    """The same checks for a correction (PATCH) of the payment's particulars."""
    if user.role != Role.CLERK:
        raise Forbidden()
    if payment.holder_org_id != user.org_id or State(payment.state) not in CORRECTABLE_STATES:
        raise InvalidTransition()


def available_actions(payment: Payment, user: User) -> list[str]:
    """What ``user`` may do with ``payment`` now: drives both the API field and the buttons of the pages."""
    if user.role not in (Role.CLERK, Role.REVIEWER, Role.CENTRAL) or user.org_id is None:
        return []
    state = State(payment.state)
    # workflow actions only (POST /payments/{id}/{action}); reissue and void: receipt_changes_available
    return [
        action.value
        for action, transition in TRANSITIONS.items()
        if user.role in transition.roles and state in transition.sources
        and acting_org_id(payment, action) == user.org_id
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


def sees_private_particulars(user: User, member: Member) -> bool:
    """Birth date (the masked middle of the ID number), phone, email, work unit and position are shown only to the
    member's own clerk and to the member (SPEC §7); everyone else gets null."""
    return sees_full_phone(user, member) or (user.role == Role.MEMBER and user.member_id == member.id)


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


# ---- operations (SPEC §9): transfer batches, receipt delivery, registers and reports of an org -------------

OPERATION_ROLES = (Role.CLERK, Role.REVIEWER, Role.CENTRAL)


def require_operations_role(user: User) -> None:
    """Transfers, refunds, deliveries and their reports belong to the offices: 403 for admins and members."""
    if user.role not in OPERATION_ROLES or user.org_id is None:
        raise Forbidden("管理员和党员不办理上缴、退还和收据送达。")


def transfer_visibility(user: User, *, one_row: bool = False) -> ColumnElement[bool]:
    """The transfers ``user`` may see: those sent from an org of its subtree (which they are also sent to)."""
    return in_users_subtree(user, Transfer.from_org_id, one_row=one_row)


def visible_transfer_or_404(user: User, transfer_id: int) -> Transfer:
    """The transfer if ``user`` may see it; 404 whether it is unknown or merely invisible."""
    return _visible_or_404(Transfer, transfer_id, transfer_visibility(user, one_row=True), "未找到该汇总上缴单。")


def transfer_move(user: User) -> Action:
    """The action a transfer batch sent by ``user`` takes on each payment (submit or forward); 403 for roles that
    send none."""
    try:
        return TRANSFER_MOVES[Role(user.role)]
    except KeyError:
        raise Forbidden("只有基层党委经办人和组织部门审核人可以汇总上缴。") from None


def check_receive(user: User, transfer: Transfer) -> None:
    """403 unless the role receives transfers; 409 unless sent to the caller's org and not yet received."""
    if user.role not in TRANSFER_RECEIVERS:
        raise Forbidden("只有接收单位的审核人或中央组织部工作人员可以确认到账。")
    if transfer.to_org_id != user.org_id:
        raise InvalidTransition("该汇总上缴单不是上缴给本单位的。")
    if transfer.state != "sent":
        raise InvalidTransition("该汇总上缴单已确认到账。")


def check_confirm_transfer(user: User, transfer: Transfer) -> None:
    """Confirming a transfer as a whole (SPEC §9): 403 unless central; 409 unless it was sent to the caller's org
    (central) and its money has been received."""
    if user.role != Role.CENTRAL:
        raise Forbidden("只有中央组织部工作人员可以确认开具收据。")
    if transfer.to_org_id != user.org_id:
        raise InvalidTransition("该汇总上缴单不是上缴到中央组织部的。")
    if transfer.state != "received":
        raise FundsNotReceived(f"汇总上缴单 #{transfer.id} 的款项尚未确认到账，暂不能确认开具收据。")


def check_delivery(user: User, payment: Payment) -> None:
    """The collecting committee's clerk records that the member signed for the receipt: 403 for anyone else; 409
    unless the payment is receipted with a live receipt that is not delivered yet."""
    if user.role != Role.CLERK or user.org_id != payment.grassroots_org_id:
        raise Forbidden("收据送达由代收的基层党委经办人登记。")
    receipt = payment.receipt
    if State(payment.state) not in DELIVERABLE_STATES or receipt is None or receipt.voided:
        raise InvalidTransition("该款项还没有有效的纪念收据。")
    if receipt.delivery is not None:
        raise InvalidTransition("该收据已登记送达。")


def visible_grassroots_org_or_404(user: User, org_id: int) -> Org:
    """A grassroots org of ``user``'s subtree (its collection register); 404 for any other."""
    org = db.session.get(Org, org_id)
    home = home_org(user)
    if org is None or home is None or org.kind != OrgKind.GRASSROOTS or not in_subtree(org, home):
        raise NotFound("未找到该基层党委。")
    return org

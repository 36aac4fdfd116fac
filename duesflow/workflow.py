"""The payment state machine as data: states, actions, who may take them, and where they lead.

Pure: no Flask, no database. ``TRANSITIONS`` is the whole workflow at a glance; ``target`` says where an
action moves a payment along its fixed path; permissions.py decides whether a given user may act.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    CLERK = "clerk"
    REVIEWER = "reviewer"
    CENTRAL = "central"
    MEMBER = "member"


class OrgKind(StrEnum):
    CENTRAL = "central"
    CHANNEL = "channel"
    INTERMEDIATE = "intermediate"
    GRASSROOTS = "grassroots"


class State(StrEnum):
    RECORDED = "recorded"
    IN_REVIEW = "in_review"
    AT_CENTRAL = "at_central"
    RECEIPTED = "receipted"
    RETURNED = "returned"
    REJECTED = "rejected"
    REFUNDED = "refunded"
    WITHDRAWN = "withdrawn"


# What people read for each state, on the pages and in reports.
STATE_NAMES: dict[str, str] = {
    "recorded": "已登记，未上报",
    "in_review": "逐级审核中",
    "at_central": "待中央组织部确认",
    "receipted": "已开具收据",
    "returned": "已退回基层更正",
    "rejected": "未予接收",
    "refunded": "已退还党员",
    "withdrawn": "已撤回",
}


class Action(StrEnum):
    SUBMIT = "submit"
    FORWARD = "forward"
    RETURN = "return"
    REJECT = "reject"
    CONFIRM = "confirm"
    WITHDRAW = "withdraw"
    REFUND = "refund"


class ActingOrg(StrEnum):
    """Whose users take an action: the org holding the payment, or the grassroots org that collected it."""

    HOLDER = "holder"
    GRASSROOTS = "grassroots"


@dataclass(frozen=True)
class Transition:
    """One row of the workflow table: from which states, by which roles, and whether a reason is owed."""

    sources: frozenset[State]
    roles: frozenset[Role]
    needs_reason: bool = False
    # A refund is made by the committee that collected the money, wherever the payment was rejected.
    acting_org: ActingOrg = ActingOrg.HOLDER
    # The action records particulars of its own (a refund's date and method): it has its own body and form.
    has_particulars: bool = False

    @property
    def needs_input(self) -> bool:
        """Whether taking the action asks for more than a click (so it cannot be done to several at once)."""
        return self.needs_reason or self.has_particulars


TRANSITIONS: dict[Action, Transition] = {
    Action.SUBMIT: Transition(frozenset({State.RECORDED, State.RETURNED}), frozenset({Role.CLERK})),
    Action.FORWARD: Transition(frozenset({State.IN_REVIEW}), frozenset({Role.REVIEWER})),
    Action.RETURN: Transition(
        frozenset({State.IN_REVIEW, State.AT_CENTRAL}), frozenset({Role.REVIEWER, Role.CENTRAL}), True
    ),
    Action.REJECT: Transition(
        frozenset({State.IN_REVIEW, State.AT_CENTRAL}), frozenset({Role.REVIEWER, Role.CENTRAL}), True
    ),
    Action.CONFIRM: Transition(frozenset({State.AT_CENTRAL}), frozenset({Role.CENTRAL})),
    Action.WITHDRAW: Transition(frozenset({State.RECORDED, State.RETURNED}), frozenset({Role.CLERK}), True),
    Action.REFUND: Transition(
        frozenset({State.REJECTED}), frozenset({Role.CLERK}), acting_org=ActingOrg.GRASSROOTS, has_particulars=True
    ),
}

class ReceiptChange(StrEnum):
    """What central may do to an issued receipt (SPEC §9); not a step along the path, so not an ``Action``."""

    REISSUE = "reissue"
    VOID = "void"


@dataclass(frozen=True)
class ReceiptTransition:
    """A change to the live receipt: from which payment states, by which roles, to which state; always with a
    reason."""

    sources: frozenset[State]
    roles: frozenset[Role]
    target: State


RECEIPT_TRANSITIONS: dict[ReceiptChange, ReceiptTransition] = {
    # 补发: same number, next version, new verification code; the payment stays receipted
    ReceiptChange.REISSUE: ReceiptTransition(frozenset({State.RECEIPTED}), frozenset({Role.CENTRAL}), State.RECEIPTED),
    # a confirmation made in error: the number stays used (no gap), the payment awaits confirmation again
    ReceiptChange.VOID: ReceiptTransition(frozenset({State.RECEIPTED}), frozenset({Role.CENTRAL}), State.AT_CENTRAL),
}

# Transfer batches (汇总上缴, SPEC §9): the action a batch takes on each of its payments, by the role that sends
# it, and the roles that receive a batch at their org and confirm its money arrived.
TRANSFER_MOVES: dict[Role, Action] = {Role.CLERK: Action.SUBMIT, Role.REVIEWER: Action.FORWARD}
TRANSFER_RECEIVERS = frozenset({Role.REVIEWER, Role.CENTRAL})

# A receipt travels back down and is handed to the member by the collecting committee's clerk (领取登记).
DELIVERABLE_STATES = frozenset({State.RECEIPTED})

# States in which a clerk may still correct the payment's particulars (PATCH).
CORRECTABLE_STATES = frozenset({State.RECORDED, State.RETURNED})

# Which kinds of organization may be the parent of which (None: the root).
ALLOWED_PARENT_KINDS: dict[OrgKind, frozenset[OrgKind | None]] = {
    OrgKind.CENTRAL: frozenset({None}),
    OrgKind.CHANNEL: frozenset({OrgKind.CENTRAL}),
    OrgKind.INTERMEDIATE: frozenset({OrgKind.CHANNEL, OrgKind.INTERMEDIATE}),
    OrgKind.GRASSROOTS: frozenset({OrgKind.CHANNEL, OrgKind.INTERMEDIATE}),
}

# The kind of organization each role belongs to (admins and members belong to none).
ROLE_ORG_KINDS: dict[Role, frozenset[OrgKind]] = {
    Role.CLERK: frozenset({OrgKind.GRASSROOTS}),
    Role.REVIEWER: frozenset({OrgKind.INTERMEDIATE, OrgKind.CHANNEL}),
    Role.CENTRAL: frozenset({OrgKind.CENTRAL}),
}


@dataclass(frozen=True)
class Position:
    """Where a payment is: its state and the index of its holder in its path (0 = grassroots)."""

    state: State
    holder_index: int


def is_possible(action: Action, state: State) -> bool:
    """Whether ``action`` can be taken from ``state`` at all, whoever asks."""
    return state in TRANSITIONS[action].sources


def role_may(action: Action, role: Role) -> bool:
    """Whether ``role`` is ever allowed to take ``action``."""
    return role in TRANSITIONS[action].roles


def target(action: Action, position: Position, path: Sequence[int]) -> Position:
    """Where ``action`` moves a payment standing at ``position`` on ``path`` (grassroots first, central last).

    No level is ever skipped: forward and submit move exactly one step up, return exactly one step down.
    """
    if not is_possible(action, position.state):
        raise ValueError(f"{action} is not possible from {position.state}")
    last = len(path) - 1
    if action in (Action.SUBMIT, Action.FORWARD):
        up = position.holder_index + 1
        return Position(State.AT_CENTRAL if up == last else State.IN_REVIEW, up)
    if action is Action.RETURN:
        down = position.holder_index - 1
        return Position(State.RETURNED if down == 0 else State.IN_REVIEW, down)
    if action is Action.REJECT:
        return Position(State.REJECTED, position.holder_index)
    if action is Action.CONFIRM:
        return Position(State.RECEIPTED, position.holder_index)
    if action is Action.REFUND:
        return Position(State.REFUNDED, 0)  # the money went back from the grassroots org, which keeps the record
    return Position(State.WITHDRAWN, position.holder_index)  # Action.WITHDRAW


def actionable_states(role: Role, acting_org: ActingOrg = ActingOrg.HOLDER) -> frozenset[State]:
    """The states in which a payment awaits an action from ``role`` at the org that acts on it (the inbox): by
    default the holder org; with ``ActingOrg.GRASSROOTS`` the grassroots org that collected it (refunds)."""
    return frozenset(
        state
        for transition in TRANSITIONS.values()
        if role in transition.roles and transition.acting_org is acting_org
        for state in transition.sources
    )

"""The state machine as data (duesflow.workflow): pure, no Flask, no database."""

from __future__ import annotations

import pytest

from duesflow.workflow import (
    TRANSITIONS,
    ActingOrg,
    Action,
    Position,
    Role,
    State,
    Transition,
    actionable_states,
    is_possible,
    role_may,
    target,
)

S = State
R = Role

# SPEC §4, written out once more by hand: (sources, roles, reason required).
SPEC_TABLE: dict[Action, tuple[set[State], set[Role], bool]] = {
    Action.SUBMIT: ({S.RECORDED, S.RETURNED}, {R.CLERK}, False),
    Action.FORWARD: ({S.IN_REVIEW}, {R.REVIEWER}, False),
    Action.RETURN: ({S.IN_REVIEW, S.AT_CENTRAL}, {R.REVIEWER, R.CENTRAL}, True),
    Action.REJECT: ({S.IN_REVIEW, S.AT_CENTRAL}, {R.REVIEWER, R.CENTRAL}, True),
    Action.CONFIRM: ({S.AT_CENTRAL}, {R.CENTRAL}, False),
    Action.WITHDRAW: ({S.RECORDED, S.RETURNED}, {R.CLERK}, True),
    Action.REFUND: ({S.REJECTED}, {R.CLERK}, False),  # SPEC §9: the money of a rejected payment goes back
}

# grassroots (0) → 铁东 (1) → 四平 (2) → 吉林 (3) → central (4)
PATH = [50, 40, 30, 20, 1]
CENTRAL_INDEX = len(PATH) - 1


def test_transition_table_is_the_spec_table():
    assert set(TRANSITIONS) == set(Action)
    for action, (sources, roles, needs_reason) in SPEC_TABLE.items():
        transition = TRANSITIONS[action]
        assert (transition.sources, transition.roles, transition.needs_reason) == (sources, roles, needs_reason)


def test_only_a_refund_is_taken_by_the_grassroots_org_wherever_the_payment_is_held():
    assert TRANSITIONS[Action.REFUND] == Transition(frozenset({S.REJECTED}), frozenset({R.CLERK}),
                                                    acting_org=ActingOrg.GRASSROOTS, has_particulars=True)
    assert [a for a in Action if TRANSITIONS[a].acting_org is not ActingOrg.HOLDER] == [Action.REFUND]


def test_no_action_leaves_a_terminal_state():
    for state in (S.RECEIPTED, S.REFUNDED, S.WITHDRAWN):
        assert not any(is_possible(action, state) for action in Action)


def test_a_rejected_payment_can_only_be_refunded():
    assert [action for action in Action if is_possible(action, S.REJECTED)] == [Action.REFUND]


def test_admin_and_member_may_take_no_action():
    for action in Action:
        assert not role_may(action, R.ADMIN)
        assert not role_may(action, R.MEMBER)


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("state", list(State))
def test_is_possible_follows_the_sources_of_the_table(action, state):
    assert is_possible(action, state) == (state in SPEC_TABLE[action][0])


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("role", list(Role))
def test_role_may_follows_the_roles_of_the_table(action, role):
    assert role_may(action, role) == (role in SPEC_TABLE[action][1])


@pytest.mark.parametrize(
    ("action", "start", "expected"),
    [
        (Action.SUBMIT, Position(S.RECORDED, 0), Position(S.IN_REVIEW, 1)),
        (Action.SUBMIT, Position(S.RETURNED, 0), Position(S.IN_REVIEW, 1)),
        (Action.FORWARD, Position(S.IN_REVIEW, 1), Position(S.IN_REVIEW, 2)),
        (Action.FORWARD, Position(S.IN_REVIEW, 2), Position(S.IN_REVIEW, 3)),
        (Action.FORWARD, Position(S.IN_REVIEW, 3), Position(S.AT_CENTRAL, 4)),
        (Action.RETURN, Position(S.AT_CENTRAL, 4), Position(S.IN_REVIEW, 3)),
        (Action.RETURN, Position(S.IN_REVIEW, 3), Position(S.IN_REVIEW, 2)),
        (Action.RETURN, Position(S.IN_REVIEW, 2), Position(S.IN_REVIEW, 1)),
        (Action.RETURN, Position(S.IN_REVIEW, 1), Position(S.RETURNED, 0)),
        (Action.REJECT, Position(S.IN_REVIEW, 2), Position(S.REJECTED, 2)),
        (Action.REJECT, Position(S.AT_CENTRAL, 4), Position(S.REJECTED, 4)),
        (Action.CONFIRM, Position(S.AT_CENTRAL, 4), Position(S.RECEIPTED, 4)),
        (Action.WITHDRAW, Position(S.RECORDED, 0), Position(S.WITHDRAWN, 0)),
        (Action.WITHDRAW, Position(S.RETURNED, 0), Position(S.WITHDRAWN, 0)),
    ],
)
def test_target_moves_one_level_along_the_path(action, start, expected):
    assert target(action, start, PATH) == expected


@pytest.mark.parametrize("rejected_at", [1, 2, 3, CENTRAL_INDEX])
def test_a_refund_is_on_record_at_the_grassroots_org_wherever_the_payment_was_rejected(rejected_at):
    assert target(Action.REFUND, Position(S.REJECTED, rejected_at), PATH) == Position(S.REFUNDED, 0)


def test_submit_reaches_central_at_once_only_when_the_parent_is_central():
    assert target(Action.SUBMIT, Position(S.RECORDED, 0), [7, 1]) == Position(S.AT_CENTRAL, 1)


@pytest.mark.parametrize("path_length", [2, 3, 4, 5, 6])
def test_at_central_only_when_the_next_org_is_central(path_length):
    path = list(range(100, 100 + path_length))
    position = target(Action.SUBMIT, Position(S.RECORDED, 0), path)
    seen = [position]
    while position.state is S.IN_REVIEW:
        position = target(Action.FORWARD, position, path)
        seen.append(position)
    assert [p.holder_index for p in seen] == list(range(1, path_length))
    assert [p.state for p in seen] == [S.IN_REVIEW] * (path_length - 2) + [S.AT_CENTRAL]


def _reachable_positions(path_length: int) -> list[Position]:
    central = path_length - 1
    return (
        [Position(S.RECORDED, 0), Position(S.RETURNED, 0), Position(S.AT_CENTRAL, central)]
        + [Position(S.IN_REVIEW, index) for index in range(1, central)]
    )


@pytest.mark.parametrize("path_length", [2, 3, 5, 7])
def test_no_action_ever_skips_a_level(path_length):
    path = list(range(path_length))
    for position in _reachable_positions(path_length):
        for action in Action:
            if not is_possible(action, position.state):
                continue
            moved = target(action, position, path)
            assert abs(moved.holder_index - position.holder_index) <= 1, (action, position, moved)
            assert 0 <= moved.holder_index < path_length
            # at_central exactly when the holder is central, returned/recorded exactly at grassroots
            if moved.state in (S.AT_CENTRAL, S.IN_REVIEW, S.RETURNED):
                assert (moved.state is S.AT_CENTRAL) == (moved.holder_index == path_length - 1)
                assert (moved.state is S.RETURNED) == (moved.holder_index == 0)


@pytest.mark.parametrize(
    ("action", "state"),
    [(action, state) for action in Action for state in State if state not in SPEC_TABLE[action][0]],
)
def test_target_refuses_an_impossible_action(action, state):
    with pytest.raises(ValueError):
        target(action, Position(state, 1), PATH)


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (R.CLERK, {S.RECORDED, S.RETURNED}),
        (R.REVIEWER, {S.IN_REVIEW, S.AT_CENTRAL}),
        (R.CENTRAL, {S.IN_REVIEW, S.AT_CENTRAL}),
        (R.MEMBER, set()),
        (R.ADMIN, set()),
    ],
)
def test_actionable_states_are_the_sources_of_the_roles_actions(role, expected):
    assert actionable_states(role) == expected


def test_the_clerk_owes_a_refund_of_rejected_payments_wherever_they_are_held():
    assert actionable_states(R.CLERK, ActingOrg.GRASSROOTS) == {S.REJECTED}
    assert actionable_states(R.REVIEWER, ActingOrg.GRASSROOTS) == set()

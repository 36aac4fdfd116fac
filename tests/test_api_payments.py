"""Payments API: the order of checks, every action from every state by every role, corrections, events,
visibility, pagination, the inbox and Idempotency-Key."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from conftest import PATH_TO_CENTRAL, advance, payment_row
from sqlalchemy import event, func, select, text

from duesflow.extensions import db
from duesflow.models import Event, IdempotencyKey, Org, Payment, utcnow
from duesflow.services import audit, idempotency
from duesflow.services import orgs as org_service
from duesflow.services.idempotency import canonical_hash
from duesflow.timeutil import beijing_today
from duesflow.workflow import OrgKind

REASON = "金额与登记册不符，请核对。"
Step = tuple[str, str, str | None]
UP: list[Step] = [(action, user, None) for action, user in PATH_TO_CENTRAL]
REVIEW = {"forward", "return", "reject"}


@dataclass(frozen=True)
class Situation:
    """A 北门 payment brought to one state by real API calls, and who may act on it there."""

    steps: list[Step]
    state: str
    holder_org: str
    holder_user: str | None  # who may act on it there
    actions: set[str]


# Written out by hand from SPEC §4, independently of duesflow.workflow.
SITUATIONS: dict[str, Situation] = {
    "recorded": Situation([], "recorded", "beimen", "clerk", {"submit", "withdraw"}),
    "in_review@tiedong": Situation(UP[:1], "in_review", "tiedong", "tiedong", REVIEW),
    "in_review@siping": Situation(UP[:2], "in_review", "siping", "siping", REVIEW),
    "in_review@jilin": Situation(UP[:3], "in_review", "jilin", "jilin", REVIEW),
    "at_central": Situation(UP, "at_central", "central", "central", {"return", "reject", "confirm"}),
    "receipted": Situation(UP + [("confirm", "central", None)], "receipted", "central", None, set()),
    "returned": Situation(UP[:1] + [("return", "tiedong", REASON)], "returned", "beimen", "clerk",
                          {"submit", "withdraw"}),
    # held where it was rejected, refunded by the clerk of the grassroots org that collected it (SPEC §9)
    "rejected@siping": Situation(UP[:2] + [("reject", "siping", REASON)], "rejected", "siping", "clerk",
                                 {"refund"}),
    "withdrawn": Situation([("withdraw", "clerk", REASON)], "withdrawn", "beimen", None, set()),
}
ACTIONS = ["submit", "forward", "return", "reject", "confirm", "withdraw", "refund"]
NEEDS_REASON = {"return", "reject", "withdraw"}
NEEDS_BODY = NEEDS_REASON | {"refund"}  # a refund's date and method


def action_body(action: str) -> dict:
    """A valid body for ``action``."""
    if action == "refund":
        return {"refunded_on": beijing_today().isoformat(), "method": "cash"}
    return {"reason": REASON} if action in NEEDS_REASON else {}
ROLE_OF = {"clerk": "clerk", "tiedong": "reviewer", "siping": "reviewer", "jilin": "reviewer",
           "central": "central", "member": "member"}
ROLE_MAY = {"clerk": {"submit", "withdraw", "refund"}, "reviewer": {"forward", "return", "reject"},
            "central": {"return", "reject", "confirm"}, "member": set()}
INSIDERS = list(ROLE_OF)  # users whose subtree holds 北门 (and zhang, the member himself)
OUTSIDERS = ["clerk_jiefang", "clerk_dongcheng", "beijing", "member_li"]
BEIJING_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+08:00$")


def bring(api, world, situation: str, member: str = "zhang", amount: str = "1000.00") -> int:
    payment = api.record(world.members[member], amount)
    for action, user, reason in SITUATIONS[situation].steps:
        api.act(payment["id"], action, user, reason)
    return payment["id"]


def event_count(payment_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(Event).where(Event.payment_id == payment_id))


def expected_status(user: str, situation: str, action: str) -> tuple[int, str | None]:
    """SPEC §2 order of checks for an insider sending no body: 403 role, 409 place/state, 422 reason."""
    if action not in ROLE_MAY[ROLE_OF[user]]:
        return 403, "forbidden"
    here = SITUATIONS[situation]
    if here.holder_user != user or action not in here.actions:
        return 409, "invalid_transition"
    if action in NEEDS_BODY:
        return 422, "validation_error"
    return 200, None


def body_for(world, **changes):  # noqa: ANN201
    today = beijing_today().isoformat()
    return {"member_id": world.members["zhang"].id, "amount": "1000.00", "collected_on": today,
            "method": "cash", "regular_dues_paid": True, **changes}


# ---- order of checks -----------------------------------------------------------------------------


def snapshot(payment_id: int) -> tuple[str, int, int]:
    row = payment_row(payment_id)
    return row.state, row.holder_org_id, event_count(payment_id)


@pytest.mark.parametrize("user", INSIDERS)
@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_every_action_without_a_body_follows_the_order_of_checks(api, world, situation, user):
    payment_id = bring(api, world, situation)
    answers = {}
    for action in ACTIONS:
        before = snapshot(payment_id)
        response = api.post(f"/payments/{payment_id}/{action}", user)
        succeeded = response.status_code == 200
        answers[action] = (response.status_code, None if succeeded else response.json["error"]["code"])
        if succeeded:
            assert response.json["events"][-1]["action"] == action
            assert event_count(payment_id) == before[2] + 1
            payment_id = bring(api, world, situation)  # a fresh one for the next action
        else:
            assert snapshot(payment_id) == before, action  # nothing moved, no event written
    assert answers == {action: expected_status(user, situation, action) for action in ACTIONS}


@pytest.mark.parametrize("situation", list(SITUATIONS))
@pytest.mark.parametrize("outsider", OUTSIDERS)
def test_outsider_gets_404_on_every_payment_endpoint(api, world, outsider, situation):
    payment_id = bring(api, world, situation)
    answers = [
        api.get(f"/payments/{payment_id}", outsider),
        api.patch(f"/payments/{payment_id}", outsider, json={"method": "wechat"}),
        api.get(f"/payments/{payment_id}/receipt.pdf", outsider),
        api.post(f"/payments/{payment_id}/approve", outsider),
    ]
    for action in ACTIONS:
        answers.append(api.post(f"/payments/{payment_id}/{action}", outsider, json={"reason": REASON}))
    assert [(r.status_code, r.json["error"]["code"]) for r in answers] == [(404, "not_found")] * len(answers)
    listed = api.get("/payments?limit=200", outsider).json["items"]
    assert payment_id not in [item["id"] for item in listed]
    assert event_count(payment_id) == len(SITUATIONS[situation].steps) + 1


def test_unknown_payment_is_404_like_an_invisible_one(api, world):
    response = api.get("/payments/999999", "central")
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


@pytest.mark.parametrize("name", ["approve", "Submit", "refund!", "receipt"])
@pytest.mark.parametrize("user", INSIDERS)
def test_unknown_action_is_404_before_the_role_check(api, world, user, name):
    payment_id = bring(api, world, "recorded")
    response = api.post(f"/payments/{payment_id}/{name}", user, json={"reason": REASON})
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"
    assert payment_row(payment_id).state == "recorded"


@pytest.mark.parametrize(
    ("user", "action"),
    [("member", "forward"), ("member", "submit"), ("jilin", "confirm"), ("clerk", "forward"),
     ("central", "submit"), ("central", "forward"), ("tiedong", "withdraw")],
)
def test_role_that_can_never_act_gets_403_even_where_the_payment_is_held(api, world, user, action):
    situation = {"clerk": "recorded", "member": "recorded", "jilin": "in_review@jilin",
                 "central": "at_central", "tiedong": "in_review@tiedong"}[user]
    payment_id = bring(api, world, situation)
    response = api.post(f"/payments/{payment_id}/{action}", user, json={"reason": REASON})
    assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("situation", "user", "action"),
    [("in_review@tiedong", "siping", "return"), ("in_review@siping", "tiedong", "reject"),
     ("at_central", "jilin", "return"), ("receipted", "central", "reject"),
     ("withdrawn", "clerk", "withdraw"), ("in_review@tiedong", "clerk", "withdraw")],
)
def test_missing_reason_is_checked_only_after_place_and_state(api, world, situation, user, action):
    payment_id = bring(api, world, situation)
    response = api.post(f"/payments/{payment_id}/{action}", user)
    assert response.status_code == 409 and response.json["error"]["code"] == "invalid_transition"


@pytest.mark.parametrize("reason_body", [None, {}, {"reason": None}, {"reason": ""}, {"reason": "   "}])
def test_return_without_a_reason_is_422(api, world, reason_body):
    payment_id = bring(api, world, "in_review@tiedong")
    response = api.post(f"/payments/{payment_id}/return", "tiedong", json=reason_body)
    assert response.status_code == 422 and response.json["error"]["code"] == "validation_error"
    assert "reason" in response.json["error"]["fields"]
    assert payment_row(payment_id).state == "in_review"


def _admin_requests(payment_id: int, world) -> list[tuple[str, str, dict | None]]:  # noqa: ANN001
    return [
        ("GET", "/payments", None),
        ("GET", "/payments?holder=me", None),
        ("POST", "/payments", body_for(world)),
        ("GET", f"/payments/{payment_id}", None),
        ("PATCH", f"/payments/{payment_id}", {"method": "wechat"}),
        ("GET", f"/payments/{payment_id}/receipt.pdf", None),
        ("GET", "/payments/999999", None),
    ] + [("POST", f"/payments/{payment_id}/{action}", {"reason": REASON}) for action in ACTIONS]


def test_admin_gets_403_on_every_payment_endpoint(api, world):
    payment_id = bring(api, world, "receipted")
    for method, path, body in _admin_requests(payment_id, world):
        response = api.call(method, path, "admin", json=body)
        assert (response.status_code, response.json["error"]["code"]) == (403, "forbidden"), (method, path)


def test_unauthenticated_requests_get_401(api, world):
    payment_id = bring(api, world, "recorded")
    for method, path, body in _admin_requests(payment_id, world):
        response = api.call(method, path, None, json=body)
        assert response.status_code == 401, (method, path)
        assert response.json["error"]["code"] == "unauthenticated"


def test_member_cannot_create_a_payment_and_is_sent_to_the_grassroots_committee(api, world):
    response = api.post("/payments", "member", json=body_for(world))
    assert response.status_code == 403
    assert response.json["error"]["code"] == "direct_payment_refused"
    assert "基层党委" in response.json["error"]["message"]
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0


@pytest.fixture
def steps(monkeypatch):  # noqa: ANN201
    """What a request did, in order: "load" for each validation of a body, "sql" for each statement sent."""
    from duesflow.api import framework

    done: list[str] = []
    real_load = framework.load

    def loading(schema, data):  # noqa: ANN001, ANN202
        done.append("load")
        return real_load(schema, data)

    def statement(*_args) -> None:  # noqa: ANN002
        done.append("sql")

    monkeypatch.setattr(framework, "load", loading)
    event.listen(db.engine, "before_cursor_execute", statement)
    yield done
    event.remove(db.engine, "before_cursor_execute", statement)


def test_a_small_body_is_validated_once_before_the_first_statement(api, world, steps):
    """On SQLite the first statement of a writing request takes the one writer lock: the body's parsing and
    validation stay out of it. The Idempotency-Key's fingerprint reads the same parsed body."""
    api.token("clerk")
    body = body_for(world)
    steps.clear()
    assert api.post("/payments", "clerk", json=body, headers={"Idempotency-Key": "early-body"}).status_code == 201
    assert steps[0] == "load" and steps.count("load") == 1 and "sql" in steps, steps


def test_a_body_read_early_keeps_its_refusal_for_its_turn(api, world):
    """Worked out before the token is read, a bad body is still refused only after authentication and the role."""
    malformed = {"data": b"{not json", "content_type": "application/json"}
    assert api.post("/payments", None, **malformed).json["error"]["code"] == "unauthenticated"
    assert api.post("/payments", "member", **malformed).json["error"]["code"] == "direct_payment_refused"
    assert api.post("/payments", "tiedong", json={"amount": 1}).json["error"]["code"] == "forbidden"
    assert api.post("/payments", "clerk", **malformed).json["error"]["code"] == "malformed_request"
    refused = api.post("/payments", "clerk", json=body_for(world, amount="12.5"))
    assert refused.status_code == 422 and refused.json["error"]["code"] == "amount_below_minimum"
    stranger = api.post("/payments", "clerk", json=body_for(world, member_id=world.members["zhou"].id,
                                                            amount="x"))
    assert stranger.status_code == 422 and stranger.json["error"]["code"] == "invalid_amount"


def test_batch_entry_does_not_validate_its_body_as_a_whole_ahead(api, world, steps):
    """Its rows are checked one by one by the view; the batch schema is only its documentation."""
    api.token("clerk")
    body = {"rows": [body_for(world), body_for(world, amount="2000.00")]}
    steps.clear()
    assert api.post("/payments/batch", "clerk", json=body).status_code == 201
    assert "load" not in steps and steps


def test_a_large_body_is_read_only_when_the_view_gets_to_it(api, world, steps):
    """A body above the limit (or a file upload) is not parsed ahead of authentication."""
    from duesflow.api.framework import EARLY_BODY_LIMIT

    api.token("clerk")
    body = body_for(world, note="注" * EARLY_BODY_LIMIT)
    steps.clear()
    assert api.post("/payments", "clerk", json=body).status_code == 422
    assert steps[0] == "sql" and steps.count("load") == 1, steps
    steps.clear()
    assert api.post("/payments", None, json=body).status_code == 401
    assert "load" not in steps


def test_a_request_without_a_token_gets_its_401_without_its_body_read(api, world, steps, app, monkeypatch):
    """The work before authentication stays small: no token, no body read; nor a body over the request's limit."""
    body = body_for(world)
    steps.clear()
    assert api.post("/payments", None, json=body).status_code == 401
    assert api.post("/payments", None, json=body, headers={"Authorization": "Basic eDp5"}).status_code == 401
    assert "load" not in steps
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 100)  # below the body's size and the early limit
    stranger = api.post("/payments", None, json=body, headers={"Authorization": "Bearer not-a-token"})
    assert stranger.status_code == 401 and "load" not in steps


@pytest.mark.parametrize("user", ["tiedong", "central"])
def test_reviewer_and_central_cannot_record_payments(api, world, user):
    response = api.post("/payments", user, json=body_for(world))
    assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"


def test_clerk_cannot_record_for_a_member_of_another_org(api, world):
    """Refused, and nothing of it stays: no payment, and the audit chain's position reserved with the payment's
    INSERT (PostgreSQL) goes back with the request's rollback, so the trail still verifies."""
    heads = audit.chain_heads()
    response = api.post("/payments", "clerk", json=body_for(world, member_id=world.members["zhou"].id))
    assert response.status_code == 422 and "member_id" in response.json["error"]["fields"]
    db.session.rollback()
    assert audit.chain_heads() == heads
    assert audit.verify_audit() is None
    assert api.post("/payments", "clerk", json=body_for(world)).status_code == 201
    assert audit.verify_audit() is None


@pytest.mark.parametrize(("changes", "code"), [
    ({"amount": "999.00"}, "amount_below_minimum"),
    ({"regular_dues_paid": False}, "regular_dues_unpaid"),
    ({"collected_on": "2007-12-31"}, "validation_error"),
])
def test_another_orgs_member_is_refused_before_the_payment_rules(api, world, changes, code):
    """The member check comes first even though it now rides on the payment's INSERT: a body the rules refuse
    for a member of another org is refused for the member; for one of the org's own, for the rule."""
    stranger = api.post("/payments", "clerk", json=body_for(world, member_id=world.members["zhou"].id, **changes))
    assert stranger.status_code == 422 and stranger.json["error"]["code"] == "validation_error"
    assert list(stranger.json["error"]["fields"]) == ["member_id"]
    own = api.post("/payments", "clerk", json=body_for(world, **changes))
    assert own.status_code == 422 and own.json["error"]["code"] == code
    assert "member_id" not in own.json["error"].get("fields", {})


# ---- available_actions ---------------------------------------------------------------------------


@pytest.mark.parametrize("user", INSIDERS)
@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_available_actions_are_exactly_what_succeeds(api, world, situation, user):
    payment_id = bring(api, world, situation)
    listed = api.get(f"/payments/{payment_id}", user).json["available_actions"]
    expected = SITUATIONS[situation].actions if SITUATIONS[situation].holder_user == user else set()
    assert set(listed) == expected and len(listed) == len(expected)

    for action in listed:
        fresh = bring(api, world, situation)
        done = api.post(f"/payments/{fresh}/{action}", user, json=action_body(action))
        assert done.status_code == 200 and done.json["events"][-1]["action"] == action
    for action in set(ACTIONS) - set(listed):
        response = api.post(f"/payments/{payment_id}/{action}", user, json={"reason": REASON})
        assert response.status_code in (403, 409), (action, response.json)
    assert payment_row(payment_id).state == SITUATIONS[situation].state


@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_each_situation_has_its_state_and_holder(api, world, situation):
    payment_id = bring(api, world, situation)
    payment = api.get(f"/payments/{payment_id}", "central").json
    assert payment["state"] == SITUATIONS[situation].state
    assert payment["holder_org"] == {"id": world.orgs[SITUATIONS[situation].holder_org].id,
                                     "name": world.orgs[SITUATIONS[situation].holder_org].name}


# ---- moving along the path -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("situation", "returner", "state", "holder"),
    [("at_central", "central", "in_review", "jilin"), ("in_review@jilin", "jilin", "in_review", "siping"),
     ("in_review@siping", "siping", "in_review", "tiedong"),
     ("in_review@tiedong", "tiedong", "returned", "beimen")],
)
def test_return_goes_exactly_one_level_down(api, world, situation, returner, state, holder):
    payment_id = bring(api, world, situation)
    payment = api.act(payment_id, "return", returner, REASON)
    assert (payment["state"], payment["holder_org"]["id"]) == (state, world.orgs[holder].id)
    assert payment["events"][-1]["note"] == REASON


def test_returned_payment_is_resubmitted_to_the_parent(api, world):
    payment_id = bring(api, world, "returned")
    payment = api.act(payment_id, "submit", "clerk")
    assert (payment["state"], payment["holder_org"]["id"]) == ("in_review", world.orgs["tiedong"].id)
    assert [e["action"] for e in payment["events"]] == ["record", "submit", "return", "submit"]


def _insert_level_above_siping(world) -> Org:  # noqa: ANN001
    """Reshape the tree: a new intermediate org between 吉林 and 四平 (as a reorganisation would)."""
    siping = world.orgs["siping"]
    jilin = world.orgs["jilin"]
    new_level = org_service.create_org("中共吉林省委四平地区工作委员会", OrgKind.INTERMEDIATE, jilin.id)
    old_prefix, new_prefix = siping.tree_path, f"{new_level.tree_path}{siping.id}/"
    for org in db.session.scalars(select(Org).where(Org.tree_path.startswith(old_prefix))):
        org.tree_path = new_prefix + org.tree_path[len(old_prefix):]
    siping.parent_id = new_level.id
    db.session.commit()
    return new_level


def test_resubmit_keeps_the_path_fixed_at_first_submit(api, world):
    payment_id = bring(api, world, "returned")
    path = payment_row(payment_id).path
    new_level = _insert_level_above_siping(world)

    holders = [api.act(payment_id, action, user)["holder_org"]["id"] for action, user in PATH_TO_CENTRAL]

    assert holders == [world.orgs[name].id for name in ("tiedong", "siping", "jilin", "central")]
    assert payment_row(payment_id).path == path
    later = api.record(world.members["li"])["id"]
    # the reshaped tree does apply to payments submitted after it
    assert advance(api, later, 3)["holder_org"]["id"] == new_level.id


@pytest.mark.parametrize(
    ("situation", "rejecter"),
    [("in_review@tiedong", "tiedong"), ("in_review@siping", "siping"), ("in_review@jilin", "jilin"),
     ("at_central", "central")],
)
def test_reject_stops_the_payment_at_the_rejecting_org(api, world, situation, rejecter):
    payment_id = bring(api, world, situation)
    payment = api.act(payment_id, "reject", rejecter, REASON)
    assert payment["state"] == "rejected" and payment["holder_org"]["id"] == world.orgs[rejecter].id
    assert payment["available_actions"] == [] and payment["receipt"] is None
    assert payment["events"][-1]["note"] == REASON


@pytest.mark.parametrize("situation", ["recorded", "returned"])
def test_clerk_withdraws_a_payment_held_at_the_grassroots_org(api, world, situation):
    payment_id = bring(api, world, situation)
    payment = api.act(payment_id, "withdraw", "clerk", "党员本人要求撤回。")
    assert (payment["state"], payment["holder_org"]["id"]) == ("withdrawn", world.orgs["beimen"].id)
    assert payment["events"][-1]["note"] == "党员本人要求撤回。"
    assert api.act(payment_id, "submit", "clerk", expect=409)["error"]["code"] == "invalid_transition"


# ---- events --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("situation", "action", "user", "reason", "to_state", "to_org"),
    [("recorded", "submit", "clerk", None, "in_review", "tiedong"),
     ("in_review@tiedong", "forward", "tiedong", None, "in_review", "siping"),
     ("in_review@jilin", "forward", "jilin", None, "at_central", "central"),
     ("in_review@siping", "return", "siping", REASON, "in_review", "tiedong"),
     ("in_review@siping", "reject", "siping", REASON, "rejected", "siping"),
     ("at_central", "confirm", "central", None, "receipted", "central"),
     ("returned", "withdraw", "clerk", REASON, "withdrawn", "beimen")],
)
def test_each_action_writes_exactly_one_event(api, world, situation, action, user, reason, to_state, to_org):
    payment_id = bring(api, world, situation)
    before = api.get(f"/payments/{payment_id}", "central").json

    payment = api.act(payment_id, action, user, reason)

    assert payment["events"][:-1] == before["events"]
    assert event_count(payment_id) == len(before["events"]) + 1
    event = payment["events"][-1]
    assert event["action"] == action
    assert event["actor"] == {"id": world.users[user].id, "username": user, "display_name": ""}
    assert (event["from_state"], event["to_state"]) == (before["state"], to_state)
    assert event["from_org"] == before["holder_org"]
    assert event["to_org"] == {"id": world.orgs[to_org].id, "name": world.orgs[to_org].name}
    assert event["note"] == reason
    assert BEIJING_ISO.match(event["at"]), event["at"]


def test_recording_writes_the_record_event(api, world):
    payment = api.get(f"/payments/{bring(api, world, 'recorded')}", "clerk").json
    (event,) = payment["events"]
    assert event["action"] == "record" and event["from_state"] is None and event["from_org"] is None
    assert event["to_state"] == "recorded" and event["to_org"]["id"] == world.orgs["beimen"].id
    assert event["actor"]["username"] == "clerk" and BEIJING_ISO.match(event["at"])
    assert BEIJING_ISO.match(payment["created_at"]) and BEIJING_ISO.match(payment["updated_at"])


# ---- corrections (PATCH) -------------------------------------------------------------------------


@pytest.mark.parametrize("situation", ["recorded", "returned"])
def test_clerk_corrects_a_payment_at_the_grassroots_org_with_a_correct_event(api, world, situation):
    payment_id = bring(api, world, situation)
    yesterday = (beijing_today() - timedelta(days=1)).isoformat()
    changes = {"amount": "2000.5", "collected_on": yesterday, "method": "wechat"}

    response = api.patch(f"/payments/{payment_id}", "clerk", json=changes)

    assert response.status_code == 200, response.json
    payment = response.json
    assert (payment["amount"], payment["collected_on"], payment["method"]) == ("2000.50", yesterday, "wechat")
    assert payment["state"] == SITUATIONS[situation].state
    event = payment["events"][-1]
    assert event["action"] == "correct" and event["actor"]["username"] == "clerk"
    assert event["from_state"] == event["to_state"] == SITUATIONS[situation].state
    assert event["from_org"]["id"] == event["to_org"]["id"] == world.orgs["beimen"].id
    details = db.session.scalars(select(Event.details).where(Event.payment_id == payment_id)
                                 .order_by(Event.id.desc()).limit(1)).one()
    today = beijing_today().isoformat()
    assert details["old"] == {"amount": "1000.00", "collected_on": today, "method": "cash"}
    assert details["new"] == {"amount": "2000.50", "collected_on": yesterday, "method": "wechat"}


@pytest.mark.parametrize("situation", ["in_review@tiedong", "at_central", "receipted", "rejected@siping",
                                       "withdrawn"])
def test_correction_outside_recorded_and_returned_is_409(api, world, situation):
    payment_id = bring(api, world, situation)
    events = event_count(payment_id)
    response = api.patch(f"/payments/{payment_id}", "clerk", json={"amount": "abc"})
    assert response.status_code == 409 and response.json["error"]["code"] == "invalid_transition"
    assert event_count(payment_id) == events and payment_row(payment_id).amount == 1000


@pytest.mark.parametrize("user", ["tiedong", "central", "member"])
def test_only_a_clerk_corrects(api, world, user):
    payment_id = bring(api, world, "recorded")
    response = api.patch(f"/payments/{payment_id}", user, json={"method": "wechat"})
    assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"


AMOUNT_ERRORS = [
    ("999.99", "amount_below_minimum"), ("0", "amount_below_minimum"), (999, "amount_below_minimum"),
    ("10000000.01", "amount_above_maximum"),
    ("abc", "invalid_amount"), ("1000.001", "invalid_amount"), ("-1000", "invalid_amount"),
    ("1e4", "invalid_amount"), ("01000", "invalid_amount"), ("1,000", "invalid_amount"),
    (" 1000", "invalid_amount"), ("", "invalid_amount"), (None, "invalid_amount"), ("NaN", "invalid_amount"),
    (True, "invalid_amount"), (1000.125, "invalid_amount"),
]


@pytest.mark.parametrize("endpoint", ["create", "correct"])
@pytest.mark.parametrize(("amount", "code"), AMOUNT_ERRORS)
def test_amount_is_validated_alike_on_creation_and_correction(api, world, endpoint, amount, code):
    if endpoint == "create":
        response = api.post("/payments", "clerk", json=body_for(world, amount=amount))
    else:
        payment_id = bring(api, world, "recorded")
        response = api.patch(f"/payments/{payment_id}", "clerk", json={"amount": amount})
        assert payment_row(payment_id).amount == 1000 and event_count(payment_id) == 1
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == code


@pytest.mark.parametrize("endpoint", ["create", "correct"])
def test_collection_date_in_the_future_is_refused_alike(api, world, endpoint):
    tomorrow = (beijing_today() + timedelta(days=1)).isoformat()
    if endpoint == "create":
        response = api.post("/payments", "clerk", json=body_for(world, collected_on=tomorrow))
    else:
        payment_id = bring(api, world, "recorded")
        response = api.patch(f"/payments/{payment_id}", "clerk", json={"collected_on": tomorrow})
    assert response.status_code == 422 and response.json["error"]["code"] == "validation_error"
    assert "collected_on" in response.json["error"]["fields"]


@pytest.mark.parametrize("body", [{}, {"state": "receipted"}, {"method": "cheque"}, {"member_id": 1}])
def test_correction_accepts_only_amount_date_and_method(api, world, body):
    payment_id = bring(api, world, "recorded")
    response = api.patch(f"/payments/{payment_id}", "clerk", json=body)
    assert response.status_code == 422 and response.json["error"]["code"] == "validation_error"
    assert event_count(payment_id) == 1


@pytest.mark.parametrize("amount", ["1000", "1000.5", "1000.00", 1000, 2500.75])
def test_valid_amounts_are_given_back_with_two_decimals(api, world, amount):
    response = api.post("/payments", "clerk", json=body_for(world, amount=amount))
    assert response.status_code == 201, response.json
    assert re.fullmatch(r"\d+\.\d{2}", response.json["amount"])


# ---- visibility, pagination, inbox ---------------------------------------------------------------


def _one_payment_per_member(api, world) -> dict[str, int]:  # noqa: ANN001
    clerk_of = {"zhang": "clerk", "li": "clerk", "zhou": "clerk_jiefang", "wang": "clerk_dongcheng"}
    return {name: api.record(world.members[name], as_user=clerk)["id"] for name, clerk in clerk_of.items()}


@pytest.mark.parametrize(
    ("user", "sees"),
    [("clerk", {"zhang", "li"}), ("clerk_jiefang", {"zhou"}), ("clerk_dongcheng", {"wang"}),
     ("tiedong", {"zhang", "li", "zhou"}), ("siping", {"zhang", "li", "zhou"}),
     ("jilin", {"zhang", "li", "zhou"}),
     ("beijing", {"wang"}), ("central", {"zhang", "li", "zhou", "wang"}), ("member", {"zhang"}),
     ("member_li", {"li"})],
)
def test_list_shows_exactly_the_callers_subtree(api, world, user, sees):
    ids = _one_payment_per_member(api, world)
    response = api.get("/payments", user)
    assert response.status_code == 200
    assert {item["id"] for item in response.json["items"]} == {ids[name] for name in sees}
    assert response.json["next_cursor"] is None


def test_pages_walk_newest_first_without_gaps_or_duplicates(api, world):
    created = [api.record(world.members["zhang"], f"{1000 + n}")["id"] for n in range(7)]
    seen, cursor, pages = [], None, 0
    while True:
        response = api.get("/payments?limit=3" + (f"&cursor={cursor}" if cursor else ""), "clerk")
        assert response.status_code == 200
        seen += [item["id"] for item in response.json["items"]]
        pages += 1
        cursor = response.json["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))
    assert pages == 3


def test_page_is_filtered_by_state(api, world):
    recorded = bring(api, world, "recorded")
    bring(api, world, "withdrawn")
    response = api.get("/payments?state=recorded", "clerk")
    assert [item["id"] for item in response.json["items"]] == [recorded]


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=0", "limit"), ("limit=201", "limit"), ("limit=x", "limit"), ("limit=-1", "limit"),
     ("state=paid", "state"), ("state=", "state"), ("cursor=garbage", "cursor"), ("cursor=W10", "cursor"),
     ("holder=you", "holder")],
)
def test_bad_list_parameters_are_422(api, world, query, field):
    response = api.get(f"/payments?{query}", "clerk")
    assert response.status_code == 422 and response.json["error"]["code"] == "validation_error"
    assert field in response.json["error"]["fields"]


def test_limit_200_is_allowed(api, world):
    assert api.get("/payments?limit=200", "clerk").status_code == 200


INBOX = {
    "clerk": {"recorded", "returned", "rejected@siping"},
    "clerk_jiefang": {"jiefang"},
    "tiedong": {"in_review@tiedong"},
    "siping": {"in_review@siping"},
    "jilin": {"in_review@jilin"},
    "central": {"at_central"},
    "beijing": set(),
    "member": set(),
}


@pytest.mark.parametrize(("user", "expected"), list(INBOX.items()))
def test_holder_me_is_the_inbox_of_each_role(api, world, user, expected):
    ids = {situation: bring(api, world, situation) for situation in SITUATIONS}
    ids["jiefang"] = api.record(world.members["zhou"], as_user="clerk_jiefang")["id"]
    response = api.get("/payments?holder=me", user)
    assert response.status_code == 200
    assert {item["id"] for item in response.json["items"]} == {ids[name] for name in expected}
    assert all(item["available_actions"] for item in response.json["items"])


# ---- Idempotency-Key -----------------------------------------------------------------------------


def _payments() -> int:
    return db.session.scalar(select(func.count()).select_from(Payment))


def test_replay_with_the_same_key_and_body_returns_the_first_answer(api, world):
    first = api.post("/payments", "clerk", json=body_for(world), headers={"Idempotency-Key": "k-1"})
    reordered = dict(reversed(list(body_for(world).items())))
    again = api.post("/payments", "clerk", json=reordered, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.get_data() == first.get_data()
    assert _payments() == 1 and event_count(first.json["id"]) == 1


def test_same_key_with_another_body_is_a_conflict(api, world):
    api.post("/payments", "clerk", json=body_for(world), headers={"Idempotency-Key": "k-1"})
    other = body_for(world, amount="2000")
    response = api.post("/payments", "clerk", json=other, headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 409 and response.json["error"]["code"] == "idempotency_conflict"
    assert _payments() == 1


def test_keys_are_scoped_to_their_user(api, world):
    mine = api.post("/payments", "clerk", json=body_for(world), headers={"Idempotency-Key": "shared"})
    theirs = api.post("/payments", "clerk_jiefang", json=body_for(world, member_id=world.members["zhou"].id),
                      headers={"Idempotency-Key": "shared"})
    assert mine.status_code == theirs.status_code == 201
    assert theirs.json["id"] != mine.json["id"] and _payments() == 2


def test_a_4xx_answer_is_not_stored_so_the_key_can_be_retried(api, world):
    too_small = body_for(world, amount="999")
    refused = api.post("/payments", "clerk", json=too_small, headers={"Idempotency-Key": "k-2"})
    fixed = api.post("/payments", "clerk", json=body_for(world), headers={"Idempotency-Key": "k-2"})
    assert refused.status_code == 422 and refused.json["error"]["code"] == "amount_below_minimum"
    assert fixed.status_code == 201 and _payments() == 1


@pytest.mark.parametrize("key", ["", "x" * 256])
def test_unusable_idempotency_key_is_422(api, world, key):
    response = api.post("/payments", "clerk", json=body_for(world), headers={"Idempotency-Key": key})
    assert response.status_code == 422 and _payments() == 0



def _claim(world, body: dict, state: str, age: timedelta) -> None:  # noqa: ANN001
    db.session.add(IdempotencyKey(user_id=world.users["clerk"].id, key="k-3", state=state,
                                  request_hash=canonical_hash(body), created_at=utcnow() - age))
    db.session.commit()


# A committed key row without its answer was claimed by an earlier version (which committed the claim before the
# work): its request is over and failed. Today a key row is only ever committed with its answer.
@pytest.mark.parametrize(("state", "age"), [("in_flight", timedelta(seconds=1)), ("in_flight", timedelta(minutes=5)),
                                            ("done", timedelta(hours=25))])
def test_abandoned_or_expired_key_may_be_used_again(api, world, state, age):
    _claim(world, body_for(world, amount="5000"), state, age)
    response = api.post("/payments", "clerk", json=body_for(world), headers={"Idempotency-Key": "k-3"})
    assert response.status_code == 201 and _payments() == 1


def test_the_bounded_wait_of_a_claim_ends_with_it(app, world, database_url):
    """PostgreSQL: lock_timeout bounds the key's INSERT only; the rest of the request waits as long as it must:
    the setting is back at the value it had, the session's or one set for the transaction."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    for set_before in (None, "7s"):
        if set_before is not None:
            db.session.execute(text(f"SET LOCAL lock_timeout = '{set_before}'"))
        before = db.session.execute(text("SHOW lock_timeout")).scalar_one()
        assert before == (set_before or "0")
        claimed = idempotency.claim(world.users["clerk"], f"k-wait-{set_before}", body_for(world))
        assert isinstance(claimed, idempotency.Claim)
        assert db.session.execute(text("SHOW lock_timeout")).scalar_one() == before
        db.session.rollback()

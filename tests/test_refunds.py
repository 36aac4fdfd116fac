"""Money owed back (SPEC §9): a rejected payment is refunded by the clerk of the committee that collected it, a
refused direct remittance is returned by central, and a report says what is still owed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import advance, payment_row
from sqlalchemy import func, select

from duesflow.extensions import db
from duesflow.models import DirectRemittance, Event, Refund
from duesflow.timeutil import beijing_today

REASON = "无法核实党员身份"


def today() -> str:
    return beijing_today().isoformat()


def rejected(api, world, at: str = "siping", member: str = "zhang", amount: str = "1000.00") -> int:
    """A 北门 payment rejected at ``at`` (tiedong, siping, jilin or central)."""
    clerk = "clerk_jiefang" if member == "zhou" else "clerk"
    payment_id = api.record(world.members[member], amount, as_user=clerk)["id"]
    if member == "zhou":
        api.act(payment_id, "submit", clerk)
        steps = ["tiedong", "siping", "jilin", "central"].index(at)
        for reviewer in ["tiedong", "siping", "jilin"][:steps]:
            api.act(payment_id, "forward", reviewer)
    else:
        advance(api, payment_id, ["tiedong", "siping", "jilin", "central"].index(at) + 1)
    api.act(payment_id, "reject", at, REASON)
    return payment_id


def refund(api, payment_id: int, user: str = "clerk", **changes):  # noqa: ANN201
    return api.post(f"/payments/{payment_id}/refund", user,
                    json={"refunded_on": today(), "method": "bank_transfer", "reference": "退-001", **changes})


def audit_passes(runner) -> None:  # noqa: ANN001
    result = runner.invoke(args=["verify-audit"])
    assert result.exit_code == 0, result.output


# ---- refunds -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("at", ["tiedong", "siping", "central"])
def test_the_clerk_refunds_a_payment_rejected_anywhere_on_its_path(api, world, runner, at):
    payment_id = rejected(api, world, at)
    assert api.get(f"/payments/{payment_id}", "clerk").json["available_actions"] == ["refund"]
    assert api.get(f"/payments/{payment_id}", at).json["available_actions"] == []

    response = refund(api, payment_id)

    assert response.status_code == 200, response.json
    body = response.json
    assert (body["state"], body["holder_org"]["id"]) == ("refunded", world.orgs["beimen"].id)
    assert body["available_actions"] == []
    event = body["events"][-1]
    assert (event["action"], event["from_state"], event["to_state"]) == ("refund", "rejected", "refunded")
    assert (event["from_org"]["id"], event["to_org"]["id"]) == (world.orgs[at].id, world.orgs["beimen"].id)
    assert event["actor"]["username"] == "clerk" and "银行转账" in event["note"] and "退-001" in event["note"]
    row = db.session.scalars(select(Refund).where(Refund.payment_id == payment_id)).one()
    assert (row.refunded_on.isoformat(), row.method, row.reference) == (today(), "bank_transfer", "退-001")
    details = db.session.scalars(select(Event.details).where(Event.payment_id == payment_id)
                                 .order_by(Event.id.desc()).limit(1)).one()
    assert details == {"refunded_on": today(), "method": "bank_transfer", "reference": "退-001"}
    audit_passes(runner)


def test_a_refunded_payment_is_terminal(api, world):
    payment_id = rejected(api, world)
    assert refund(api, payment_id).status_code == 200

    again = refund(api, payment_id)

    assert again.status_code == 409 and again.json["error"]["code"] == "invalid_transition"
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 1
    for action in ("submit", "withdraw"):
        assert api.post(f"/payments/{payment_id}/{action}", "clerk", json={"reason": "x"}).status_code == 409


def test_the_reference_is_optional(api, world):
    payment_id = rejected(api, world)
    response = api.post(f"/payments/{payment_id}/refund", "clerk", json={"refunded_on": today(), "method": "cash"})
    assert response.status_code == 200 and "凭证号" not in response.json["events"][-1]["note"]


@pytest.mark.parametrize(("user", "status", "code"), [
    ("clerk_jiefang", 404, "not_found"), ("beijing", 404, "not_found"), ("member_li", 404, "not_found"),
    ("admin", 403, "forbidden"), ("siping", 403, "forbidden"), ("tiedong", 403, "forbidden"),
    ("central", 403, "forbidden"), ("member", 403, "forbidden"),
])
def test_only_the_collecting_clerk_may_refund(api, world, user, status, code):
    payment_id = rejected(api, world)

    response = refund(api, payment_id, user, method="nonsense")  # a bad body too: the role is checked first

    assert (response.status_code, response.json["error"]["code"]) == (status, code)
    assert payment_row(payment_id).state == "rejected"


@pytest.mark.parametrize("state", ["recorded", "in_review", "receipted", "withdrawn"])
def test_only_a_rejected_payment_can_be_refunded(api, world, state):
    payment_id = api.record(world.members["zhang"])["id"]
    if state == "in_review":
        advance(api, payment_id, 1)
    elif state == "receipted":
        advance(api, payment_id, 4)
        api.act(payment_id, "confirm", "central")
    elif state == "withdrawn":
        api.act(payment_id, "withdraw", "clerk", "重复")

    response = refund(api, payment_id, method="nonsense")  # 409 before the body is looked at

    assert response.status_code == 409 and response.json["error"]["code"] == "invalid_transition"
    assert payment_row(payment_id).state == state


@pytest.mark.parametrize(("changes", "field"), [
    ({"refunded_on": None}, "refunded_on"),
    ({"refunded_on": "2026-13-01"}, "refunded_on"),
    ({"refunded_on": (beijing_today() + timedelta(days=1)).isoformat()}, "refunded_on"),
    ({"refunded_on": "2008-01-01"}, "refunded_on"),  # before the money was collected
    ({"method": "cheque"}, "method"),
    ({"reference": "x" * 101}, "reference"),
    ({"reason": "多余"}, "reason"),
])
def test_an_invalid_refund_body_is_422_and_nothing_changes(api, world, changes, field):
    payment_id = rejected(api, world)

    response = refund(api, payment_id, **changes)

    assert response.status_code == 422 and field in response.json["error"]["fields"], response.json
    assert payment_row(payment_id).state == "rejected"
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 0


def test_a_rejected_payment_is_in_the_clerks_inbox_until_refunded(api, world):
    payment_id = rejected(api, world)
    assert payment_id in [p["id"] for p in api.get("/payments?holder=me", "clerk").json["items"]]
    assert payment_id not in [p["id"] for p in api.get("/payments?holder=me", "siping").json["items"]]

    refund(api, payment_id)

    assert payment_id not in [p["id"] for p in api.get("/payments?holder=me", "clerk").json["items"]]


# ---- returning refused direct remittances ----------------------------------------------------------------


def remittance(api, name: str = "赵汇款", received_on: str | None = None) -> dict:
    response = api.post("/direct-remittances", "central", json={
        "remitter_name": name, "amount": "500.00", "received_on": received_on or today(), "reference": "邮-9"})
    assert response.status_code == 201, response.json
    return response.json


def test_central_returns_a_refused_remittance_once(api, world):
    recorded = remittance(api)
    assert (recorded["state"], recorded["returned_on"], recorded["return_reference"]) == ("refused", None, None)

    response = api.post(f"/direct-remittances/{recorded['id']}/return", "central",
                        json={"returned_on": today(), "reference": "退汇-1"})

    assert response.status_code == 200, response.json
    assert (response.json["state"], response.json["returned_on"], response.json["return_reference"]) == (
        "returned", today(), "退汇-1")
    row = db.session.get(DirectRemittance, recorded["id"])
    db.session.refresh(row)
    assert (row.state, row.returned_by_id) == ("returned", world.users["central"].id)
    again = api.post(f"/direct-remittances/{recorded['id']}/return", "central", json={"returned_on": today()})
    assert again.status_code == 409 and again.json["error"]["code"] == "invalid_transition"
    listed = api.get("/direct-remittances", "central").json["items"]
    assert [(item["id"], item["state"]) for item in listed] == [(recorded["id"], "returned")]


@pytest.mark.parametrize("user", ["clerk", "jilin", "member", "admin"])
def test_only_central_returns_remittances(api, world, user):
    recorded = remittance(api)
    response = api.post(f"/direct-remittances/{recorded['id']}/return", user, json={"returned_on": today()})
    assert response.status_code == 403


@pytest.mark.parametrize(("body", "field"), [
    ({}, "returned_on"),
    ({"returned_on": (beijing_today() + timedelta(days=1)).isoformat()}, "returned_on"),
    ({"returned_on": (beijing_today() - timedelta(days=3)).isoformat()}, "returned_on"),  # before it arrived
    ({"returned_on": today(), "extra": 1}, "extra"),
])
def test_an_invalid_return_is_422(api, world, body, field):
    recorded = remittance(api, received_on=(beijing_today() - timedelta(days=1)).isoformat())

    response = api.post(f"/direct-remittances/{recorded['id']}/return", "central", json=body)

    assert response.status_code == 422 and field in response.json["error"]["fields"]
    assert db.session.get(DirectRemittance, recorded["id"]).state == "refused"


def test_an_unknown_remittance_is_404(api, world):
    assert api.post("/direct-remittances/999999/return", "central", json={"returned_on": today()}).status_code == 404


# ---- what is still owed back ----------------------------------------------------------------------------


def owed(api, user: str) -> dict:
    response = api.get("/reports/owed", user)
    assert response.status_code == 200, response.json
    return response.json


def test_the_report_lists_what_is_still_owed_over_the_callers_subtree(api, world):
    first = rejected(api, world, "siping", amount="1000.00")
    second = rejected(api, world, "central", amount="2000.50")
    jiefang = rejected(api, world, "tiedong", member="zhou", amount="3000.00")
    refunded = rejected(api, world, "tiedong")
    refund(api, refunded)
    pending = remittance(api, "赵汇款")
    api.post(f"/direct-remittances/{remittance(api, '钱汇款')['id']}/return", "central", json={"returned_on": today()})

    clerk = owed(api, "clerk")
    assert [item["id"] for item in clerk["payments"]] == [first, second]
    assert clerk["payments_total"] == {"count": 2, "amount": "3000.50"}
    assert clerk["remittances"] == [] and clerk["remittances_total"] == {"count": 0, "amount": "0.00"}
    item = clerk["payments"][0]
    assert item["rejected_by"]["id"] == world.orgs["siping"].id and item["reason"] == REASON
    assert item["member"]["name"] == "张建国" and item["rejected_at"] is not None
    assert [item["id"] for item in owed(api, "tiedong")["payments"]] == [first, second, jiefang]
    assert [item["id"] for item in owed(api, "clerk_jiefang")["payments"]] == [jiefang]
    assert owed(api, "beijing")["payments"] == []
    central = owed(api, "central")
    assert [item["id"] for item in central["remittances"]] == [pending["id"]]
    assert central["remittances_total"] == {"count": 1, "amount": "500.00"}
    assert central["payments_total"] == {"count": 3, "amount": "6000.50"}


@pytest.mark.parametrize("user", ["member", "admin"])
def test_members_and_admins_get_no_owed_report(api, world, user):
    assert api.get("/reports/owed", user).status_code == 403


# ---- pages ---------------------------------------------------------------------------------------------


def login(app, username: str):  # noqa: ANN201
    from test_web_pages import Page

    page = Page(app.test_client())
    assert page.login(username).status_code == 302
    return page


def test_the_clerk_refunds_on_the_payment_page(app, api, world, runner):
    payment_id = rejected(api, world)
    page = login(app, "clerk")
    shown = page.get(f"/payments/{payment_id}").get_data(as_text=True)
    assert "退还党员" in shown and 'name="refunded_on"' in shown

    response = page.post(f"/payments/{payment_id}/actions/refund",
                         {"refunded_on": today(), "method": "cash", "reference": ""})

    assert response.status_code == 302
    assert payment_row(payment_id).state == "refunded"
    assert "已退还党员" in page.get(f"/payments/{payment_id}").get_data(as_text=True)
    audit_passes(runner)


def test_a_refund_with_a_future_date_is_refused_on_the_page(app, api, world):
    payment_id = rejected(api, world)
    page = login(app, "clerk")
    future = (beijing_today() + timedelta(days=2)).isoformat()

    response = page.post(f"/payments/{payment_id}/actions/refund", {"refunded_on": future, "method": "cash"})

    assert response.status_code == 422 and 'id="refunded_on-error"' in response.get_data(as_text=True)
    assert payment_row(payment_id).state == "rejected"


def test_the_inbox_offers_no_batch_refund(app, api, world):
    rejected(api, world)
    inbox = login(app, "clerk").get("/inbox").get_data(as_text=True)
    assert 'value="refund"' not in inbox and 'value="submit"' in inbox


def test_the_owed_page_lists_rejections_and_central_returns_remittances_there(app, api, world):
    payment_id = rejected(api, world)
    pending = remittance(api)
    assert f"#{payment_id}" in login(app, "clerk").get("/owed").get_data(as_text=True)
    page = login(app, "central")
    shown = page.get("/owed").get_data(as_text=True)
    assert "赵汇款" in shown and REASON in shown

    response = page.post(f"/direct-remittances/{pending['id']}/return",
                         {"returned_on": today(), "reference": "", "next": "owed"})

    assert response.status_code == 302 and response.headers["Location"].endswith("/owed")
    db.session.expire_all()
    assert db.session.get(DirectRemittance, pending["id"]).state == "returned"
    assert "没有待退回的直接汇款" in page.get("/owed").get_data(as_text=True)


def test_a_refused_return_on_the_remittances_page_says_why(app, api, world):
    pending = remittance(api)
    page = login(app, "central")
    future = (beijing_today() + timedelta(days=2)).isoformat()

    response = page.post(f"/direct-remittances/{pending['id']}/return", {"returned_on": future})

    assert response.status_code == 422 and "未能登记退回" in response.get_data(as_text=True)
    assert page.post(f"/direct-remittances/{pending['id']}/return", {"returned_on": today()}).status_code == 302
    assert "已退回汇款人" in page.get("/direct-remittances").get_data(as_text=True)


def test_the_clerks_inbox_pages_through_recorded_returned_and_rejected_newest_first(api, world):
    """The inbox is merged from one seek per state and place (recorded and returned held here, rejected collected
    here); page by page it gives each of them once, newest first, and nothing else."""
    rejected_ids = [rejected(api, world, at) for at in ("tiedong", "central")]
    returned = api.record(world.members["li"])["id"]
    advance(api, returned, 1)
    api.act(returned, "return", "tiedong", REASON)
    recorded_ids = [api.record(world.members["zhang"], amount=f"{1000 + n}.00")["id"] for n in range(3)]
    in_review = api.record(world.members["li"])["id"]
    advance(api, in_review, 1)  # at 铁东: not the clerk's to act on
    seen: list[int] = []
    path = "/payments?holder=me&limit=2"
    while path:
        response = api.get(path, "clerk")
        assert response.status_code == 200
        assert len(response.json["items"]) <= 2
        seen += [item["id"] for item in response.json["items"]]
        cursor = response.json["next_cursor"]
        path = f"/payments?holder=me&limit=2&cursor={cursor}" if cursor else ""
    expected = {*rejected_ids, returned, *recorded_ids}
    assert sorted(seen) == sorted(expected)  # each once, nothing more
    listed = api.get("/payments?limit=50", "clerk").json["items"]
    newest_first = [item["id"] for item in listed if item["id"] in expected]
    assert seen == newest_first

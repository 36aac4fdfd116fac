"""Member transfer, 组织关系转接 (SPEC §9): the member's clerk moves the member to another active grassroots org;
payments already recorded stay with the org that collected them; the member account keeps its payments."""

from __future__ import annotations

import pytest
from conftest import advance, make_org, payment_row
from test_web_pages import Page

from duesflow.extensions import db
from duesflow.models import Member
from duesflow.workflow import OrgKind


def transfer(api, member_id: int, to_org_id: object, user: str = "clerk"):  # noqa: ANN201
    return api.post(f"/members/{member_id}/transfer", user, json={"to_org_id": to_org_id})


def stored(member_id: int) -> Member:
    db.session.expire_all()
    return db.session.get(Member, member_id)


def test_the_clerk_moves_a_member_to_another_grassroots_org(api, world):
    zhang = world.members["zhang"]

    response = transfer(api, zhang.id, world.orgs["dongcheng"].id)

    assert response.status_code == 200
    assert response.json["id"] == zhang.id
    assert response.json["org"] == {"id": world.orgs["dongcheng"].id, "name": "东城街道党工委"}
    assert response.json["phone"] is None  # no longer this clerk's member: no phone at all
    assert stored(zhang.id).org_id == world.orgs["dongcheng"].id


def test_payments_stay_with_the_org_that_collected_them(api, world):
    zhang = world.members["zhang"]
    in_transit = api.record(zhang, "1200.00")["id"]
    advance(api, in_transit, 2)
    recorded = api.record(zhang, "1300.00")["id"]

    transfer(api, zhang.id, world.orgs["dongcheng"].id)

    for payment_id in (in_transit, recorded):
        assert payment_row(payment_id).grassroots_org_id == world.orgs["beimen"].id
    # the old committee still handles what it collected; the new one neither sees it nor the old payments
    assert api.act(recorded, "submit", "clerk")["state"] == "in_review"
    assert api.get(f"/payments/{recorded}", "clerk_dongcheng").status_code == 404
    # the member and the payments move apart: the old clerk no longer sees the member, the new one does
    assert api.get(f"/members/{zhang.id}", "clerk").status_code == 404
    assert api.get(f"/members/{zhang.id}", "clerk_dongcheng").status_code == 200


def test_the_member_account_keeps_seeing_its_own_payments(api, world):
    zhang = world.members["zhang"]
    before = api.record(zhang, "1200.00")["id"]

    transfer(api, zhang.id, world.orgs["dongcheng"].id)
    after = api.record(zhang, "1500.00", as_user="clerk_dongcheng")["id"]

    listed = api.get("/payments", "member").json["items"]
    assert {item["id"] for item in listed} == {before, after}
    assert {item["grassroots_org"]["name"] for item in listed} == {"北门街道党工委", "东城街道党工委"}


def test_the_new_clerk_records_the_next_payment_and_the_old_one_cannot(api, world):
    zhang = world.members["zhang"]

    transfer(api, zhang.id, world.orgs["jiefang"].id)

    body = {"member_id": zhang.id, "amount": "1000", "collected_on": "2024-05-05", "method": "cash",
            "regular_dues_paid": True}
    assert api.post("/payments", "clerk", json=body).status_code == 422
    assert api.post("/payments", "clerk_jiefang", json=body).status_code == 201


@pytest.mark.parametrize("user", ["clerk_jiefang", "clerk_dongcheng", "beijing"])
def test_outsiders_get_404(api, world, user):
    response = transfer(api, world.members["zhang"].id, world.orgs["jiefang"].id, user)

    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"
    assert stored(world.members["zhang"].id).org_id == world.orgs["beimen"].id


@pytest.mark.parametrize("user", ["tiedong", "jilin", "central", "admin", "member"])
def test_other_roles_get_403(api, world, user):
    response = transfer(api, world.members["zhang"].id, world.orgs["jiefang"].id, user)

    assert response.status_code == 403
    assert stored(world.members["zhang"].id).org_id == world.orgs["beimen"].id


def test_an_unknown_member_is_404_and_no_token_is_401(api, world):
    assert transfer(api, 999999, world.orgs["jiefang"].id).status_code == 404
    assert api.post(f"/members/{world.members['zhang'].id}/transfer",
                    json={"to_org_id": world.orgs["jiefang"].id}).status_code == 401


@pytest.mark.parametrize("target", ["tiedong", "jilin", "central", "beimen", "inactive", "unknown"])
def test_the_target_must_be_another_active_grassroots_org(api, world, target):
    inactive = make_org("已撤销街道党工委", OrgKind.GRASSROOTS, world.orgs["tiedong"])
    inactive.active = False
    db.session.commit()
    to_org_id = {"inactive": inactive.id, "unknown": 99999}.get(target) or world.orgs[target].id

    response = transfer(api, world.members["zhang"].id, to_org_id)

    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert "to_org_id" in response.json["error"]["fields"]
    assert stored(world.members["zhang"].id).org_id == world.orgs["beimen"].id


@pytest.mark.parametrize("body", [{}, {"to_org_id": "5"}, {"to_org_id": None}, {"to_org_id": 0},
                                  {"to_org_id": 5, "reason": "x"}])
def test_a_bad_body_is_422(api, world, body):
    response = api.post(f"/members/{world.members['zhang'].id}/transfer", "clerk", json=body)

    assert response.status_code == 422


def test_a_body_that_is_not_json_is_400(api, world):
    response = api.post(f"/members/{world.members['zhang'].id}/transfer", "clerk", data="to_org_id=5",
                        content_type="application/json")

    assert response.status_code == 400 and response.json["error"]["code"] == "malformed_request"


# ---- the member page ------------------------------------------------------------------------------------


def login(app, username: str) -> Page:
    page = Page(app.test_client())
    assert page.login(username).status_code == 302
    return page


def test_the_member_page_offers_the_transfer_to_the_own_clerk_only(app, world):
    zhang = world.members["zhang"].id

    own = login(app, "clerk").get(f"/members/{zhang}").get_data(as_text=True)
    reviewer = login(app, "tiedong").get(f"/members/{zhang}").get_data(as_text=True)

    assert "组织关系转接" in own and f'action="/members/{zhang}/transfer"' in own
    assert '<optgroup label="中共北京市委组织部">' in own
    assert f'<option value="{world.orgs["jiefang"].id}">中共四平市铁东区委组织部 / 解放街道党工委</option>' in own
    assert f'<option value="{world.orgs["beimen"].id}">' not in own  # not to its own org
    assert "组织关系转接" not in reviewer


def test_the_clerk_transfers_through_the_page(app, world):
    page = login(app, "clerk")
    zhang = world.members["zhang"].id

    response = page.post(f"/members/{zhang}/transfer", {"to_org_id": str(world.orgs["jiefang"].id)})

    assert response.status_code == 302 and response.headers["Location"].endswith("/members")
    assert stored(zhang).org_id == world.orgs["jiefang"].id
    assert "张建国 的组织关系已转入 解放街道党工委" in page.get("/members").get_data(as_text=True)


@pytest.mark.parametrize(("user", "target", "status", "words"), [
    ("clerk", "tiedong", 422, "转入的组织须为基层党委"),
    ("clerk", "beimen", 422, "该党员已在这个基层党委"),
    ("tiedong", "jiefang", 403, "您的角色无权进行此操作"),
    ("clerk_jiefang", "jiefang", 404, "未找到该党员"),
])
def test_a_refused_transfer_through_the_page_says_why_and_moves_nothing(app, world, user, target, status, words):
    zhang = world.members["zhang"].id

    response = login(app, user).post(f"/members/{zhang}/transfer", {"to_org_id": str(world.orgs[target].id)})

    assert response.status_code == status
    assert words in response.get_data(as_text=True)
    assert stored(zhang).org_id == world.orgs["beimen"].id


def test_the_old_committees_payment_page_no_longer_links_to_the_moved_member(app, api, world):
    zhang = world.members["zhang"].id
    payment_id = api.record(world.members["zhang"])["id"]
    transfer(api, zhang, world.orgs["jiefang"].id)

    page = login(app, "clerk").get(f"/payments/{payment_id}").get_data(as_text=True)

    assert "张建国" in page and f'href="/members/{zhang}"' not in page
    assert f'href="/members/{zhang}"' in login(app, "tiedong").get(f"/payments/{payment_id}").get_data(as_text=True)

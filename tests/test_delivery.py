"""Receipt delivery (SPEC §9): the grassroots clerk records who signed for a receipt and when (领取登记), the
collection register per grassroots org, and the count of receipts not yet delivered."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from conftest import advance, payment_row
from pypdf import PdfReader
from sqlalchemy import func, select, text

from duesflow.extensions import db
from duesflow.models import Event, ReceiptDelivery
from duesflow.timeutil import beijing_today


def today() -> str:
    return beijing_today().isoformat()


def receipted(api, world, member: str = "zhang", amount: str = "1000.00") -> dict:
    clerk = {"zhang": "clerk", "li": "clerk", "zhou": "clerk_jiefang"}[member]
    payment_id = api.record(world.members[member], amount, as_user=clerk)["id"]
    api.act(payment_id, "submit", clerk)
    for reviewer in ("tiedong", "siping", "jilin"):
        api.act(payment_id, "forward", reviewer)
    return api.act(payment_id, "confirm", "central")


def deliver(api, payment_id: int, user: str = "clerk", **changes):  # noqa: ANN201
    return api.post(f"/payments/{payment_id}/receipt/delivered", user,
                    json={"delivered_on": today(), "signed_by": "张建国", **changes})


def audit_passes(runner) -> None:  # noqa: ANN001
    result = runner.invoke(args=["verify-audit"])
    assert result.exit_code == 0, result.output


def deliveries() -> int:
    return db.session.scalar(select(func.count()).select_from(ReceiptDelivery))


# ---- recording a delivery -------------------------------------------------------------------------------


def test_the_clerk_records_who_signed_for_the_receipt(api, world, runner):
    payment = receipted(api, world)
    assert payment["receipt"]["delivered_on"] is None

    response = deliver(api, payment["id"], signed_by="李秀兰")

    assert response.status_code == 200, response.json
    body = response.json
    assert body["receipt"]["delivered_on"] == today()
    assert (body["state"], body["holder_org"]["id"]) == ("receipted", world.orgs["central"].id)
    event = body["events"][-1]
    assert (event["action"], event["from_state"], event["to_state"]) == ("deliver", "receipted", "receipted")
    assert "李秀兰" in event["note"] and payment["receipt"]["number"] in event["note"]
    row = db.session.scalars(select(ReceiptDelivery)).one()
    assert (row.version, row.delivered_on.isoformat(), row.signed_by) == (1, today(), "李秀兰")
    assert row.recorded_by_id == world.users["clerk"].id
    details = db.session.scalars(select(Event.details).where(Event.action == "deliver")).one()
    assert details == {"receipt_number": payment["receipt"]["number"], "version": 1, "delivered_on": today(),
                       "signed_by": "李秀兰"}
    for user in ("member", "central", "jilin"):
        assert api.get(f"/payments/{payment['id']}", user).json["receipt"]["delivered_on"] == today()
    audit_passes(runner)


@pytest.mark.parametrize("tampering", [
    "DELETE FROM receipt_deliveries",
    "UPDATE receipt_deliveries SET version = 2",
])
def test_verify_audit_catches_a_delivery_record_changed_behind_the_services_back(api, world, runner, tampering):
    payment = receipted(api, world)
    deliver(api, payment["id"])
    db.session.execute(text(tampering))
    db.session.commit()

    result = runner.invoke(args=["verify-audit"])

    assert result.exit_code != 0 and f"receipt {payment['receipt']['number']}" in result.output


def test_verify_audit_catches_a_delivery_recorded_without_its_event(api, world, runner):
    number = receipted(api, world)["receipt"]["number"]
    db.session.execute(text(
        "INSERT INTO receipt_deliveries (receipt_id, version, delivered_on, signed_by, recorded_by_id, created_at)"
        " SELECT id, 1, issued_on, '张建国', :clerk, issued_at FROM receipts"), {"clerk": world.users["clerk"].id})
    db.session.commit()

    result = runner.invoke(args=["verify-audit"])

    assert result.exit_code != 0 and f"receipt {number}" in result.output and "without an event" in result.output


def test_a_receipt_is_delivered_once(api, world):
    payment = receipted(api, world)
    assert deliver(api, payment["id"]).status_code == 200

    again = deliver(api, payment["id"])

    assert again.status_code == 409 and again.json["error"]["code"] == "invalid_transition"
    assert deliveries() == 1


def test_a_reissued_receipt_travels_down_and_is_signed_for_again(api, world, runner):
    payment = receipted(api, world)
    deliver(api, payment["id"])

    reissued = api.post(f"/payments/{payment['id']}/receipt/reissue", "central", json={"reason": "党员遗失"})

    assert reissued.status_code == 200 and reissued.json["receipt"]["delivered_on"] is None
    second = deliver(api, payment["id"], delivered_on=today())
    assert second.status_code == 200 and second.json["receipt"]["version"] == 2
    assert deliveries() == 2
    audit_passes(runner)


@pytest.mark.parametrize(("user", "status", "code"), [
    ("clerk_jiefang", 404, "not_found"), ("beijing", 404, "not_found"), ("member_li", 404, "not_found"),
    ("admin", 403, "forbidden"), ("member", 403, "forbidden"), ("tiedong", 403, "forbidden"),
    ("central", 403, "forbidden"),
])
def test_only_the_collecting_clerk_records_a_delivery(api, world, user, status, code):
    payment = receipted(api, world)

    response = deliver(api, payment["id"], user, signed_by="")  # a bad body too: checked last

    assert (response.status_code, response.json["error"]["code"]) == (status, code)
    assert deliveries() == 0


@pytest.mark.parametrize("state", ["recorded", "at_central", "rejected", "voided"])
def test_only_a_live_receipt_can_be_delivered(api, world, state):
    if state == "voided":
        payment_id = receipted(api, world)["id"]
        api.post(f"/payments/{payment_id}/receipt/void", "central", json={"reason": "确认有误"})
    else:
        payment_id = api.record(world.members["zhang"])["id"]
        if state == "at_central":
            advance(api, payment_id, 4)
        elif state == "rejected":
            advance(api, payment_id, 1)
            api.act(payment_id, "reject", "tiedong", "不符")

    response = deliver(api, payment_id, signed_by="")

    assert response.status_code == 409 and response.json["error"]["code"] == "invalid_transition"


@pytest.mark.parametrize(("changes", "field"), [
    ({"signed_by": ""}, "signed_by"),
    ({"signed_by": None}, "signed_by"),
    ({"signed_by": "x" * 51}, "signed_by"),
    ({"delivered_on": None}, "delivered_on"),
    ({"delivered_on": (beijing_today() + timedelta(days=1)).isoformat()}, "delivered_on"),
    ({"delivered_on": (beijing_today() - timedelta(days=1)).isoformat()}, "delivered_on"),  # before the issue
    ({"note": "多余"}, "note"),
])
def test_an_invalid_delivery_is_422_and_records_nothing(api, world, changes, field):
    payment = receipted(api, world)

    response = deliver(api, payment["id"], **changes)

    assert response.status_code == 422 and field in response.json["error"]["fields"], response.json
    assert deliveries() == 0 and payment_row(payment["id"]).receipt.delivery is None


# ---- the count of receipts not yet delivered -----------------------------------------------------------


def undelivered(api, user: str) -> dict:
    response = api.get("/reports/undelivered-receipts", user)
    assert response.status_code == 200, response.json
    return response.json


def test_receipts_not_yet_delivered_are_counted_per_grassroots_org(api, world):
    first, second = receipted(api, world), receipted(api, world, "li")
    receipted(api, world, "zhou")
    voided = receipted(api, world)
    api.post(f"/payments/{voided['id']}/receipt/void", "central", json={"reason": "确认有误"})
    api.record(world.members["zhang"])  # not receipted: not counted
    deliver(api, second["id"], signed_by="李秀兰")
    beimen = {"id": world.orgs["beimen"].id, "name": world.orgs["beimen"].name}
    jiefang = {"id": world.orgs["jiefang"].id, "name": world.orgs["jiefang"].name}

    assert undelivered(api, "clerk") == {"rows": [{"org": beimen, "count": 1}], "total": 1}
    assert undelivered(api, "clerk_jiefang") == {"rows": [{"org": jiefang, "count": 1}], "total": 1}
    tiedong = undelivered(api, "tiedong")
    assert sorted((row["org"]["id"], row["count"]) for row in tiedong["rows"]) == sorted(
        [(beimen["id"], 1), (jiefang["id"], 1)])
    assert tiedong["total"] == 2 and undelivered(api, "central")["total"] == 2
    assert undelivered(api, "beijing") == {"rows": [], "total": 0}
    deliver(api, first["id"])
    assert undelivered(api, "clerk") == {"rows": [], "total": 0}


@pytest.mark.parametrize("user", ["member", "admin"])
def test_members_and_admins_get_no_delivery_report(api, world, user):
    assert api.get("/reports/undelivered-receipts", user).status_code == 403


# ---- the collection register (领取登记表) -----------------------------------------------------------------


def pdf_text(data: bytes) -> str:
    return re.sub(r"\s+", "", "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages))


def test_the_collection_register_lists_the_orgs_receipts_with_their_signatures(api, world):
    first, second = receipted(api, world, amount="1234.50"), receipted(api, world, "li")
    receipted(api, world, "zhou")  # another committee's
    deliver(api, first["id"], signed_by="张建国")

    response = api.get(f"/orgs/{world.orgs['beimen'].id}/collection-register.pdf", "clerk")

    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    text = pdf_text(response.data)
    for expected in ("纪念收据领取登记表", world.orgs["beimen"].name, first["receipt"]["number"],
                     second["receipt"]["number"], "张建国", "李秀兰", "¥1,234.50", "领取人签字", "共2份"):
        assert expected in text, expected
    assert "周海峰" not in text


def test_the_register_can_list_only_what_is_still_to_be_signed(api, world):
    first, second = receipted(api, world), receipted(api, world, "li")
    deliver(api, first["id"])

    text = pdf_text(api.get(f"/orgs/{world.orgs['beimen'].id}/collection-register.pdf?scope=undelivered",
                            "clerk").data)

    assert second["receipt"]["number"] in text and first["receipt"]["number"] not in text
    assert "仅列未领取" in text


@pytest.mark.parametrize(("user", "org", "status"), [
    ("clerk", "beimen", 200), ("tiedong", "beimen", 200), ("central", "beimen", 200),
    ("clerk_jiefang", "beimen", 404), ("beijing", "beimen", 404), ("clerk", "tiedong", 404),
    ("member", "beimen", 403), ("admin", "beimen", 403),
])
def test_who_may_print_a_register(api, world, user, org, status):
    response = api.get(f"/orgs/{world.orgs[org].id}/collection-register.pdf", user)
    assert response.status_code == status


def test_a_bad_scope_is_422_and_an_unknown_org_404(api, world):
    beimen = world.orgs["beimen"].id
    assert api.get(f"/orgs/{beimen}/collection-register.pdf?scope=some", "clerk").status_code == 422
    assert api.get("/orgs/999999/collection-register.pdf", "clerk").status_code == 404


# ---- pages ---------------------------------------------------------------------------------------------


def login(app, username: str):  # noqa: ANN201
    from test_web_pages import Page

    page = Page(app.test_client())
    assert page.login(username).status_code == 302
    return page


def test_the_clerks_home_counts_the_receipts_to_deliver(app, api, world):
    receipted(api, world)
    receipted(api, world, "li")

    home = login(app, "clerk").get("/").get_data(as_text=True)

    assert re.search(r"<strong>2</strong><span>份纪念收据待送达党员", home)


def test_the_clerk_records_a_delivery_on_the_payment_page(app, api, world, runner):
    payment = receipted(api, world)
    page = login(app, "clerk")
    assert 'name="signed_by"' in page.get(f"/payments/{payment['id']}").get_data(as_text=True)
    assert 'name="signed_by"' not in login(app, "central").get(f"/payments/{payment['id']}").get_data(as_text=True)

    response = page.post(f"/payments/{payment['id']}/receipt/delivered",
                         {"delivered_on": today(), "signed_by": "张建国"})

    assert response.status_code == 302
    shown = page.get(f"/payments/{payment['id']}").get_data(as_text=True)
    assert "由 张建国 签收" in shown and 'name="signed_by"' not in shown
    audit_passes(runner)


def test_a_refused_delivery_on_the_page_shows_the_field_error(app, api, world):
    payment = receipted(api, world)
    future = (beijing_today() + timedelta(days=3)).isoformat()

    response = login(app, "clerk").post(f"/payments/{payment['id']}/receipt/delivered",
                                        {"delivered_on": future, "signed_by": "张建国"})

    assert response.status_code == 422 and 'id="delivered_on-error"' in response.get_data(as_text=True)


def test_the_deliveries_page_lists_what_to_hand_over_and_links_the_register(app, api, world):
    payment = receipted(api, world)
    page = login(app, "clerk")
    shown = page.get("/deliveries").get_data(as_text=True)
    assert payment["receipt"]["number"] in shown and "打印领取登记表" in shown
    register = page.get(f"/orgs/{world.orgs['beimen'].id}/collection-register.pdf?scope=undelivered")
    assert register.status_code == 200 and register.mimetype == "application/pdf"

    response = page.post(f"/payments/{payment['id']}/receipt/delivered",
                         {"delivered_on": today(), "signed_by": "张建国", "next": "deliveries"})

    assert response.status_code == 302 and response.headers["Location"].endswith("/deliveries")
    assert "所有纪念收据均已送达" in page.get("/deliveries").get_data(as_text=True)
    counts = login(app, "tiedong").get("/deliveries").get_data(as_text=True)
    assert "辖区内所有纪念收据均已送达" in counts

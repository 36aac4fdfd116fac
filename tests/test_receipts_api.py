"""Receipts through the API: numbering, verification codes and who sees them, the PDF and who may download it,
public verification with its rate limit, and refused direct remittances."""

from __future__ import annotations

import io
import re

import pytest
from conftest import advance
from pypdf import PdfReader
from sqlalchemy import func, select

from duesflow.extensions import db
from duesflow.models import DirectRemittance, Receipt
from duesflow.timeutil import beijing_today

CODE = re.compile(r"^[ABCDEFGHJKMNPQRSTUVWXYZ23456789]{8}$")
PATH_ORGS = ["clerk", "tiedong", "siping", "jilin"]
OUTSIDERS = ["member_li", "clerk_jiefang", "clerk_dongcheng", "beijing"]


def at_central(api, world, amount: str = "1000.00", member: str = "zhang") -> int:
    payment = api.record(world.members[member], amount)
    advance(api, payment["id"], 4)
    return payment["id"]


def receipted(api, world, amount: str = "12345.67", member: str = "zhang") -> dict:
    return api.act(at_central(api, world, amount, member), "confirm", "central")


# ---- numbers and codes ---------------------------------------------------------------------------


def test_receipt_numbers_are_gapless_in_order_of_confirmation(api, world):
    waiting = [at_central(api, world) for _ in range(3)]
    confirmed = [api.act(payment_id, "confirm", "central") for payment_id in reversed(waiting)]
    year = beijing_today().year
    assert [p["receipt"]["number"] for p in confirmed] == [f"{year}-00000{n}" for n in (1, 2, 3)]
    assert [p["id"] for p in confirmed] == list(reversed(waiting))
    assert db.session.scalars(select(Receipt.sequence).order_by(Receipt.sequence)).all() == [1, 2, 3]


def test_a_confirmed_payment_has_one_receipt_issued_today(api, world):
    payment = receipted(api, world)
    receipt = payment["receipt"]
    assert CODE.match(receipt["verification_code"])
    assert receipt["issued_on"] == beijing_today().isoformat()
    assert (receipt["version"], receipt["voided"]) == (1, False)
    assert payment["events"][-1]["action"] == "confirm"
    assert db.session.scalar(select(func.count()).select_from(Receipt)) == 1


def test_verification_codes_differ_between_receipts(api, world):
    codes = {receipted(api, world)["receipt"]["verification_code"] for _ in range(4)}
    assert len(codes) == 4 and all(CODE.match(code) for code in codes)


@pytest.mark.parametrize("situation_steps", [0, 1, 2, 3, 4])
def test_no_receipt_before_confirmation(api, world, situation_steps):
    payment = api.record(world.members["zhang"])
    payment = advance(api, payment["id"], situation_steps) if situation_steps else payment
    assert payment["receipt"] is None
    assert db.session.scalar(select(func.count()).select_from(Receipt)) == 0


@pytest.mark.parametrize(("user", "sees_code"), [("member", True), ("central", True)]
                         + [(user, False) for user in PATH_ORGS])
def test_only_the_member_and_central_see_the_verification_code(api, world, user, sees_code):
    payment_id = receipted(api, world)["id"]
    detail = api.get(f"/payments/{payment_id}", user).json["receipt"]
    (listed,) = [item["receipt"] for item in api.get("/payments", user).json["items"]]
    assert detail["number"] == listed["number"]
    if sees_code:
        assert CODE.match(detail["verification_code"])
        assert listed["verification_code"] == detail["verification_code"]
    else:
        assert detail["verification_code"] is None and listed["verification_code"] is None


# ---- the PDF -------------------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["member", "central"] + PATH_ORGS)
def test_receipt_pdf_is_served_to_the_member_central_and_the_path(api, world, user):
    payment_id = receipted(api, world)["id"]
    response = api.get(f"/payments/{payment_id}/receipt.pdf", user)
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_data().startswith(b"%PDF-")


@pytest.mark.parametrize("user", OUTSIDERS)
def test_receipt_pdf_is_404_for_everyone_else(api, world, user):
    payment_id = receipted(api, world)["id"]
    response = api.get(f"/payments/{payment_id}/receipt.pdf", user)
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


@pytest.mark.parametrize("user", ["member", "central", "clerk", "jilin"])
def test_receipt_pdf_is_404_without_a_receipt(api, world, user):
    payment_id = at_central(api, world)
    response = api.get(f"/payments/{payment_id}/receipt.pdf", user)
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


def test_receipt_pdf_text_names_the_member_amount_number_and_code(api, world):
    payment = receipted(api, world, "12345.67")
    code = api.get(f"/payments/{payment['id']}", "member").json["receipt"]["verification_code"]

    pdf = api.get(f"/payments/{payment['id']}/receipt.pdf", "member").get_data()

    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    today = beijing_today()
    issued = f"{today.year}年{today.month}月{today.day}日"
    number = payment["receipt"]["number"]
    for expected in ("张建国", "¥12,345.67", "人民币壹万贰仟叁佰肆拾伍元陆角柒分", number, code,
                     "北门街道党工委", "中共中央组织部", issued):
        assert expected in text, expected


# ---- public verification -------------------------------------------------------------------------


@pytest.mark.parametrize("case", [str.upper, str.lower, str.title])
def test_right_code_in_any_case_verifies_with_the_name_masked(api, world, case):
    payment = receipted(api, world, "12345.67")
    number, code = payment["receipt"]["number"], payment["receipt"]["verification_code"]

    response = api.get(f"/receipts/{number}/verify?code={case(code)}")

    assert response.status_code == 200
    assert response.json == {"valid": True, "number": number, "amount": "12345.67",
                             "issued_on": beijing_today().isoformat(), "member_name": "张**",
                             "issuer": "中共中央组织部"}


def _wrong(code: str) -> str:
    return ("B" if code[0] != "B" else "C") + code[1:]


@pytest.mark.parametrize("mistake", ["code", "number", "missing"])
def test_wrong_code_or_unknown_number_is_receipt_not_found(api, world, mistake):
    receipt = receipted(api, world)["receipt"]
    number, code = receipt["number"], receipt["verification_code"]
    url = {"code": f"/receipts/{number}/verify?code={_wrong(code)}",
           "number": f"/receipts/{number[:-1]}9/verify?code={code}",
           "missing": f"/receipts/1999-000001/verify?code={code}"}[mistake]
    response = api.get(url)
    assert response.status_code == 404 and response.json["error"]["code"] == "receipt_not_found"


def test_verification_without_a_code_is_422(api, world):
    number = receipted(api, world)["receipt"]["number"]
    assert api.get(f"/receipts/{number}/verify").status_code == 422


def test_verification_is_rate_limited_per_client(app, api, world):
    app.config["VERIFY_MAX_ATTEMPTS"] = 3
    receipt = receipted(api, world)["receipt"]
    number, code = receipt["number"], receipt["verification_code"]
    statuses = [api.get(f"/receipts/{number}/verify?code={_wrong(code)}").status_code for _ in range(3)]

    response = api.get(f"/receipts/{number}/verify?code={code}")

    assert statuses == [404, 404, 404]
    assert response.status_code == 429 and response.json["error"]["code"] == "too_many_requests"
    assert int(response.headers["Retry-After"]) >= 1
    other_client = api.client.get(f"/api/v1/receipts/{number}/verify?code={code}",
                                  environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other_client.status_code == 200


# ---- direct remittances --------------------------------------------------------------------------


def remittance(**changes):  # noqa: ANN201
    return {"remitter_name": "王某某", "amount": "50", "received_on": beijing_today().isoformat(),
            "reference": "邮汇 0012", **changes}


@pytest.mark.parametrize("amount", ["50", "0.01", "1000", "250000.5"])
def test_central_records_a_direct_remittance_as_refused(api, world, amount):
    response = api.post("/direct-remittances", "central", json=remittance(amount=amount))
    assert response.status_code == 201, response.json
    assert response.json["state"] == "refused"
    assert response.json["remitter_name"] == "王某某"
    listed = api.get("/direct-remittances", "central").json["items"]
    assert [item["id"] for item in listed] == [response.json["id"]]
    assert db.session.scalar(select(func.count()).select_from(Receipt)) == 0


@pytest.mark.parametrize("amount", ["0", "-50", "abc"])
def test_direct_remittance_amount_must_be_positive(api, world, amount):
    response = api.post("/direct-remittances", "central", json=remittance(amount=amount))
    assert response.status_code == 422 and response.json["error"]["code"] == "invalid_amount"


@pytest.mark.parametrize("user", ["clerk", "tiedong", "jilin", "member", "admin"])
def test_only_central_records_and_lists_direct_remittances(api, world, user):
    created = api.post("/direct-remittances", user, json=remittance())
    listed = api.get("/direct-remittances", user)
    assert (created.status_code, created.json["error"]["code"]) == (403, "forbidden")
    assert (listed.status_code, listed.json["error"]["code"]) == (403, "forbidden")
    assert db.session.scalar(select(func.count()).select_from(DirectRemittance)) == 0


@pytest.mark.parametrize("action", ["confirm", "forward", "submit", "receipt", "receipt.pdf"])
def test_a_direct_remittance_can_never_be_moved_or_receipted(api, world, action):
    remittance_id = api.post("/direct-remittances", "central", json=remittance()).json["id"]
    posted = api.post(f"/direct-remittances/{remittance_id}/{action}", "central", json={})
    fetched = api.get(f"/direct-remittances/{remittance_id}/{action}", "central")
    assert posted.status_code in (404, 405) and fetched.status_code in (404, 405)
    assert api.get("/direct-remittances", "central").json["items"][0]["state"] == "refused"
    assert db.session.scalar(select(func.count()).select_from(Receipt)) == 0

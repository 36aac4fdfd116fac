"""A receipt after its issue (SPEC §9): reissue (补发) and void, their order of checks, races and audit trail;
the clerk's collection slip; and member names the receipt font cannot print."""

from __future__ import annotations

import io
import uuid

import pytest
from conftest import advance
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen
from live import LiveApi, concurrently, live_api, live_server, read, release_database, run_verify_audit
from pypdf import PdfReader
from sqlalchemy import select, text, update
from sqlalchemy.orm.exc import StaleDataError

from duesflow import permissions
from duesflow.extensions import db
from duesflow.models import Event, Member, Payment, Receipt, ReceiptSequence
from duesflow.services.receipts import RECEIPT_NUMBER, change_receipt
from duesflow.timeutil import beijing_today
from duesflow.workflow import ReceiptChange

__all__ = ["live_api", "live_server"]

CHANGES = ["reissue", "void"]
REASON = "原收据遗失，本人申请补发。"
SEE_IT_BUT_NOT_CENTRAL = ["clerk", "tiedong", "siping", "jilin", "member"]
OUTSIDERS = ["clerk_dongcheng", "beijing", "clerk_jiefang", "member_li"]


def receipted(api, world, amount: str = "12345.67") -> dict:  # noqa: ANN001
    payment = api.record(world.members["zhang"], amount)
    advance(api, payment["id"], 4)
    return api.act(payment["id"], "confirm", "central")


def change(api, payment_id: int, what: str, as_user: str = "central", reason: str | None = REASON):  # noqa: ANN001, ANN201
    return api.post(f"/payments/{payment_id}/receipt/{what}", as_user,
                    json={"reason": reason} if reason is not None else {})


def verify(api, number: str, code: str):  # noqa: ANN001, ANN201
    return api.get(f"/receipts/{number}/verify?code={code}")


def pdf_text(api, payment_id: int, as_user: str = "member") -> str:  # noqa: ANN001
    response = api.get(f"/payments/{payment_id}/receipt.pdf", as_user)
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    return PdfReader(io.BytesIO(response.data)).pages[0].extract_text()


# ---- reissue --------------------------------------------------------------------------------------------


def test_reissue_keeps_the_number_and_gives_a_new_version_and_code(api, world):
    payment_id, first = (confirmed := receipted(api, world))["id"], confirmed["receipt"]

    response = change(api, payment_id, "reissue")

    assert response.status_code == 200
    payment = response.json
    assert payment["state"] == "receipted" and payment["holder_org"]["id"] == world.orgs["central"].id
    receipt = payment["receipt"]
    assert receipt["number"] == first["number"] and receipt["version"] == 2 and receipt["voided"] is False
    assert receipt["verification_code"] != first["verification_code"]
    last = payment["events"][-1]
    assert (last["action"], last["from_state"], last["to_state"], last["note"]) == (
        "reissue", "receipted", "receipted", REASON)
    assert last["actor"]["username"] == "central"
    assert db.session.scalars(select(Receipt.number).where(Receipt.payment_id == payment_id)).all() == [
        first["number"]]


def test_the_old_code_stops_verifying_after_a_reissue_and_the_new_one_verifies(api, world):
    payment = receipted(api, world)
    old = payment["receipt"]

    new = change(api, payment["id"], "reissue").json["receipt"]

    missing = verify(api, old["number"], old["verification_code"])
    assert (missing.status_code, missing.json["error"]["code"]) == (404, "receipt_not_found")
    found = verify(api, new["number"], new["verification_code"].lower())
    assert found.status_code == 200 and found.json["valid"] is True


def test_reissued_pdf_says_reissue_and_which_version(api, world):
    payment = receipted(api, world)
    assert "补发" not in pdf_text(api, payment["id"])

    change(api, payment["id"], "reissue")
    assert "补发（第2版）" in pdf_text(api, payment["id"])
    change(api, payment["id"], "reissue")
    third = pdf_text(api, payment["id"])

    assert "补发（第3版）" in third and payment["receipt"]["number"] in third
    assert change(api, payment["id"], "reissue").json["receipt"]["version"] == 4


# ---- void -----------------------------------------------------------------------------------------------


def test_void_marks_the_receipt_and_returns_the_payment_to_central(api, world):
    payment = receipted(api, world)

    response = change(api, payment["id"], "void", reason="确认有误：金额与到账不符。")

    assert response.status_code == 200
    voided = response.json
    assert voided["state"] == "at_central" and voided["holder_org"]["id"] == world.orgs["central"].id
    assert voided["receipt"] == {**payment["receipt"], "voided": True}
    assert voided["available_actions"] == ["return", "reject", "confirm"]
    last = voided["events"][-1]
    assert (last["action"], last["from_state"], last["to_state"]) == ("void", "receipted", "at_central")
    assert last["from_org"]["id"] == last["to_org"]["id"] == world.orgs["central"].id


def test_verification_of_a_voided_receipt_says_voided(api, world, client):
    payment = receipted(api, world)
    receipt = payment["receipt"]
    change(api, payment["id"], "void")

    response = verify(api, receipt["number"], receipt["verification_code"])

    assert response.status_code == 200
    assert response.json["valid"] is False and response.json["voided"] is True
    assert response.json["number"] == receipt["number"] and response.json["member_name"] == "张**"
    page = client.get(f"/verify/{receipt['number']}?code={receipt['verification_code']}")
    assert page.status_code == 200 and "作废" in page.get_data(as_text=True)


def test_the_millionth_receipt_of_a_year_gets_seven_digits_and_verifies(api, world, client):
    # A campaign year can issue more than 999,999 receipts (the million-payment surge did, and its confirmation
    # failed with a 500 when the number outgrew the column): the sequence keeps counting with a seventh digit.
    year = beijing_today().year
    db.session.add(ReceiptSequence(year=year, last_number=999_999))
    db.session.commit()

    payment = receipted(api, world)
    receipt = payment["receipt"]

    assert receipt["number"] == f"{year}-1000000"
    response = verify(api, receipt["number"], receipt["verification_code"])
    assert response.status_code == 200 and response.json["valid"] is True
    assert client.get(f"/verify/{receipt['number']}?code={receipt['verification_code']}").status_code == 200
    assert receipt["number"] in pdf_text(api, payment["id"]).replace(" ", "")


def test_the_number_column_holds_the_longest_number_the_pattern_accepts():
    # The pattern (verification, the API, the verify page) and the column's length are written in two places.
    longest = "2026-" + "9" * 11
    assert RECEIPT_NUMBER.fullmatch(longest) and not RECEIPT_NUMBER.fullmatch(longest + "9")
    assert len(longest) <= Receipt.__table__.c.number.type.length


def test_voided_receipt_pdf_is_marked_void(api, world):
    payment = receipted(api, world)
    change(api, payment["id"], "void")

    assert "作废" in pdf_text(api, payment["id"], "central")


def test_a_new_confirmation_after_a_void_issues_a_new_number_and_leaves_no_gap(api, world):
    year = beijing_today().year
    payment = receipted(api, world)
    change(api, payment["id"], "void")

    again = api.act(payment["id"], "confirm", "central")
    other = receipted(api, world, "2000.00")

    assert again["receipt"]["number"] == f"{year}-000002" and again["receipt"]["version"] == 1
    assert other["receipt"]["number"] == f"{year}-000003"
    rows = db.session.execute(select(Receipt.sequence, Receipt.voided).order_by(Receipt.sequence)).all()
    assert [tuple(row) for row in rows] == [(1, True), (2, False), (3, False)]
    assert verify(api, f"{year}-000001", payment["receipt"]["verification_code"]).json["voided"] is True
    assert verify(api, again["receipt"]["number"], again["receipt"]["verification_code"]).json["valid"] is True
    assert "作废" not in pdf_text(api, payment["id"])


def test_verify_audit_replays_reissues_and_voids(api, world, runner):
    payment = receipted(api, world)
    change(api, payment["id"], "reissue")
    change(api, payment["id"], "void")
    api.act(payment["id"], "confirm", "central")
    change(api, payment["id"], "reissue")

    result = runner.invoke(args=["verify-audit"])

    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("tampering", "record"), [
    ("UPDATE receipts SET voided = false WHERE sequence = 1", "receipt {year}-000001"),  # a void undone
    ("UPDATE receipts SET voided = true WHERE sequence = 2", "receipt {year}-000002"),
    ("UPDATE receipts SET version = 1 WHERE sequence = 2", "receipt {year}-000002"),
    ("DELETE FROM receipts WHERE sequence = 2", "receipt {year}-000002"),
])
def test_verify_audit_catches_a_receipt_that_disagrees_with_its_events(api, world, runner, tampering, record):
    payment = receipted(api, world)
    change(api, payment["id"], "void")
    if "sequence = 2" in tampering:
        api.act(payment["id"], "confirm", "central")
        change(api, payment["id"], "reissue")
    db.session.execute(text(tampering))
    db.session.commit()

    result = runner.invoke(args=["verify-audit"])

    assert result.exit_code == 1
    assert record.format(year=beijing_today().year) in result.output


# ---- order of checks (SPEC §2) ---------------------------------------------------------------------------


@pytest.mark.parametrize("what", CHANGES)
def test_receipt_changes_need_a_token(api, world, what):
    payment = receipted(api, world)
    assert change(api, payment["id"], what, as_user=None).status_code == 401


@pytest.mark.parametrize("what", CHANGES)
@pytest.mark.parametrize("user", OUTSIDERS)
def test_outsiders_get_404(api, world, what, user):
    payment = receipted(api, world)

    response = change(api, payment["id"], what, user)

    assert (response.status_code, response.json["error"]["code"]) == (404, "not_found")


@pytest.mark.parametrize("what", CHANGES)
@pytest.mark.parametrize("user", [*SEE_IT_BUT_NOT_CENTRAL, "admin"])
def test_only_central_may_reissue_or_void(api, world, what, user):
    payment = receipted(api, world)

    response = change(api, payment["id"], what, user, reason=None)  # no reason either: 403 comes first

    assert (response.status_code, response.json["error"]["code"]) == (403, "forbidden")
    assert change(api, 999999, what, user).status_code in (403, 404)


@pytest.mark.parametrize("what", CHANGES)
@pytest.mark.parametrize("steps", [0, 1, 4])
def test_no_receipt_yet_is_409_even_without_a_reason(api, world, what, steps):
    payment = api.record(world.members["zhang"])
    advance(api, payment["id"], steps)

    response = change(api, payment["id"], what, reason=None)

    assert (response.status_code, response.json["error"]["code"]) == (409, "invalid_transition")


@pytest.mark.parametrize("what", CHANGES)
def test_a_voided_receipt_can_be_neither_reissued_nor_voided_again(api, world, what):
    payment = receipted(api, world)
    change(api, payment["id"], "void")

    response = change(api, payment["id"], what)

    assert (response.status_code, response.json["error"]["code"]) == (409, "invalid_transition")


@pytest.mark.parametrize("what", CHANGES)
@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": None}, {"reason": "  "}, {"reason": 5}])
def test_a_reason_is_required(api, world, what, body):
    payment = receipted(api, world)

    response = api.post(f"/payments/{payment['id']}/receipt/{what}", "central", json=body)

    assert (response.status_code, response.json["error"]["code"]) == (422, "validation_error")
    assert "reason" in response.json["error"]["fields"]
    assert api.get(f"/payments/{payment['id']}", "central").json["receipt"] == payment["receipt"]


@pytest.mark.parametrize("what", CHANGES)
def test_receipt_changes_are_in_the_openapi_document(api, what):
    operation = api.get("/openapi.json").json["paths"][f"/api/v1/payments/{{payment_id}}/receipt/{what}"]["post"]

    assert {"200", "400", "401", "403", "404", "409", "422"} <= set(operation["responses"])
    assert "requestBody" in operation


def test_central_is_offered_reissue_and_void_of_a_live_receipt_only(api, world):
    payment = receipted(api, world)
    row = db.session.get(Payment, payment["id"])
    users = {name: world.users[name] for name in ("central", "clerk", "member")}

    assert permissions.receipt_changes_available(row, users["central"]) == ["reissue", "void"]
    assert permissions.receipt_changes_available(row, users["clerk"]) == []
    assert permissions.receipt_changes_available(row, users["member"]) == []
    change(api, payment["id"], "void")
    db.session.expire_all()
    assert permissions.receipt_changes_available(db.session.get(Payment, payment["id"]), users["central"]) == []


def test_a_reissue_goes_through_the_payments_optimistic_lock(api, world):
    payment_id = receipted(api, world)["id"]
    db.session.expire_all()
    payment = db.session.get(Payment, payment_id)
    # another worker changed the payment since we read it
    db.session.execute(update(Payment).where(Payment.id == payment_id).values(version=Payment.version + 1)
                       .execution_options(synchronize_session=False))

    with pytest.raises(StaleDataError):
        change_receipt(payment, ReceiptChange.REISSUE, world.users["central"], reason=REASON)
    db.session.rollback()
    assert db.session.scalars(select(Receipt.version)).one() == 1


# ---- races on a live server with several workers -----------------------------------------------------------

RACERS = 6


def race(live_api: LiveApi, paths: list[str]) -> list:
    token = live_api.token("central")

    def send(path: str):  # noqa: ANN202
        return live_api.call("POST", path, token=token, probe=uuid.uuid4().hex, json={"reason": REASON})

    return concurrently(send, paths)


def live_receipted(live_api: LiveApi, world) -> dict:  # noqa: ANN001
    payment_id = live_api.record(read(lambda: world.members["zhang"].id), "5000.00")["id"]
    live_api.advance(payment_id, 4)
    return live_api.act(payment_id, "confirm", "central")


def winners_in_order(live_api: LiveApi, payment_id: int) -> tuple[dict, list[str]]:
    final = live_api.call("GET", f"/payments/{payment_id}", "central").json()
    return final, [event["action"] for event in final["events"] if event["action"] in CHANGES]


def test_simultaneous_voids_have_exactly_one_winner(live_api, world, database_url):
    payment = live_receipted(live_api, world)

    answers = race(live_api, [f"/payments/{payment['id']}/receipt/void"] * RACERS)

    assert sorted(answer.status_code for answer in answers) == [200] + [409] * (RACERS - 1)
    final, changes = winners_in_order(live_api, payment["id"])
    assert changes == ["void"] and final["state"] == "at_central" and final["receipt"]["voided"] is True
    release_database()
    assert run_verify_audit(database_url).returncode == 0


def test_simultaneous_reissues_lose_no_update(live_api, world, database_url):
    """Requests that read the same version: one wins, the others get 409 from the optimistic lock (PostgreSQL).
    A request that starts after another committed (always on SQLite, whose writers queue) reissues again,
    legitimately. Either way every success is exactly one version and one event: no two write the same version."""
    payment = live_receipted(live_api, world)

    answers = race(live_api, [f"/payments/{payment['id']}/receipt/reissue"] * RACERS)

    successes = [answer for answer in answers if answer.status_code == 200]
    assert successes and all(answer.json()["error"]["code"] == "invalid_transition"
                             for answer in answers if answer.status_code != 200)
    final, changes = winners_in_order(live_api, payment["id"])
    assert changes == ["reissue"] * len(successes)
    assert final["receipt"]["version"] == 1 + len(successes)
    assert sorted(answer.json()["receipt"]["version"] for answer in successes) == list(range(2, 2 + len(successes)))
    release_database()
    assert run_verify_audit(database_url).returncode == 0


def test_reissues_racing_voids_end_in_a_consistent_receipt(live_api, world, database_url):
    payment = live_receipted(live_api, world)

    answers = race(live_api, [f"/payments/{payment['id']}/receipt/{what}" for what in CHANGES * (RACERS // 2)])

    assert all(answer.status_code in (200, 409) for answer in answers)
    final, changes = winners_in_order(live_api, payment["id"])
    assert len(changes) == sum(answer.status_code == 200 for answer in answers)
    assert changes.count("void") <= 1 and "void" not in changes[:-1]  # nothing can follow a void
    voided = changes[-1] == "void"
    assert final["state"] == ("at_central" if voided else "receipted")
    assert (final["receipt"]["version"], final["receipt"]["voided"]) == (1 + changes.count("reissue"), voided)
    release_database()
    assert run_verify_audit(database_url).returncode == 0


# ---- the collection slip --------------------------------------------------------------------------------


def slip(api, payment_id: int, as_user: str = "clerk"):  # noqa: ANN001, ANN201
    return api.get(f"/payments/{payment_id}/slip.pdf", as_user)


def test_clerk_prints_a_slip_that_says_it_is_not_the_central_receipt(api, world):
    payment = api.record(world.members["zhang"], "12345.67", method="wechat")

    response = slip(api, payment["id"])

    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    page = PdfReader(io.BytesIO(response.data)).pages[0].extract_text()
    for expected in ("收款凭条", "张建国", "¥12,345.67", "人民币壹万贰仟叁佰肆拾伍元陆角柒分", "微信支付",
                     "北门街道党工委", f"款项编号：{payment['id']}",
                     "本凭条仅为基层党委代收凭证，不是中共中央组织部开具的纪念收据。"):
        assert expected in page, expected
    collected = beijing_today()
    assert f"{collected.year}年{collected.month}月{collected.day}日" in page


@pytest.mark.parametrize("steps", [0, 4])
def test_the_slip_can_be_printed_in_any_state(api, world, steps):
    payment = api.record(world.members["zhang"])
    advance(api, payment["id"], steps)
    assert slip(api, payment["id"]).status_code == 200


@pytest.mark.parametrize("user", [*SEE_IT_BUT_NOT_CENTRAL[1:], "central", "admin"])
def test_only_the_collecting_clerk_prints_the_slip(api, world, user):
    payment = api.record(world.members["zhang"])

    response = slip(api, payment["id"], user)

    assert (response.status_code, response.json["error"]["code"]) == (403, "forbidden")


@pytest.mark.parametrize("user", OUTSIDERS)
def test_outsiders_get_404_for_the_slip(api, world, user):
    payment = api.record(world.members["zhang"])

    assert slip(api, payment["id"], user).status_code == 404
    assert slip(api, 999999).status_code == 404


# ---- names the receipt font cannot print -----------------------------------------------------------------

RARE = "𠮷"  # U+20BB7, CJK Extension B: not in the built-in CID font


@pytest.fixture(scope="session")
def rare_font(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A TrueType font with glyphs for 张, 三 and 𠮷 only."""
    characters = "张三" + RARE
    glyphs = [".notdef", "space"] + [f"u{ord(character):05X}" for character in characters]
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder(glyphs)
    builder.setupCharacterMap({32: "space", **{ord(c): g for c, g in zip(characters, glyphs[2:], strict=True)}})
    pen = TTGlyphPen(None)
    pen.moveTo((100, 0))
    pen.lineTo((100, 800))
    pen.lineTo((900, 800))
    pen.lineTo((900, 0))
    pen.closePath()
    square, empty = pen.glyph(), TTGlyphPen(None).glyph()
    builder.setupGlyf({glyph: empty if glyph == "space" else square for glyph in glyphs})
    builder.setupHorizontalMetrics({glyph: (1000, 100) for glyph in glyphs})
    builder.setupHorizontalHeader(ascent=880, descent=-120)
    builder.setupNameTable({"familyName": "DuesflowRare", "styleName": "Regular"})
    builder.setupOS2(sTypoAscender=880, usWinAscent=880, usWinDescent=120, fsType=0)
    builder.setupPost()
    path = tmp_path_factory.mktemp("fonts") / "rare.ttf"
    builder.save(str(path))
    return str(path)


def register(api, name: str):  # noqa: ANN001, ANN201
    return api.post("/members", "clerk", json={"name": name})


def test_a_name_the_receipt_font_cannot_show_is_refused_and_named(api, world):
    response = register(api, f"张{RARE}")

    assert (response.status_code, response.json["error"]["code"]) == (422, "validation_error")
    message = response.json["error"]["fields"]["name"][0]
    assert RARE in message and "U+20BB7" in message


def test_a_rename_to_an_unprintable_name_is_refused(api, world):
    member_id = world.members["li"].id

    response = api.patch(f"/members/{member_id}", "clerk", json={"name": f"李{RARE}"})

    assert response.status_code == 422 and RARE in response.json["error"]["fields"]["name"][0]
    assert api.get(f"/members/{member_id}", "clerk").json["name"] == "李秀兰"
    assert api.patch(f"/members/{member_id}", "clerk", json={"phone": "13900000000"}).status_code == 200


@pytest.mark.parametrize("name", ["王䶮", "㛃丽", "买买提·艾力", "张三"])
def test_rare_names_the_built_in_font_has_are_accepted(api, world, name):
    assert register(api, name).status_code == 201


def test_with_a_truetype_font_that_has_the_character_the_name_is_accepted_and_printed(api, world, app, rare_font):
    app.config["RECEIPT_FONT"] = rare_font
    assert register(api, "李四").status_code == 422  # this font has neither 李 nor 四

    member = register(api, f"张{RARE}")
    assert member.status_code == 201
    payment = api.record(db.session.get(Member, member.json["id"]), "1000")
    advance(api, payment["id"], 4)
    api.act(payment["id"], "confirm", "central")

    pdf = api.get(f"/payments/{payment['id']}/receipt.pdf", "central").data
    assert b"/FontFile2" in pdf
    assert f"张{RARE}" in PdfReader(io.BytesIO(pdf)).pages[0].extract_text()  # the ToUnicode entry is UTF-16


def test_events_of_a_reissue_carry_the_receipt_number(api, world):
    payment = receipted(api, world)
    change(api, payment["id"], "reissue")

    event = db.session.scalars(select(Event).where(Event.action == "reissue")).one()

    assert event.details == {"receipt_number": payment["receipt"]["number"], "version": 2}

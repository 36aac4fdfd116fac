"""Finding 1 of issue 14: no masked value can be learnt by asking (SPEC §7). ``q`` matches names only; only the
member's own clerk finds a member by a whole ID number (``?id_number=``, access-logged); birth date, phone, email,
work unit and position reach only the member's own clerk and the member, in the API and on every page."""

from __future__ import annotations

from datetime import date

import pytest
from conftest import make_member
from test_personal_data import _page, _views

from duesflow.extensions import db

ID_NUMBER, PHONE = "220302199001051231", "13843430001"  # 张建国's, in conftest's world
PRIVATE = {"birth_date": "1990-01-05", "phone": PHONE, "email": "zhang@example.cn", "work_unit": "四平市第一中学",
           "position": "教研组长"}
OTHERS = ["tiedong", "siping", "jilin", "central"]  # see 张建国, are not his clerk


@pytest.fixture
def zhang(world):  # noqa: ANN001, ANN201
    member = world.members["zhang"]
    member.birth_date, member.email = date(1990, 1, 5), PRIVATE["email"]
    member.work_unit, member.position = PRIVATE["work_unit"], PRIVATE["position"]
    db.session.commit()
    return member


def _found(api, username: str, **query: str) -> list[str]:  # noqa: ANN001
    answer = api.get("/members", username, query_string=query)
    assert answer.status_code == 200, answer.json
    return [item["name"] for item in answer.json["items"]]


@pytest.mark.parametrize("username", [*OTHERS, "clerk", "member"])
@pytest.mark.parametrize("guess", [PHONE, "138 4343 0001", ID_NUMBER])  # the ID: its masked middle is the birth date
def test_a_search_by_phone_or_id_number_in_q_finds_nobody(api, zhang, username, guess):
    """The attack: a reviewer who sees 138****0001 asked q=138XXXX0001 until 张建国 came back."""
    assert _found(api, username, q=guess) == []


@pytest.mark.parametrize("username", [*OTHERS, "member"])
def test_only_the_members_own_clerk_finds_a_member_by_whole_id_number(api, zhang, username):
    assert _found(api, username, id_number=ID_NUMBER) == []
    assert _views() == []


def test_the_own_clerks_look_up_by_id_number_is_access_logged(api, zhang):
    make_member(zhang.org, "李四", id_number="110101199003074477")
    db.session.commit()

    assert _found(api, "clerk", id_number=ID_NUMBER) == ["张建国"]
    assert _found(api, "clerk_jiefang", id_number=ID_NUMBER) == []  # another committee's clerk
    assert ("clerk", zhang.id, "id_number", "GET /api/v1/members") in _views()
    assert _found(api, "clerk", id_number="110101199003074477") == ["李四"]
    assert api.get("/members", "clerk", query_string={"id_number": "12345"}).status_code == 422


@pytest.mark.parametrize("username", OTHERS)
def test_private_particulars_are_null_for_everyone_but_the_clerk_and_the_member(api, zhang, username):
    detail = api.get(f"/members/{zhang.id}", username).json
    listed = next(item for item in api.get("/members", username).json["items"] if item["id"] == zhang.id)
    for shown in (detail, listed):
        assert {field: shown[field] for field in PRIVATE} == dict.fromkeys(PRIVATE)
        assert shown["id_number"] == "220302********1231" and shown["name"] == "张建国"


def test_the_own_clerk_and_the_member_see_them(api, zhang):
    clerk = api.get(f"/members/{zhang.id}", "clerk").json
    assert {field: clerk[field] for field in PRIVATE} == PRIVATE
    member = api.get(f"/members/{zhang.id}", "member").json
    assert {field: member[field] for field in PRIVATE} == {**PRIVATE, "phone": "138****0001"}


@pytest.mark.parametrize("username", ["tiedong", "central"])
def test_no_page_shows_them_to_anyone_else(app, api, zhang, username):
    payment_id = api.record(zhang)["id"]
    page = _page(app, username)
    for path in ("/members", f"/members/{zhang.id}", f"/payments/{payment_id}"):
        answer = page.get(path)
        assert answer.status_code == 200, path
        body = answer.get_data(as_text=True)
        for value in (*PRIVATE.values(), "1990年1月5日", "1990年01月05日", "138****0001", ID_NUMBER):
            assert value not in body, (path, value)
    assert "张建国" not in page.post("/members", {"q": PHONE}).get_data(as_text=True)

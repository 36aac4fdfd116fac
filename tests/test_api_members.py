"""Member records: registration, validation, masking, visibility and pagination (SPEC §2, §7)."""

from __future__ import annotations

import pytest
from conftest import make_member
from sqlalchemy import func, select

from duesflow.extensions import db
from duesflow.models import Member

ZHANG_ID_MASKED = "220302********1231"
ZHANG_PHONE_MASKED = "138****0001"
VALID_ID = "110101198503120025"
FULL_BODY = {
    "name": "孙丽华", "gender": "female", "birth_date": "1985-03-12", "joined_on": "2010-07-01",
    "id_number": VALID_ID, "work_unit": "四平市第一中学", "position": "教师", "phone": "139 0434 5678",
    "email": "sun@example.cn",
}


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert set(response.json) == {"error"}
    assert response.json["error"]["code"] == code


def member_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Member))


def stored(member_id: int) -> Member:
    db.session.expire_all()
    return db.session.get(Member, member_id)


# ---- POST /members --------------------------------------------------------------------------------------


def test_a_clerk_registers_a_member_of_its_own_org(api, world):
    response = api.post("/members", "clerk", json=FULL_BODY)

    assert response.status_code == 201
    body = response.json
    assert body["org"] == {"id": world.orgs["beimen"].id, "name": "北门街道党工委"}
    assert body["name"] == "孙丽华" and body["gender"] == "female"
    assert body["birth_date"] == "1985-03-12" and body["joined_on"] == "2010-07-01"
    assert body["id_number"] == "110101********0025"
    assert body["phone"] == "13904345678"  # the member's own clerk sees it whole
    assert body["created_at"].endswith("+08:00")
    row = stored(body["id"])
    assert row.org_id == world.orgs["beimen"].id and row.id_number == VALID_ID and row.phone == "13904345678"


def test_only_a_name_is_required(api, world):
    response = api.post("/members", "clerk", json={"name": "  钱  进  "})

    assert response.status_code == 201
    assert response.json["name"] == "钱 进"
    assert response.json["id_number"] is None and response.json["phone"] is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": None}, "name"), ({"name": ""}, "name"), ({"name": "张3"}, "name"), ({"name": 123}, "name"),
        ({"gender": "M"}, "gender"), ({"gender": "other"}, "gender"), ({"gender": 1}, "gender"),
        ({"birth_date": "1985/03/12"}, "birth_date"), ({"birth_date": "12-03-1985"}, "birth_date"),
        ({"birth_date": "1985-02-30"}, "birth_date"), ({"birth_date": 19850312}, "birth_date"),
        ({"joined_on": "2010-07-01T00:00:00"}, "joined_on"),
        ({"id_number": "110101198503120024"}, "id_number"), ({"id_number": "11010119850312002"}, "id_number"),
        ({"id_number": "990101198503120025"}, "id_number"), ({"phone": "12345"}, "phone"),
        ({"email": "not-an-email"}, "email"), ({"nickname": "小孙"}, "nickname"),
    ],
)
def test_invalid_particulars_are_refused_field_by_field(api, world, change, field):
    before = member_count()

    response = api.post("/members", "clerk", json={**FULL_BODY, **change})

    assert_error(response, 422, "validation_error")
    assert field in response.json["error"]["fields"]
    assert member_count() == before


def test_a_member_without_a_name_is_refused(api, world):
    response = api.post("/members", "clerk", json={"gender": "male"})

    assert_error(response, 422, "validation_error")
    assert set(response.json["error"]["fields"]) == {"name"}


@pytest.mark.parametrize("username", ["admin", "tiedong", "central", "member"])
def test_only_a_clerk_registers_members(api, world, username):
    before = member_count()

    response = api.post("/members", username, json=FULL_BODY)

    assert_error(response, 403, "forbidden")
    assert member_count() == before


# ---- masking --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "phone"),
    [("clerk", "13843430001"), ("tiedong", None), ("siping", None), ("jilin", None), ("central", None),
     ("member", ZHANG_PHONE_MASKED)],
)
def test_id_number_always_masked_phone_whole_for_the_clerk_masked_for_the_member(api, world, username, phone):
    member_id = world.members["zhang"].id

    detail = api.get(f"/members/{member_id}", username)
    listed = api.get("/members", username)

    assert detail.status_code == 200 and listed.status_code == 200
    item = next(item for item in listed.json["items"] if item["id"] == member_id)
    for shown in (detail.json, item):
        assert shown["id_number"] == ZHANG_ID_MASKED
        assert shown["phone"] == phone
    for response in (detail, listed):
        assert "220302199001051231" not in response.get_data(as_text=True)


def test_the_id_number_stays_masked_in_the_answer_to_a_correction(api, world):
    response = api.patch(f"/members/{world.members['li'].id}", "clerk", json={"id_number": VALID_ID})

    assert response.status_code == 200
    assert response.json["id_number"] == "110101********0025"
    assert VALID_ID not in response.get_data(as_text=True)


# ---- visibility -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("clerk", {"zhang", "li"}), ("clerk_jiefang", {"zhou"}), ("clerk_dongcheng", {"wang"}),
        ("tiedong", {"zhang", "li", "zhou"}), ("siping", {"zhang", "li", "zhou"}),
        ("jilin", {"zhang", "li", "zhou"}), ("beijing", {"wang"}),
        ("central", {"zhang", "li", "zhou", "wang"}),
        ("member", {"zhang"}), ("member_li", {"li"}),
    ],
)
def test_members_listed_are_those_of_the_callers_subtree(api, world, username, expected):
    response = api.get("/members", username)

    assert response.status_code == 200
    by_id = {member.id: key for key, member in world.members.items()}
    assert {by_id[item["id"]] for item in response.json["items"]} == expected
    assert response.json["next_cursor"] is None


@pytest.mark.parametrize(
    ("username", "member"),
    [("clerk_jiefang", "zhang"), ("clerk", "zhou"), ("clerk_dongcheng", "zhang"), ("beijing", "zhang"),
     ("tiedong", "wang"), ("member", "li"), ("member_li", "zhang"), ("clerk", None)],
)
def test_a_member_outside_the_callers_subtree_is_not_found(api, world, username, member):
    member_id = world.members[member].id if member else 99999

    assert_error(api.get(f"/members/{member_id}", username), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/members"), ("GET", "/members/{id}"), ("PATCH", "/members/{id}"), ("POST", "/members")],
)
def test_the_admin_has_no_business_with_members(api, world, method, path):
    response = api.call(method, path.format(id=world.members["zhang"].id), "admin", json={"name": "改名"})

    assert_error(response, 403, "forbidden")
    assert stored(world.members["zhang"].id).name == "张建国"


# ---- pagination and search ------------------------------------------------------------------------------


def test_members_are_paged_newest_first_with_keyset_cursors(api, world):
    for index in range(5):
        make_member(world.orgs["beimen"], f"党员{'甲乙丙丁戊'[index]}")
    db.session.commit()
    expected = list(db.session.scalars(
        select(Member.id).where(Member.org_id == world.orgs["beimen"].id)
        .order_by(Member.created_at.desc(), Member.id.desc())))

    seen, cursor, pages = [], None, 0
    while True:
        query = "/members?limit=2" + (f"&cursor={cursor}" if cursor else "")
        response = api.get(query, "clerk")
        assert response.status_code == 200
        assert len(response.json["items"]) <= 2
        seen += [item["id"] for item in response.json["items"]]
        cursor, pages = response.json["next_cursor"], pages + 1
        if cursor is None:
            break

    assert seen == expected and len(seen) == 7
    assert pages == 4


@pytest.mark.parametrize(
    ("query", "field"),
    [("cursor=garbage", "cursor"), ("cursor=W10", "cursor"), ("cursor=WyJ4IiwxXQ", "cursor"),
     ("limit=0", "limit"), ("limit=201", "limit"), ("limit=abc", "limit"), ("limit=-1", "limit"),
     (f"q={'李' * 51}", "q")],
)
def test_a_bad_cursor_limit_or_query_is_refused(api, world, query, field):
    response = api.get(f"/members?{query}", "clerk")

    assert_error(response, 422, "validation_error")
    assert field in response.json["error"]["fields"]


@pytest.mark.parametrize(
    ("q", "username", "expected"),
    [("李", "clerk", {"li"}), ("建国", "tiedong", {"zhang"}), ("周", "clerk", set()),
     ("王", "central", {"wang"}), ("%", "central", set()), ("_", "central", set())],
)
def test_q_searches_member_names_within_the_callers_subtree(api, world, q, username, expected):
    response = api.get("/members", username, query_string={"q": q})

    assert response.status_code == 200
    by_id = {member.id: key for key, member in world.members.items()}
    assert {by_id[item["id"]] for item in response.json["items"]} == expected


# ---- PATCH /members/{id} --------------------------------------------------------------------------------


def test_the_members_clerk_corrects_its_particulars(api, world):
    member_id = world.members["zhang"].id

    response = api.patch(f"/members/{member_id}", "clerk",
                         json={"work_unit": "四平市铁东区政府", "phone": "13900000002", "gender": "male"})

    assert response.status_code == 200
    assert response.json["work_unit"] == "四平市铁东区政府" and response.json["phone"] == "13900000002"
    row = stored(member_id)
    assert (row.work_unit, row.phone, row.gender) == ("四平市铁东区政府", "13900000002", "male")
    assert row.name == "张建国"


@pytest.mark.parametrize(
    ("username", "status", "code"),
    [("tiedong", 403, "forbidden"), ("central", 403, "forbidden"), ("member", 403, "forbidden"),
     ("clerk_jiefang", 404, "not_found"), ("beijing", 404, "not_found")],
)
def test_only_the_members_clerk_corrects_it(api, world, username, status, code):
    response = api.patch(f"/members/{world.members['zhang'].id}", username, json={"work_unit": "别处"})

    assert_error(response, status, code)
    assert stored(world.members["zhang"].id).work_unit is None


@pytest.mark.parametrize("body", [{"name": None}, {"id_number": "220302199001051232"}, {"org_id": 1},
                                  {"birth_date": "yesterday"}])
def test_an_invalid_correction_changes_nothing(api, world, body):
    response = api.patch(f"/members/{world.members['zhang'].id}", "clerk", json=body)

    assert_error(response, 422, "validation_error")
    row = stored(world.members["zhang"].id)
    assert (row.name, row.id_number, row.org_id) == ("张建国", "220302199001051231", world.orgs["beimen"].id)

"""Organizations and user accounts: who may list, create and change them (SPEC §2, §3, §7)."""

from __future__ import annotations

import pytest
from conftest import make_member
from sqlalchemy import func, select

from duesflow.extensions import db
from duesflow.models import Org, Payment, User
from duesflow.timeutil import beijing_today

NEW_PASSWORD = "another-good-passphrase"
ALL_ORGS = {"central", "jilin", "siping", "tiedong", "beimen", "jiefang", "beijing", "dongcheng"}


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert set(response.json) == {"error"}
    assert response.json["error"]["code"] == code


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def org_keys(world, items: list[dict]) -> set[str]:
    by_id = {org.id: key for key, org in world.orgs.items()}
    return {by_id[item["id"]] for item in items}


# ---- GET /orgs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("admin", ALL_ORGS),
        ("central", ALL_ORGS),
        ("jilin", {"central", "jilin", "siping", "tiedong", "beimen", "jiefang"}),
        ("tiedong", {"central", "jilin", "siping", "tiedong", "beimen", "jiefang"}),
        ("clerk", {"central", "jilin", "siping", "tiedong", "beimen"}),
        ("member", {"central", "jilin", "siping", "tiedong", "beimen"}),
        ("beijing", {"central", "beijing", "dongcheng"}),
        ("clerk_dongcheng", {"central", "beijing", "dongcheng"}),
    ],
)
def test_org_list_is_the_callers_subtree_and_the_path_above_it(api, world, username, expected):
    response = api.get("/orgs", username)

    assert response.status_code == 200
    assert org_keys(world, response.json["items"]) == expected
    assert all(set(item) == {"id", "name", "kind", "parent_id", "active"} for item in response.json["items"])


def test_org_list_items_carry_kind_parent_and_state(api, world):
    items = {item["id"]: item for item in api.get("/orgs", "tiedong").json["items"]}

    assert items[world.orgs["tiedong"].id] == {
        "id": world.orgs["tiedong"].id, "name": "中共四平市铁东区委组织部", "kind": "intermediate",
        "parent_id": world.orgs["siping"].id, "active": True,
    }
    assert items[world.orgs["central"].id]["parent_id"] is None


# ---- POST /orgs -----------------------------------------------------------------------------------------


def test_admin_adds_an_org_that_fits_under_its_parent(api, world):
    response = api.post("/orgs", "admin", json={"name": "新华街道党工委", "kind": "grassroots",
                                                "parent_id": world.orgs["tiedong"].id})

    assert response.status_code == 201
    assert response.json["kind"] == "grassroots" and response.json["active"] is True
    created = db.session.get(Org, response.json["id"])
    assert created.parent_id == world.orgs["tiedong"].id
    assert created.tree_path == f"{world.orgs['tiedong'].tree_path}{created.id}/"
    assert created.id in {item["id"] for item in api.get("/orgs", "tiedong").json["items"]}


@pytest.mark.parametrize(
    ("kind", "parent"),
    [("grassroots", "beimen"), ("intermediate", "beimen"), ("channel", "jilin"), ("intermediate", "central"),
     ("grassroots", "central"), ("channel", None), ("grassroots", None), ("central", "central")],
)
def test_an_org_whose_kind_does_not_fit_under_its_parent_is_refused(api, world, kind, parent):
    before = count(Org)
    parent_id = world.orgs[parent].id if parent else None

    response = api.post("/orgs", "admin", json={"name": "某组织", "kind": kind, "parent_id": parent_id})

    assert_error(response, 422, "validation_error")
    assert "fields" in response.json["error"]
    assert count(Org) == before


def test_an_org_under_an_unknown_parent_is_refused(api, world):
    response = api.post("/orgs", "admin", json={"name": "某组织", "kind": "grassroots", "parent_id": 99999})

    assert_error(response, 422, "validation_error")
    assert "parent_id" in response.json["error"]["fields"]


def test_there_is_only_one_central(api, world):
    response = api.post("/orgs", "admin", json={"name": "另一个中组部", "kind": "central", "parent_id": None})

    assert_error(response, 409, "already_exists")
    assert db.session.scalar(select(func.count()).where(Org.kind == "central")) == 1


def test_two_orgs_under_one_parent_cannot_share_a_name(api, world):
    response = api.post("/orgs", "admin", json={"name": "北门街道党工委", "kind": "grassroots",
                                                "parent_id": world.orgs["tiedong"].id})

    assert_error(response, 409, "already_exists")


@pytest.mark.parametrize("username", ["clerk", "tiedong", "jilin", "central", "member"])
def test_only_the_admin_adds_orgs(api, world, username):
    before = count(Org)

    response = api.post("/orgs", username, json={"name": "新组织", "kind": "grassroots",
                                                 "parent_id": world.orgs["tiedong"].id})

    assert_error(response, 403, "forbidden")
    assert count(Org) == before


# ---- PATCH /orgs/{id} -----------------------------------------------------------------------------------


def test_admin_renames_an_org(api, world):
    response = api.patch(f"/orgs/{world.orgs['beimen'].id}", "admin", json={"name": "北门街道党工委（新）"})

    assert response.status_code == 200 and response.json["name"] == "北门街道党工委（新）"
    db.session.expire_all()
    assert db.session.get(Org, world.orgs["beimen"].id).name == "北门街道党工委（新）"


def test_admin_deactivates_and_reactivates_an_org(api, world):
    target = f"/orgs/{world.orgs['beimen'].id}"

    deactivated = api.patch(target, "admin", json={"active": False})
    reactivated = api.patch(target, "admin", json={"active": True})

    assert deactivated.status_code == 200 and deactivated.json["active"] is False
    assert reactivated.status_code == 200 and reactivated.json["active"] is True


def test_central_cannot_be_deactivated(api, world):
    response = api.patch(f"/orgs/{world.orgs['central'].id}", "admin", json={"active": False})

    assert_error(response, 422, "validation_error")
    db.session.expire_all()
    assert db.session.get(Org, world.orgs["central"].id).active is True


@pytest.mark.parametrize(
    ("username", "org", "status", "code"),
    [("clerk", "beimen", 403, "forbidden"), ("tiedong", "tiedong", 403, "forbidden"),
     ("central", "beimen", 403, "forbidden"), ("clerk", "dongcheng", 404, "not_found"),
     ("tiedong", "beijing", 404, "not_found"), ("admin", None, 404, "not_found")],
)
def test_only_the_admin_changes_orgs_and_hidden_ones_are_not_found(api, world, username, org, status, code):
    org_id = world.orgs[org].id if org else 99999

    response = api.patch(f"/orgs/{org_id}", username, json={"name": "改名"})

    assert_error(response, status, code)
    assert db.session.scalar(select(func.count()).where(Org.name == "改名")) == 0


def test_a_deactivated_grassroots_org_records_no_new_payments(api, world):
    api.patch(f"/orgs/{world.orgs['beimen'].id}", "admin", json={"active": False})

    response = api.post("/payments", "clerk", json={
        "member_id": world.members["zhang"].id, "amount": "1000.00",
        "collected_on": beijing_today().isoformat(), "method": "cash", "regular_dues_paid": True})

    assert_error(response, 422, "validation_error")
    assert count(Payment) == 0


def test_payments_recorded_before_deactivation_still_travel_up(api, world):
    payment = api.record(world.members["zhang"])
    api.patch(f"/orgs/{world.orgs['beimen'].id}", "admin", json={"active": False})

    submitted = api.act(payment["id"], "submit", "clerk")

    assert submitted["state"] == "in_review"


# ---- POST /users ----------------------------------------------------------------------------------------


def user_body(username: str, role: str, org_id: int | None = None, member_id: int | None = None,
              password: str = NEW_PASSWORD) -> dict:
    body: dict = {"username": username, "password": password, "role": role}
    if org_id is not None:
        body["org_id"] = org_id
    if member_id is not None:
        body["member_id"] = member_id
    return body


@pytest.mark.parametrize(
    ("role", "org"),
    [("clerk", "jiefang"), ("reviewer", "tiedong"), ("reviewer", "jilin"), ("central", "central"),
     ("admin", None)],
)
def test_admin_creates_an_account_of_each_role_in_an_org_of_the_right_kind(api, client, world, role, org):
    org_id = world.orgs[org].id if org else None

    response = api.post("/users", "admin", json=user_body("new_user", role, org_id))

    assert response.status_code == 201
    assert response.json == {"id": response.json["id"], "username": "new_user", "display_name": "", "role": role,
                             "org_id": org_id, "member_id": None, "active": True}
    assert db.session.get(User, response.json["id"]).password_hash.startswith("$argon2")
    login = client.post("/api/v1/auth/token", json={"username": "new_user", "password": NEW_PASSWORD})
    assert login.status_code == 200


def test_admin_creates_a_member_account(api, world):
    body = user_body("zhou", "member", member_id=world.members["zhou"].id)

    response = api.post("/users", "admin", json=body)

    assert response.status_code == 201
    assert response.json["member_id"] == world.members["zhou"].id and response.json["org_id"] is None


@pytest.mark.parametrize(
    ("role", "org", "field"),
    [("clerk", "tiedong", "org_id"), ("clerk", "central", "org_id"), ("reviewer", "beimen", "org_id"),
     ("reviewer", "central", "org_id"), ("central", "jilin", "org_id"), ("clerk", None, "org_id"),
     ("reviewer", None, "org_id"), ("admin", "beimen", "org_id"), ("member", None, "member_id")],
)
def test_an_account_in_an_org_of_the_wrong_kind_is_refused(api, world, role, org, field):
    before = count(User)

    body = user_body("new_user", role, world.orgs[org].id if org else None)

    response = api.post("/users", "admin", json=body)

    assert_error(response, 422, "validation_error")
    assert field in response.json["error"]["fields"]
    assert count(User) == before


@pytest.mark.parametrize(("password", "status"), [("123456789", 422), ("1234567890", 201)],
                         ids=["9-characters", "10-characters"])
def test_a_password_needs_at_least_ten_characters(api, world, password, status):
    response = api.post("/users", "admin", json=user_body("new_user", "clerk", world.orgs["beimen"].id,
                                                          password=password))

    assert response.status_code == status
    if status == 422:
        assert response.json["error"]["code"] == "validation_error"
        assert set(response.json["error"]["fields"]) == {"password"}


@pytest.mark.parametrize("username", ["clerk", "tiedong"])
def test_a_taken_username_is_already_exists(api, world, username):
    before = count(User)

    response = api.post("/users", "admin", json=user_body(username, "clerk", world.orgs["jiefang"].id))

    assert_error(response, 409, "already_exists")
    assert count(User) == before


def test_a_clerk_opens_one_account_for_its_own_member(api, world):
    member = make_member(world.orgs["beimen"], "赵明")
    db.session.commit()

    first = api.post("/users", "clerk", json=user_body("zhao", "member", member_id=member.id))
    second = api.post("/users", "clerk", json=user_body("zhao2", "member", member_id=member.id))

    assert first.status_code == 201
    assert first.json["role"] == "member" and first.json["member_id"] == member.id
    assert_error(second, 409, "already_exists")
    assert db.session.scalar(select(func.count()).where(User.member_id == member.id)) == 1


def test_a_clerk_cannot_open_an_account_for_another_orgs_member(api, world):
    before = count(User)

    body = user_body("zhou", "member", member_id=world.members["zhou"].id)

    response = api.post("/users", "clerk", json=body)

    assert_error(response, 422, "validation_error")
    assert "member_id" in response.json["error"]["fields"]
    assert count(User) == before


@pytest.mark.parametrize(("role", "org"), [("clerk", "beimen"), ("reviewer", "tiedong"), ("admin", None)])
def test_a_clerk_opens_member_accounts_only(api, world, role, org):
    body = user_body("new_user", role, world.orgs[org].id if org else None)

    response = api.post("/users", "clerk", json=body)

    assert_error(response, 403, "forbidden")


@pytest.mark.parametrize("username", ["tiedong", "jilin", "central", "member"])
def test_other_roles_cannot_create_accounts(api, world, username):
    member = make_member(world.orgs["beimen"], "赵明")
    db.session.commit()
    before = count(User)

    response = api.post("/users", username, json=user_body("zhao", "member", member_id=member.id))

    assert_error(response, 403, "forbidden")
    assert count(User) == before


# ---- GET /users -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "expected"),
    [("clerk", {"member", "member_li"}), ("clerk_jiefang", set()), ("clerk_dongcheng", set())],
)
def test_a_clerk_lists_only_its_members_accounts(api, world, username, expected):
    response = api.get("/users", username)

    assert response.status_code == 200
    assert {item["username"] for item in response.json["items"]} == expected


def test_the_admin_lists_every_account(api, world):
    response = api.get("/users", "admin")

    assert response.status_code == 200
    assert {item["username"] for item in response.json["items"]} == set(world.users)
    assert all(set(item) == {"id", "username", "display_name", "role", "org_id", "member_id", "active"}
               for item in response.json["items"])


@pytest.mark.parametrize("username", ["tiedong", "jilin", "central", "member"])
def test_other_roles_cannot_list_accounts(api, world, username):
    assert_error(api.get("/users", username), 403, "forbidden")


# ---- PATCH /users/{id} ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "target", "status", "code"),
    [("clerk", "member", 403, "forbidden"), ("clerk", "admin", 404, "not_found"),
     ("clerk", "clerk_jiefang", 404, "not_found"), ("tiedong", "clerk", 404, "not_found"),
     ("central", "clerk", 404, "not_found"), ("member", "member", 404, "not_found")],
)
def test_only_the_admin_changes_accounts(api, world, username, target, status, code):
    response = api.patch(f"/users/{world.users[target].id}", username, json={"active": False})

    assert_error(response, status, code)
    db.session.expire_all()
    assert db.session.get(User, world.users[target].id).active is True


def test_the_admin_patching_an_unknown_account_gets_not_found(api, world):
    assert_error(api.patch("/users/99999", "admin", json={"active": False}), 404, "not_found")


@pytest.mark.parametrize("body", [{"password": "short"}, {"active": "false"}, {"active": None},
                                  {"role": "admin"}])
def test_an_invalid_account_change_is_refused(api, world, body):
    hash_before = world.users["clerk"].password_hash

    response = api.patch(f"/users/{world.users['clerk'].id}", "admin", json=body)

    assert_error(response, 422, "validation_error")
    db.session.expire_all()
    user = db.session.get(User, world.users["clerk"].id)
    assert user.active is True and user.password_hash == hash_before and user.role == "clerk"


# ---- display_name (SPEC §7, §10) ------------------------------------------------------------------------


def test_an_account_carries_the_persons_name_which_the_admin_can_change(api, world):
    body = {**user_body("zhangjg", "reviewer", world.orgs["tiedong"].id), "display_name": " 张建国 "}

    created = api.post("/users", "admin", json=body)
    renamed = api.patch(f"/users/{created.json['id']}", "admin", json={"display_name": "张建华"})

    assert created.status_code == 201 and created.json["display_name"] == "张建国"
    assert renamed.status_code == 200 and renamed.json["display_name"] == "张建华"
    assert db.session.get(User, created.json["id"]).shown_name == "张建华"


def test_a_name_longer_than_fifty_characters_is_refused(api, world):
    response = api.patch(f"/users/{world.users['tiedong'].id}", "admin", json={"display_name": "名" * 51})

    assert_error(response, 422, "validation_error")


def test_payment_events_name_the_actor_beside_the_username(api, world):
    world.users["clerk"].display_name = "王丽华"
    db.session.commit()
    payment = api.record(world.members["zhang"])

    actor = api.get(f"/payments/{payment['id']}", "clerk").json["events"][0]["actor"]

    assert actor == {"id": world.users["clerk"].id, "username": "clerk", "display_name": "王丽华"}

"""Personal data (issue 6, point 8): resident ID numbers and phones encrypted at rest under a key from the
environment, found by a keyed hash, keys rotated without downtime, and every showing of an unmasked value in
an access log that central reads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import parallel
import pytest
from conftest import DATA_KEY, PASSWORD, app_config, make_member
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text
from test_web_pages import Page

from duesflow import create_app
from duesflow.extensions import db
from duesflow.models import Member, PersonalDataView
from duesflow.personal_data import DataKeyError, DataKeys, generate_key

ID_NUMBER = "220302199001051231"  # 张建国's, in conftest's world
PHONE = "13843430001"
NEW_KEY = generate_key()


def _raw_members() -> list[dict[str, Any]]:
    with db.engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(text("SELECT * FROM members"))]


@contextmanager
def _app_with_keys(database_url: str, current: str, retired: list[str]) -> Iterator[Flask]:
    db.session.commit()  # outside a request SQLite begins as a writer: release the lock for the other app
    other = create_app({**app_config(database_url), "DATA_KEY": current, "DATA_OLD_KEYS": retired})
    with other.app_context():
        yield other
        db.session.remove()
        if not parallel.shares_engines(database_url):  # the outer test's engine too (tests/parallel.py)
            db.engine.dispose()


def _page(app: Flask, username: str) -> Page:
    page = Page(app.test_client())
    assert page.login(username).status_code == 302
    return page


def _views() -> list[tuple[str, int, str, str]]:
    db.session.expire_all()
    return [(row.viewer.username, row.member_id, row.field, row.shown_by)
            for row in db.session.query(PersonalDataView).order_by(PersonalDataView.id)]


# ---- at rest ----------------------------------------------------------------------------------------------


def test_no_id_number_or_phone_is_stored_in_plain_text(api, world):
    answer = api.post("/members", "clerk", json={
        "name": "赵红", "id_number": "110101199003074477", "phone": "+86 139-0000-1234"})
    assert answer.status_code == 201, answer.get_json()
    created = answer.get_json()

    rows = _raw_members()
    stored = " ".join(str(value) for row in rows for value in row.values())
    for plain in ("110101199003074477", "13900001234", ID_NUMBER, PHONE):
        assert plain not in stored
    assert {"id_number", "phone"}.isdisjoint(rows[0])  # the plaintext columns are gone
    row = next(r for r in rows if r["id"] == created["id"])
    keys = DataKeys(DATA_KEY)
    assert keys.decrypt(row["id_number_encrypted"]) == "110101199003074477"
    assert keys.decrypt(row["phone_encrypted"]) == "13900001234"
    assert row["phone_hash"] == keys.blind_index("phone", "13900001234")
    assert created["id_number"] == "110101********4477"


def test_the_same_value_encrypts_differently_each_time_but_hashes_the_same(app):
    keys = DataKeys(DATA_KEY)
    assert keys.encrypt(ID_NUMBER) != keys.encrypt(ID_NUMBER)
    assert keys.blind_index("id_number", ID_NUMBER) == keys.blind_index("id_number", ID_NUMBER)
    assert keys.blind_index("id_number", ID_NUMBER) != DataKeys(NEW_KEY).blind_index("id_number", ID_NUMBER)
    assert keys.blind_index("id_number", PHONE) != keys.blind_index("phone", PHONE)


@pytest.mark.parametrize("key", ["", "short", "x" * 44, "dGVzdA=="])
def test_a_malformed_data_key_stops_the_app_at_start(database_url, key):
    with pytest.raises(DataKeyError, match="DUESFLOW_DATA_KEY"):
        create_app({**app_config(database_url), "DATA_KEY": key})


def test_the_data_key_defaults_to_one_generated_in_the_instance_folder(tmp_path, monkeypatch):
    from duesflow import config

    monkeypatch.delenv("DUESFLOW_DATA_KEY", raising=False)
    first = config.from_environment(tmp_path)["DATA_KEY"]
    assert first == config.from_environment(tmp_path)["DATA_KEY"] == (tmp_path / "data_key").read_text()
    DataKeys(first)  # a valid key
    monkeypatch.setenv("DUESFLOW_DATA_KEY", NEW_KEY)
    assert config.from_environment(tmp_path)["DATA_KEY"] == NEW_KEY


# ---- searchable by keyed hash -----------------------------------------------------------------------------


@pytest.mark.parametrize("query", [{"id_number": ID_NUMBER}, {"id_number": ID_NUMBER.lower()}, {"q": "张建"}])
def test_a_clerk_finds_a_member_by_whole_id_number_or_name(api, world, query):
    found = api.get("/members", "clerk", query_string=query).get_json()["items"]
    assert [m["name"] for m in found] == ["张建国"]


@pytest.mark.parametrize("q", [ID_NUMBER, PHONE, ID_NUMBER[:10], PHONE[:7], "220302********1231"])
def test_parts_of_a_number_find_nobody(api, world, q):
    assert api.get("/members", "clerk", query_string={"q": q}).get_json()["items"] == []


def test_the_register_page_searches_by_post_so_the_number_stays_out_of_the_url(app, world):
    page = _page(app, "clerk")
    answer = page.post("/members", {"id_number": ID_NUMBER})
    assert answer.status_code == 200
    body = answer.get_data(as_text=True)
    assert "张建国" in body and "李秀兰" not in body
    assert ID_NUMBER not in body  # not even echoed in the search box


def test_the_import_refuses_an_id_number_already_registered_by_its_hash(app, world, runner, tmp_path):
    sheet = tmp_path / "members.csv"
    sheet.write_text(f"姓名,身份证号\n张建国,{ID_NUMBER}\n", encoding="utf-8")
    result = runner.invoke(args=["import-members", str(sheet), "--org", str(world.orgs["beimen"].id)])
    assert result.exit_code != 0
    assert "已在本基层党委名册中" in result.output


# ---- rotation ---------------------------------------------------------------------------------------------


def test_a_new_key_reads_old_rows_through_the_retired_key_until_rotation_rewrites_them(
        app, api, world, database_url):
    member_id, updated_at = world.members["zhang"].id, world.members["zhang"].updated_at
    with _app_with_keys(database_url, NEW_KEY, [DATA_KEY]) as rotated:
        client = rotated.test_client()
        token = client.post("/api/v1/auth/token", json={"username": "clerk", "password": PASSWORD})
        assert token.status_code == 200, token.get_json()
        headers = {"Authorization": f"Bearer {token.get_json()['token']}"}
        # before rotation: readable and findable through the retired key
        assert client.get(f"/api/v1/members/{member_id}", headers=headers).get_json()["phone"] == PHONE
        found = client.get("/api/v1/members", headers=headers, query_string={"id_number": ID_NUMBER}).get_json()
        assert [m["id"] for m in found["items"]] == [member_id]

        result = rotated.test_cli_runner().invoke(args=["rotate-data-key", "--batch", "2"])
        assert result.exit_code == 0, result.output
        assert "已检查 4 名党员，重新加密 1 名" in result.output  # only 张建国 has an ID number or a phone
        again = rotated.test_cli_runner().invoke(args=["rotate-data-key"])
        assert "重新加密 0 名" in again.output

    new_only = DataKeys(NEW_KEY)
    row = next(r for r in _raw_members() if r["id"] == member_id)
    assert new_only.decrypt(row["id_number_encrypted"]) == ID_NUMBER
    assert row["id_number_hash"] == new_only.blind_index("id_number", ID_NUMBER)
    with _app_with_keys(database_url, NEW_KEY, []):  # the retired key is no longer needed
        assert db.session.get(Member, member_id).phone == PHONE
        assert db.session.get(Member, member_id).updated_at == updated_at  # not a change


def test_a_row_no_configured_key_opens_is_an_error_that_names_the_cause(app, world, database_url):
    member_id = world.members["zhang"].id
    with _app_with_keys(database_url, NEW_KEY, []), pytest.raises(DataKeyError, match="rotate-data-key"):
        db.session.get(Member, member_id).phone  # noqa: B018


# ---- the migration ----------------------------------------------------------------------------------------


def test_the_migration_encrypts_existing_plain_values_and_its_downgrade_restores_them(app):
    db.metadata.drop_all(db.engine)
    with db.engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    directory = app.extensions["migrate"].directory
    upgrade(directory=directory, revision="0002")
    with db.engine.begin() as connection:
        connection.execute(text("INSERT INTO orgs (id, name, kind, tree_path, active, created_at) "
                                "VALUES (1, '中共中央组织部', 'central', '/1/', true, '2026-01-01 00:00:00')"))
        connection.execute(text("INSERT INTO members (id, org_id, name, id_number, phone, created_at, updated_at) "
                                f"VALUES (1, 1, '张建国', '{ID_NUMBER}', '{PHONE}', '2026-01-01 00:00:00', "
                                "'2026-01-01 00:00:00'), (2, 1, '李秀兰', NULL, NULL, '2026-01-01 00:00:00', "
                                "'2026-01-01 00:00:00')"))

    upgrade(directory=directory, revision="0003")
    rows = {row["id"]: row for row in _raw_members()}
    keys = DataKeys(DATA_KEY)
    assert keys.decrypt(rows[1]["id_number_encrypted"]) == ID_NUMBER
    assert rows[1]["phone_hash"] == keys.blind_index("phone", PHONE)
    assert rows[2]["id_number_encrypted"] is None and rows[2]["id_number_hash"] is None
    assert PHONE not in str(rows[1])

    downgrade(directory=directory, revision="0002")
    columns = {column["name"] for column in inspect(db.engine).get_columns("members")}
    assert {"id_number", "phone"} <= columns and "phone_hash" not in columns
    assert {row["id"]: (row["id_number"], row["phone"]) for row in _raw_members()} == {
        1: (ID_NUMBER, PHONE), 2: (None, None)}
    upgrade(directory=directory)  # PostgreSQL tests reuse the schema: leave it at the head


# ---- the access log ---------------------------------------------------------------------------------------


def test_the_members_clerk_seeing_the_phone_is_logged(api, world):
    member_id = world.members["zhang"].id
    assert api.get(f"/members/{member_id}", "clerk").get_json()["phone"] == PHONE
    assert _views() == [("clerk", member_id, "phone", f"GET /api/v1/members/{member_id}")]


@pytest.mark.parametrize(("username", "phone"), [("tiedong", None), ("central", None), ("member", "138****0001")])
def test_a_masked_or_withheld_phone_is_not_logged(api, world, username, phone):
    member_id = world.members["zhang"].id
    assert api.get(f"/members/{member_id}", username).get_json()["phone"] == phone
    assert _views() == []


def test_every_unmasked_phone_in_a_list_or_a_write_answer_is_logged(api, world):
    other = make_member(world.orgs["beimen"], "王芳", phone="13900000002")
    db.session.commit()
    api.get("/members", "clerk")
    created = api.post("/members", "clerk", json={"name": "赵红", "phone": "13900000003"}).get_json()
    api.patch(f"/members/{other.id}", "clerk", json={"work_unit": "四平市铁东区"})

    assert sorted(_views()) == sorted([
        ("clerk", world.members["zhang"].id, "phone", "GET /api/v1/members"),
        ("clerk", other.id, "phone", "GET /api/v1/members"),
        ("clerk", created["id"], "phone", "POST /api/v1/members"),
        ("clerk", other.id, "phone", f"PATCH /api/v1/members/{other.id}"),
    ])


def test_the_pages_that_show_a_phone_are_logged_and_the_register_which_does_not_is_not(app, api, world):
    member_id = world.members["zhang"].id
    payment_id = api.record(world.members["zhang"])["id"]
    db.session.query(PersonalDataView).delete()
    db.session.commit()
    page = _page(app, "clerk")
    for path in ("/members", f"/members/{member_id}", f"/members/{member_id}/edit", f"/payments/{payment_id}"):
        assert page.get(path).status_code == 200
    assert PHONE in page.get(f"/members/{member_id}/edit").get_data(as_text=True)

    assert [(view[1], view[3]) for view in _views()] == [
        (member_id, f"GET /members/{member_id}"), (member_id, f"GET /members/{member_id}/edit"),
        (member_id, f"GET /payments/{payment_id}"), (member_id, f"GET /members/{member_id}/edit"),
    ]


def test_central_reads_the_access_log_newest_first_filtered_and_paged(api, world):
    zhang, li = world.members["zhang"], world.members["li"]
    li.phone = "13900000004"
    db.session.commit()
    for member in (zhang, li, zhang):
        api.get(f"/members/{member.id}", "clerk")

    log = api.get("/access-log", "central").get_json()
    assert [(item["member"]["name"], item["viewer"]["username"], item["field"]) for item in log["items"]] == [
        ("张建国", "clerk", "phone"), ("李秀兰", "clerk", "phone"), ("张建国", "clerk", "phone")]
    assert log["items"][0]["shown_by"] == f"GET /api/v1/members/{zhang.id}"
    assert log["next_cursor"] is None

    only_li = api.get("/access-log", "central", query_string={"member_id": li.id}).get_json()
    assert [item["member"]["id"] for item in only_li["items"]] == [li.id]
    first = api.get("/access-log", "central", query_string={"limit": 2}).get_json()
    rest = api.get("/access-log", "central", query_string={"cursor": first["next_cursor"]}).get_json()
    assert [i["id"] for i in first["items"] + rest["items"]] == [i["id"] for i in log["items"]]
    by_viewer = api.get("/access-log", "central", query_string={"viewer_id": world.users["tiedong"].id})
    assert by_viewer.get_json()["items"] == []


@pytest.mark.parametrize("query", [{"member_id": "0"}, {"member_id": "-1"}, {"viewer_id": "x"},
                                   {"member_id": " 1"}, {"cursor": "nonsense"}, {"limit": "201"}])
def test_a_bad_access_log_query_is_a_validation_error(api, world, query):
    answer = api.get("/access-log", "central", query_string=query)
    assert answer.status_code == 422
    assert answer.get_json()["error"]["code"] == "validation_error"


def test_the_access_log_page_shows_central_who_saw_what(app, api, world):
    api.get(f"/members/{world.members['zhang'].id}", "clerk")
    body = _page(app, "central").get("/access-log").get_data(as_text=True)
    assert "张建国" in body and "联系电话" in body and f"GET /api/v1/members/{world.members['zhang'].id}" in body
    assert PHONE not in body

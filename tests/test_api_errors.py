"""What clients send wrong is a 4xx in the SPEC's error shape, never a 5xx, and changes nothing (SPEC §7)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from duesflow.extensions import db
from duesflow.timeutil import beijing_today

ERROR_KEYS = {"code", "message", "fields"}


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The SPEC's error shape: {"error": {"code", "message"[, "fields"]}}; returns the inner object."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    assert set(response.json) == {"error"}
    error = response.json["error"]
    assert {"code", "message"} <= set(error) <= ERROR_KEYS
    assert isinstance(error["message"], str) and error["message"]
    assert error["code"].isidentifier() and error["code"] == error["code"].lower()
    if code is not None:
        assert error["code"] == code
    return error


def row_counts() -> dict[str, int]:
    """Rows per table; throttle hits are left out (counting failures is their job)."""
    db.session.expire_all()
    return {
        table.name: db.session.scalar(select(func.count()).select_from(table))
        for table in db.metadata.sorted_tables
        if table.name != "throttle_hits"
    }


@pytest.fixture
def clerk_headers(api, world) -> dict[str, str]:
    """The clerk's bearer header, fetched before any row count is taken."""
    return {"Authorization": f"Bearer {api.token('clerk')}"}


def payment_body(world, **changes) -> dict:
    return {"member_id": world.members["zhang"].id, "amount": "1000.00",
            "collected_on": beijing_today().isoformat(), "method": "cash", "regular_dues_paid": True,
            **changes}


# ---- bodies that are not a JSON object ------------------------------------------------------------------

NOT_AN_OBJECT = {
    "not-json": b"amount=1000",
    "truncated": b'{"amount": "1000"',
    "array": b"[1, 2, 3]",
    "string": b'"hello"',
    "number": b"1000",
    "null": b"null",
    "nan-literal": b'{"amount": NaN}',
    "infinity-literal": b'{"amount": Infinity}',
    "minus-infinity-literal": b'{"amount": -Infinity}',
    "not-utf-8": b'{"name": "\xff\xfe\xfa"}',
    "utf-16": '{"name": "张三"}'.encode("utf-16"),
    "deeply-nested-array": b"[" * 100_000 + b"]" * 100_000,
    "deeply-nested-object": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "huge-integer": b'{"amount": ' + b"9" * 5000 + b"}",
    # Valid JSON, but text that no database can store.
    "lone-surrogate": b'{"name": "\\ud800", "username": "\\udfff", "note": "a\\ud800b"}',
}

BODY_ENDPOINTS = [("/payments", "clerk"), ("/members", "clerk"), ("/users", "clerk"), ("/orgs", "admin"),
                  ("/auth/password", "clerk"), ("/auth/token", None), ("/direct-remittances", "central")]


@pytest.mark.parametrize(("path", "user"), BODY_ENDPOINTS, ids=[path for path, _ in BODY_ENDPOINTS])
@pytest.mark.parametrize("raw", NOT_AN_OBJECT.values(), ids=NOT_AN_OBJECT.keys())
def test_a_body_that_is_not_a_json_object_is_malformed(api, world, path, user, raw):
    headers = {"Authorization": f"Bearer {api.token(user)}"} if user else {}
    before = row_counts()

    response = api.client.post(f"/api/v1{path}", data=raw, content_type="application/json", headers=headers)

    assert_error(response, 400, "malformed_request")
    assert row_counts() == before


def test_a_body_larger_than_one_megabyte_is_too_large(client, world, clerk_headers):
    before = row_counts()
    body = json.dumps(payment_body(world, note="x" * (1024 * 1024 + 1)))

    response = client.post("/api/v1/payments", data=body, content_type="application/json",
                           headers=clerk_headers)

    assert_error(response, 413)
    assert row_counts() == before


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [("/members", {"name": "张" * 10_000}, "name"), ("/members", {"name": "张三", "work_unit": "单" * 10_000},
                                                        "work_unit"),
     ("/payments", None, "note"), ("/orgs", {"name": "组" * 10_000, "kind": "grassroots", "parent_id": 1},
                                   "name")],
)
def test_a_string_too_long_for_its_field_is_a_validation_error(api, world, clerk_headers, path, body, field):
    body = body or payment_body(world, note="备" * 10_000)
    user = "admin" if path == "/orgs" else "clerk"
    api.token(user)
    before = row_counts()

    response = api.post(path, user, json=body)

    assert field in assert_error(response, 422, "validation_error")["fields"]
    assert row_counts() == before


# ---- wrong types and unknown fields on POST /payments ---------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"amount": True}, "invalid_amount", "amount"),
        ({"amount": False}, "invalid_amount", "amount"),
        ({"amount": None}, "invalid_amount", "amount"),
        ({"amount": ["1000"]}, "invalid_amount", "amount"),
        ({"amount": {"value": "1000"}}, "invalid_amount", "amount"),
        ({"member_id": "1"}, "validation_error", "member_id"),
        ({"member_id": 1.0}, "validation_error", "member_id"),
        ({"member_id": 1.5}, "validation_error", "member_id"),
        ({"member_id": True}, "validation_error", "member_id"),
        ({"member_id": None}, "validation_error", "member_id"),
        ({"member_id": 0}, "validation_error", "member_id"),
        ({"member_id": -1}, "validation_error", "member_id"),
        ({"member_id": 2**63}, "validation_error", "member_id"),
        ({"member_id": 99999}, "validation_error", "member_id"),
        ({"regular_dues_paid": "true"}, "validation_error", "regular_dues_paid"),
        ({"regular_dues_paid": 1}, "validation_error", "regular_dues_paid"),
        ({"regular_dues_paid": None}, "validation_error", "regular_dues_paid"),
        ({"collected_on": 20240101}, "validation_error", "collected_on"),
        ({"collected_on": "2024-1-1"}, "validation_error", "collected_on"),
        ({"collected_on": "2024-02-30"}, "validation_error", "collected_on"),
        ({"collected_on": "0000-01-01"}, "validation_error", "collected_on"),
        ({"method": "paypal"}, "validation_error", "method"),
        ({"method": None}, "validation_error", "method"),
        ({"note": 12}, "validation_error", "note"),
        ({"note": "a\x00b"}, "validation_error", "note"),
        ({"surprise": 1}, "validation_error", "surprise"),
        ({"state": "receipted"}, "validation_error", "state"),
    ],
)
def test_a_field_of_the_wrong_type_or_unknown_is_refused_and_nothing_is_recorded(
        api, world, clerk_headers, changes, code, field):
    before = row_counts()

    response = api.post("/payments", "clerk", json=payment_body(world, **changes))

    assert field in assert_error(response, 422, code)["fields"]
    assert row_counts() == before


def test_a_member_of_another_org_cannot_be_paid_for(api, world, clerk_headers):
    before = row_counts()

    response = api.post("/payments", "clerk", json=payment_body(world, member_id=world.members["zhou"].id))

    assert "member_id" in assert_error(response, 422, "validation_error")["fields"]
    assert row_counts() == before


@pytest.mark.parametrize("missing", ["member_id", "amount", "collected_on", "method", "regular_dues_paid"])
def test_every_required_payment_field_is_required(api, world, clerk_headers, missing):
    body = payment_body(world)
    del body[missing]

    response = api.post("/payments", "clerk", json=body)

    assert missing in assert_error(response, 422)["fields"]


def test_an_empty_payment_body_lists_every_missing_field_in_chinese(api, world, clerk_headers):
    response = api.post("/payments", "clerk", json={})

    fields = assert_error(response, 422, "validation_error")["fields"]
    assert set(fields) == {"member_id", "amount", "collected_on", "method", "regular_dues_paid"}
    assert all(messages == ["此项必填。"] for messages in fields.values())


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"surprise": 1}, "surprise", "不接受此字段（未知字段）。"),
        ({"member_id": "x"}, "member_id", "须为整数。"),
        ({"member_id": 0}, "member_id", "须在 1 到 2147483647 之间。"),
        ({"method": "paypal"}, "method", "须为所列选项之一：cash, bank_transfer, wechat, alipay, other。"),
        ({"method": None}, "method", "此项必填，不能为 null。"),
        ({"note": "x" * 501}, "note", "不能超过 500 个字符。"),
    ],
)
def test_validation_messages_are_chinese(api, world, clerk_headers, changes, field, expected):
    response = api.post("/payments", "clerk", json=payment_body(world, **changes))

    assert assert_error(response, 422, "validation_error")["fields"][field] == [expected]


def test_a_bad_amount_beside_missing_fields_is_listed_with_them(api, world, clerk_headers):
    response = api.post("/payments", "clerk", json={"amount": "12,000"})

    fields = assert_error(response, 422, "validation_error")["fields"]
    assert {"member_id", "amount", "method"} <= set(fields)


# ---- the amount table (SPEC §7 Amounts) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "echoed"),
    [(b'"1000"', "1000.00"), (b'"1000.5"', "1000.50"), (b'"1000.00"', "1000.00"), (b"1000", "1000.00"),
     (b"1000.5", "1000.50"), (b"1000.50", "1000.50"), (b'"10000000.00"', "10000000.00"),
     (b"12345.67", "12345.67")],
)
def test_an_accepted_amount_is_echoed_with_two_decimals(client, world, clerk_headers, raw, echoed):
    body = json.dumps(payment_body(world, amount="@AMOUNT@")).encode().replace(b'"@AMOUNT@"', raw)

    response = client.post("/api/v1/payments", data=body, content_type="application/json",
                           headers=clerk_headers)

    assert response.status_code == 201, response.json
    assert response.json["amount"] == echoed
    events = client.get(f"/api/v1/payments/{response.json['id']}", headers=clerk_headers).json["events"]
    assert [event["action"] for event in events] == ["record"]


REFUSED_AMOUNTS = {
    "999.99": (b'"999.99"', "amount_below_minimum"),
    "999.99-number": (b"999.99", "amount_below_minimum"),
    "0": (b'"0"', "amount_below_minimum"),
    "above-maximum": (b'"10000000.01"', "amount_above_maximum"),
    "huge-integer": (b"1" + b"0" * 60, "amount_above_maximum"),
    "huge-string": (b'"1' + b"0" * 60 + b'"', "amount_above_maximum"),
    "three-decimals": (b'"1000.001"', "invalid_amount"),
    "three-decimals-number": (b"1000.001", "invalid_amount"),
    "exponent-string": (b'"1e3"', "invalid_amount"),
    "exponent-number": (b"1e3", "invalid_amount"),
    "exponent-fraction": (b"1.0E3", "invalid_amount"),
    "negative": (b'"-1000"', "invalid_amount"),
    "negative-number": (b"-1000", "invalid_amount"),
    "plus": (b'"+1000"', "invalid_amount"),
    "leading-space": (b'" 1000"', "invalid_amount"),
    "trailing-space": (b'"1000 "', "invalid_amount"),
    "comma": (b'"1,000"', "invalid_amount"),
    "empty": (b'""', "invalid_amount"),
    "null": (b"null", "invalid_amount"),
    "leading-zero": (b'"01000"', "invalid_amount"),
    "trailing-dot": (b'"1000."', "invalid_amount"),
    "leading-dot": (b'".5"', "invalid_amount"),
    "nan-string": (b'"NaN"', "invalid_amount"),
    "infinity-string": (b'"Infinity"', "invalid_amount"),
    "true": (b"true", "invalid_amount"),
    "yuan-sign": (b'"\xc2\xa51000"', "invalid_amount"),
    "full-width-digits": ('"１０００"'.encode(), "invalid_amount"),
    "arabic-indic-digits": ('"١٠٠٠"'.encode(), "invalid_amount"),
}


@pytest.mark.parametrize(("raw", "code"), REFUSED_AMOUNTS.values(), ids=REFUSED_AMOUNTS.keys())
def test_a_refused_amount_gets_its_code_and_records_nothing(client, world, clerk_headers, raw, code):
    body = json.dumps(payment_body(world, amount="@AMOUNT@")).encode().replace(b'"@AMOUNT@"', raw)
    before = row_counts()

    response = client.post("/api/v1/payments", data=body, content_type="application/json",
                           headers=clerk_headers)

    assert_error(response, 422, code)
    assert row_counts() == before


def test_unpaid_regular_dues_are_refused(api, world, clerk_headers):
    before = row_counts()

    response = api.post("/payments", "clerk", json=payment_body(world, regular_dues_paid=False))

    assert_error(response, 422, "regular_dues_unpaid")
    assert row_counts() == before


def test_a_collection_date_tomorrow_in_beijing_is_refused(api, world, clerk_headers):
    before = row_counts()
    tomorrow = (beijing_today() + timedelta(days=1)).isoformat()

    response = api.post("/payments", "clerk", json=payment_body(world, collected_on=tomorrow))

    assert "collected_on" in assert_error(response, 422, "validation_error")["fields"]
    assert row_counts() == before


@pytest.mark.parametrize(("raw", "code"), [(b'"999.99"', "amount_below_minimum"), (b"1e3", "invalid_amount"),
                                           (b'"10000000.01"', "amount_above_maximum")])
def test_a_correction_checks_the_amount_like_creation(api, client, world, clerk_headers, raw, code):
    payment = api.record(world.members["zhang"])
    before = row_counts()

    response = client.patch(f"/api/v1/payments/{payment['id']}", data=b'{"amount": ' + raw + b"}",
                            content_type="application/json", headers=clerk_headers)

    assert_error(response, 422, code)
    assert row_counts() == before


# ---- ids that do not exist ------------------------------------------------------------------------------


HUGE_ID = 10**30


@pytest.mark.parametrize(
    ("method", "path", "user"),
    [("GET", "/payments/{id}", "clerk"), ("PATCH", "/payments/{id}", "clerk"),
     ("POST", "/payments/{id}/submit", "clerk"), ("GET", "/payments/{id}/receipt.pdf", "clerk"),
     ("GET", "/members/{id}", "clerk"), ("PATCH", "/members/{id}", "clerk"), ("PATCH", "/orgs/{id}", "admin"),
     ("PATCH", "/users/{id}", "admin")],
)
@pytest.mark.parametrize("unknown_id", [99999, 2**31, HUGE_ID], ids=["unknown", "beyond-int32", "huge"])
def test_an_unknown_id_in_the_path_is_not_found(api, world, method, path, user, unknown_id):
    api.token(user)
    before = row_counts()

    response = api.call(method, path.format(id=unknown_id), user, json={"name": "x"})

    assert_error(response, 404, "not_found")
    assert row_counts() == before


@pytest.mark.parametrize("path", [f"/payments/{HUGE_ID}", f"/members/{HUGE_ID}", "/payments/99999"])
def test_an_unknown_id_without_a_token_is_unauthenticated_first(api, world, path):
    assert_error(api.get(path), 401, "unauthenticated")


@pytest.mark.parametrize(
    ("stamp", "row_id"),
    [("2024-01-01T00:00:00+00:00", 2**63), ("2024-01-01T00:00:00+00:00", HUGE_ID),
     ("2024-01-01T00:00:00+00:00", 0), ("0001-01-01T00:00:00+01:00", 1), ("9999-12-31T23:59:59-01:00", 1),
     ("2024-01-01T00:00:00", 1), (20240101, 1), ("2024-01-01T00:00:00+00:00", "1")],
    ids=["beyond-int64", "huge-id", "zero-id", "before-year-1-in-utc", "after-year-9999-in-utc", "naive",
         "number-stamp", "string-id"],
)
@pytest.mark.parametrize("path", ["/members", "/payments"])
def test_a_forged_cursor_is_a_validation_error(api, world, path, stamp, row_id):
    cursor = base64.urlsafe_b64encode(json.dumps([stamp, row_id]).encode()).decode().rstrip("=")

    response = api.get(f"{path}?cursor={cursor}", "clerk")

    assert "cursor" in assert_error(response, 422, "validation_error")["fields"]


@pytest.mark.parametrize(
    ("path", "user"),
    [("/members?q=%00", "clerk"), ("/members?q=a%00b", "central"), ("/payments?state=%00", "clerk"),
     ("/payments?cursor=%00", "clerk"), ("/payments?limit=%00", "clerk"),
     ("/receipts/2024-000001/verify?code=%00", None)],
)
def test_a_nul_in_the_query_string_is_a_validation_error(api, world, path, user):
    assert_error(api.get(path, user), 422, "validation_error")


@pytest.mark.parametrize("number", ["2024-000001%00", "%00", "x" * 300, "2024-00000１", "%ED%A0%80"])
def test_a_receipt_number_that_cannot_exist_is_not_found(api, world, number):
    assert_error(api.get(f"/receipts/{number}/verify?code=ABCDEFGH"), 404, "receipt_not_found")


# ---- routing --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/api/v1/payments/abc", "/api/v1/", "/api/v2/orgs",
                                  "/api/v1/payments/1/2/3"])
def test_an_unknown_api_route_is_not_found_in_the_error_shape(client, world, path):
    assert_error(client.get(path), 404, "not_found")


@pytest.mark.parametrize(("method", "path"), [("DELETE", "/api/v1/payments"), ("PUT", "/api/v1/orgs"),
                                              ("DELETE", "/api/v1/orgs/1"), ("GET", "/api/v1/auth/token"),
                                              ("PUT", "/healthz")])
def test_a_wrong_method_is_method_not_allowed_in_the_error_shape(client, world, method, path):
    response = client.open(path, method=method)

    assert_error(response, 405)
    assert method not in response.headers.get("Allow", "")
    assert response.headers.get("Allow")


# ---- anything at all ------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(
    st.binary(max_size=200),
    st.fixed_dictionaries({}, optional={
        "member_id": JSON_VALUES, "amount": JSON_VALUES, "collected_on": JSON_VALUES, "method": JSON_VALUES,
        "regular_dues_paid": JSON_VALUES, "note": JSON_VALUES}).map(lambda d: json.dumps(d).encode()),
))
def test_nothing_a_client_sends_to_record_a_payment_is_a_server_error(client, clerk_headers, body):
    response = client.post("/api/v1/payments", data=body, content_type="application/json",
                           headers=clerk_headers)

    assert response.status_code in (201, 400, 422), response.get_data(as_text=True)[:500]
    if response.status_code != 201:
        assert_error(response, response.status_code)


# ---- a JSON body must say it is JSON (docs/security.md, "Decisions") --------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          None])
@pytest.mark.parametrize(("path", "user"), [("/payments", "clerk"), ("/auth/token", None)])
def test_a_json_body_not_sent_as_json_is_415(api, world, path, user, content_type):
    headers = {"Authorization": f"Bearer {api.token(user)}"} if user else {}
    body = json.dumps(payment_body(world) if user else {"username": "clerk", "password": "correct-horse-battery"})
    before = row_counts()

    response = api.client.post(f"/api/v1{path}", data=body, content_type=content_type, headers=headers)

    assert_error(response, 415, "malformed_request")
    assert row_counts() == before


def test_a_json_suffix_media_type_is_json(api, world):
    response = api.client.post("/api/v1/auth/token", data='{"username": "clerk", "password": "correct-horse-battery"}',
                               content_type="application/merged-patch+json; charset=utf-8")
    assert response.status_code == 200

"""Batch entry of payments (SPEC §9): JSON rows or a CSV/XLSX upload, all or nothing, every bad row reported."""

from __future__ import annotations

import io
from typing import Any

import pytest
from conftest import Api, World
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from duesflow.extensions import db
from duesflow.models import Event, Payment
from duesflow.services.audit import verify_audit
from duesflow.timeutil import beijing_today

TODAY = beijing_today().isoformat()


def row(**extra: Any) -> dict[str, Any]:
    return {"amount": "1000.00", "collected_on": TODAY, "method": "cash", "regular_dues_paid": True, **extra}


def payment_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Payment))


def test_json_batch_records_every_row_with_its_event(api: Api, world: World) -> None:
    zhang, li = world.members["zhang"], world.members["li"]
    rows = [row(member_id=zhang.id, amount="1000.50"), row(id_number="220302199001051231", amount=2000),
            row(member_id=li.id, method="wechat", note="第三行")]
    response = api.post("/payments/batch", "clerk", json={"rows": rows})
    assert response.status_code == 201, response.json
    assert response.json["count"] == 3 and response.json["total"] == "4000.50"
    ids = response.json["payment_ids"]
    assert ids == sorted(ids) and len(ids) == 3
    payments = [db.session.get(Payment, payment_id) for payment_id in ids]
    assert [p.member_id for p in payments] == [zhang.id, zhang.id, li.id]
    assert [str(p.amount) for p in payments] == ["1000.50", "2000.00", "1000.00"]
    assert all(p.state == "recorded" and p.holder_org_id == world.orgs["beimen"].id for p in payments)
    detail = api.get(f"/payments/{ids[2]}", "clerk").json
    assert [e["action"] for e in detail["events"]] == ["record"] and detail["note"] == "第三行"
    assert verify_audit() is None


def test_every_bad_row_is_reported_and_nothing_is_recorded(api: Api, world: World) -> None:
    outsider = world.members["zhou"]  # a member of 解放, not of the clerk's 北门
    rows = [row(member_id=world.members["zhang"].id),
            row(member_id=outsider.id, amount="999.99"),
            row(id_number="220302199001051231", regular_dues_paid=False, collected_on="2999-01-01"),
            row(member_id=world.members["li"].id, amount="1,000", collected_on="2999-01-01"),
            row(amount="1000.00"),
            "not an object"]
    before = payment_count()
    response = api.post("/payments/batch", "clerk", json={"rows": rows})
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "validation_error"
    bad = error["fields"]["rows"]
    assert set(bad) == {"2", "3", "4", "5", "6"}
    assert set(bad["2"]) == {"member_id", "amount"}
    assert set(bad["3"]) == {"regular_dues_paid", "collected_on"}
    assert set(bad["4"]) == {"amount", "collected_on"}  # a malformed field does not hide a broken rule
    assert set(bad["5"]) == {"member_id"}
    assert payment_count() == before


def test_a_member_of_another_org_named_by_resident_id_is_not_found(api: Api, world: World) -> None:
    response = api.post("/payments/batch", "clerk_jiefang", json={"rows": [row(id_number="220302199001051231")]})
    assert response.status_code == 422
    assert "id_number" in response.json["error"]["fields"]["rows"]["1"]


@pytest.mark.parametrize("user, status, code", [("tiedong", 403, "forbidden"), ("central", 403, "forbidden"),
                                                ("member", 403, "direct_payment_refused"),
                                                ("admin", 403, "forbidden")])
def test_only_a_clerk_enters_a_batch(api: Api, world: World, user: str, status: int, code: str) -> None:
    response = api.post("/payments/batch", user, json={"rows": [row(member_id=world.members["zhang"].id)]})
    assert (response.status_code, response.json["error"]["code"]) == (status, code)


def test_more_rows_than_allowed_are_refused(app: Any, api: Api, world: World) -> None:
    app.config["MAX_BATCH_ROWS"] = 3
    response = api.post("/payments/batch", "clerk", json={"rows": [row(member_id=world.members["zhang"].id)] * 4})
    assert response.status_code == 422 and "rows" in response.json["error"]["fields"]
    assert payment_count() == 0


def test_the_body_may_exceed_the_global_limit_up_to_eight_mebibytes(app: Any, api: Api, world: World) -> None:
    padded = [row(member_id=world.members["zhang"].id, note="备" * 400)] * 1500  # about 2 MiB: over the 1 MiB
    response = api.post("/payments/batch", "clerk", json={"rows": padded})
    assert response.status_code == 201, response.json["error"]["message"]
    too_big = b'{"rows": [' + b" " * (9 * 1024 * 1024) + b"]}"
    response = api.post("/payments/batch", "clerk", data=too_big, content_type="application/json")
    assert response.status_code == 413 and response.json["error"]["code"] == "malformed_request"


def test_the_batch_is_idempotent(api: Api, world: World) -> None:
    body = {"rows": [row(member_id=world.members["zhang"].id), row(member_id=world.members["li"].id)]}
    first = api.post("/payments/batch", "clerk", json=body, headers={"Idempotency-Key": "day-1"})
    again = api.post("/payments/batch", "clerk", json=body, headers={"Idempotency-Key": "day-1"})
    assert first.status_code == again.status_code == 201 and first.json == again.json
    assert payment_count() == 2
    other = api.post("/payments/batch", "clerk", json={"rows": body["rows"][:1]}, headers={"Idempotency-Key": "day-1"})
    assert other.status_code == 409 and other.json["error"]["code"] == "idempotency_conflict"


def xlsx(lines: list[list[Any]]) -> bytes:
    book = Workbook()
    for line in lines:
        book.active.append(line)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def upload(api: Api, content: bytes, filename: str, **headers: str):  # noqa: ANN201
    return api.post("/payments/batch", "clerk", data={"file": (io.BytesIO(content), filename)},
                    content_type="multipart/form-data", headers=headers)


def test_an_xlsx_with_chinese_headers_is_recorded(api: Api, world: World) -> None:
    content = xlsx([["党员编号", "身份证号码", "金额", "代收日期", "交纳方式", "已按规定交纳党费", "备注"],
                    [world.members["li"].id, None, 1500.5, beijing_today(), "微信", "是", None],
                    [None, "220302199001051231", "3000", TODAY, "现金", "是", "A<B &amp;"]])
    response = upload(api, content, "收缴.xlsx")
    assert response.status_code == 201, response.json
    assert response.json["count"] == 2 and response.json["total"] == "4500.50"
    notes = [db.session.get(Payment, i).note for i in response.json["payment_ids"]]
    assert notes == [None, "A<B &amp;"]


def test_a_csv_with_english_headers_reports_rows_by_their_spreadsheet_number(api: Api, world: World) -> None:
    text = ("member_id,amount,collected_on,method,regular_dues_paid\n"
            f"{world.members['zhang'].id},1000,{TODAY},cash,true\n"
            f"{world.members['li'].id},abc,{TODAY},飞鸽,maybe\n")
    response = upload(api, ("\ufeff" + text).encode(), "batch.csv")
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]["rows"]) == {"3"}
    assert set(response.json["error"]["fields"]["rows"]["3"]) == {"amount", "method", "regular_dues_paid"}
    assert payment_count() == 0


@pytest.mark.parametrize("content, filename", [(b"not a workbook", "x.xlsx"), (b"a,b\n1,2\n", "x.csv"),
                                               (b"\xff\xfe", "x.csv"), (b"member_id", "x.txt")])
def test_an_unreadable_file_is_refused_with_a_message(api: Api, world: World, content: bytes, filename: str) -> None:
    response = upload(api, content, filename)
    assert response.status_code == 422 and response.json["error"]["fields"]["file"]


def test_the_template_has_the_chinese_headers(app: Any) -> None:
    from duesflow.services.payment_batch import template_xlsx

    sheet = load_workbook(io.BytesIO(template_xlsx())).active
    headers = [cell.value for cell in sheet[1]]
    assert headers == ["党员编号", "身份证号码", "金额", "代收日期", "交纳方式", "已按规定交纳党费", "备注"]


def test_the_events_join_the_audit_chain(api: Api, world: World) -> None:
    api.record(world.members["zhang"])
    response = api.post("/payments/batch", "clerk", json={"rows": [row(member_id=world.members["li"].id)] * 5})
    assert response.status_code == 201
    api.record(world.members["zhang"])
    assert db.session.scalar(select(func.count()).select_from(Event)) == 7
    assert verify_audit() is None


# ---- the clerk's entry page ----------------------------------------------------------------------------


def test_the_clerk_uploads_a_batch_on_the_entry_page_and_sees_every_bad_row(app: Any, world: World) -> None:
    from test_transfers import login

    page = login(app, "clerk")
    shown = page.get("/payments/new").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in shown and "/payments/import-template.xlsx" in shown
    template = page.get("/payments/import-template.xlsx")
    assert template.status_code == 200 and template.mimetype.endswith("spreadsheetml.sheet")
    bad = xlsx([["党员编号", "金额", "代收日期", "交纳方式", "已按规定交纳党费"],
                [world.members["zhang"].id, "1000", TODAY, "现金", "是"],
                [world.members["zhou"].id, "900", TODAY, "现金", "否"]])

    refused = page.client.post("/payments/import",
                               data={"csrf_token": page.csrf(), "file": (io.BytesIO(bad), "a.xlsx")},
                               content_type="multipart/form-data")

    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert 'id="batch-errors"' in html and "党员编号" in html and "已按规定交纳党费" in html and ">3<" in html
    assert payment_count() == 0
    good = xlsx([["党员编号", "金额", "代收日期", "交纳方式", "已按规定交纳党费"],
                 [world.members["zhang"].id, "1000", TODAY, "现金", "是"]])
    accepted = page.client.post("/payments/import",
                                data={"csrf_token": page.csrf(), "file": (io.BytesIO(good), "a.xlsx")},
                                content_type="multipart/form-data")
    assert accepted.status_code == 302 and payment_count() == 1


def test_import_payments_records_a_file_from_the_command_line(runner: Any, world: World, tmp_path: Any) -> None:
    good = tmp_path / "good.csv"
    good.write_text(f"身份证号码,金额,代收日期,交纳方式,已按规定交纳党费\n220302199001051231,1000,{TODAY},现金,是\n",
                    encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text(f"党员编号,金额,代收日期,交纳方式,已按规定交纳党费\n{world.members['li'].id},500,{TODAY},现金,是\n",
                   encoding="utf-8")

    refused = runner.invoke(args=["import-payments", str(bad), "--clerk", "clerk"])
    assert refused.exit_code == 1 and "第2行（金额）" in refused.output and payment_count() == 0
    done = runner.invoke(args=["import-payments", str(good), "--clerk", "clerk"])
    assert done.exit_code == 0, done.output
    assert "已登记 1 笔款项" in done.output and payment_count() == 1
    assert runner.invoke(args=["import-payments", str(good), "--clerk", "tiedong"]).exit_code == 1


def test_the_openapi_document_describes_batch_entry_and_transfer_confirmation(api: Api) -> None:
    paths = api.get("/openapi.json").json["paths"]
    batch = paths["/api/v1/payments/batch"]["post"]
    assert set(batch["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert {"201", "403", "409", "413", "422"} <= set(batch["responses"])
    confirm = paths["/api/v1/transfers/{transfer_id}/confirm"]["post"]
    assert {"200", "403", "404", "409"} <= set(confirm["responses"])


WELL_FORMED = [
    row(member_id=7), row(member_id=2**31 - 1, note="  收据寄单位  "), row(member_id=1, note=None),
    row(member_id=3, note=""), {**row(member_id=5), "amount": 1000}, {**row(member_id=5), "amount": "1000.5"},
    row(id_number=" 220302199001051231 "), row(id_number="220302199001051231", note="x" * 500),
]
REFUSED = [
    "not a row", row(), row(member_id=1, id_number="220302199001051231"), row(member_id=None),
    row(member_id=True), row(member_id=0), row(member_id=2**31), row(member_id="7"), row(member_id=1, extra=1),
    {**row(member_id=1), "amount": "abc"}, {**row(member_id=1), "amount": None}, {**row(member_id=1), "amount": True},
    {**row(member_id=1), "amount": "1000.001"}, {**row(member_id=1), "collected_on": "2026-13-01"},
    {**row(member_id=1), "collected_on": 20261201}, {**row(member_id=1), "method": "cash "},
    {**row(member_id=1), "method": "现金"}, {**row(member_id=1), "regular_dues_paid": "true"},
    {**row(member_id=1), "regular_dues_paid": 1}, row(member_id=1, note="x" * 501), row(member_id=1, note="a\x00"),
    row(member_id=1, note=5), row(id_number="220302199001051232"), row(id_number=""), row(id_number=None),
    row(id_number=220302199001051231), {key: value for key, value in row(member_id=1).items() if key != "method"},
]


@pytest.mark.parametrize("body", WELL_FORMED)
def test_the_fast_check_of_a_well_formed_row_loads_what_the_schema_loads(app: Any, body: dict[str, Any]) -> None:
    from duesflow.schemas import PaymentBatchRow, shared, well_formed_batch_row

    expected = shared(PaymentBatchRow).load(body)
    assert well_formed_batch_row(body) == expected
    assert {name: type(value) for name, value in well_formed_batch_row(body).items()} == {
        name: type(value) for name, value in expected.items()}


@pytest.mark.parametrize("body", REFUSED)
def test_the_fast_check_leaves_every_other_row_to_the_schema(app: Any, body: Any) -> None:
    from marshmallow import ValidationError

    from duesflow.schemas import PaymentBatchRow, shared, well_formed_batch_row

    assert well_formed_batch_row(body) is None
    if isinstance(body, dict) and body.get("id_number") != "220302199001051231":
        with pytest.raises(ValidationError):
            shared(PaymentBatchRow).load(body)

"""The summary report (SPEC §9): grouped by channel, org, state or month over the caller's subtree, summed in SQL
without floats, as JSON, CSV and XLSX; the dashboard page with its server-drawn chart."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pytest
from conftest import advance
from openpyxl import load_workbook
from sqlalchemy import event
from test_web_pages import Page

from duesflow.extensions import db

YEAR = 2024


def summary(api, user: str, **query: str):  # noqa: ANN201
    return api.get("/reports/summary", user, query_string={"year": str(YEAR), **query})


def record(api, world, member: str, amount: str, collected_on: str = f"{YEAR}-06-15", clerk: str = "clerk") -> int:
    return api.record(world.members[member], amount, as_user=clerk, collected_on=collected_on)["id"]


@pytest.fixture
def collected(api, world) -> dict[str, int]:
    """Payments of 北门 and 解放 (吉林 channel) and 东城 (北京 channel) in YEAR, and some just outside it."""
    ids = {
        "zhang_jan": record(api, world, "zhang", "1000.10", f"{YEAR}-01-01"),
        "li_jun": record(api, world, "li", "2000.20"),
        "zhou_dec": record(api, world, "zhou", "1500.05", f"{YEAR}-12-31", clerk="clerk_jiefang"),
        "wang_mar": record(api, world, "wang", "3000.33", f"{YEAR}-03-08", clerk="clerk_dongcheng"),
        "zhang_before": record(api, world, "zhang", "9000.00", f"{YEAR - 1}-12-31"),
        "zhang_after": record(api, world, "zhang", "9000.00", f"{YEAR + 1}-01-01"),
    }
    advance(api, ids["li_jun"], 2)  # in review at 四平
    advance(api, ids["zhang_jan"], 1)
    api.act(ids["zhang_jan"], "reject", "tiedong", reason="材料不全")
    return ids


def rows(response) -> list[tuple[str, str, int, str]]:  # noqa: ANN001
    assert response.status_code == 200, response.json
    return [(row["key"], row["name"], row["count"], row["amount"]) for row in response.json["rows"]]


def test_central_sees_every_channel_with_counts_and_two_decimal_amounts(api, world, collected):
    response = summary(api, "central", group_by="channel")

    assert rows(response) == [
        (str(world.orgs["jilin"].id), "中共吉林省委组织部", 3, "4500.35"),
        (str(world.orgs["beijing"].id), "中共北京市委组织部", 1, "3000.33"),
    ]
    assert response.json["total"] == {"count": 4, "amount": "7500.68"}


@pytest.mark.parametrize(("user", "expected"), [
    ("central", [("jilin", 3, "4500.35"), ("beijing", 1, "3000.33")]),
    ("jilin", [("siping", 3, "4500.35")]),
    ("siping", [("tiedong", 3, "4500.35")]),
    ("tiedong", [("beimen", 2, "3000.30"), ("jiefang", 1, "1500.05")]),
    ("clerk", [("beimen", 2, "3000.30")]),
    ("clerk_dongcheng", [("dongcheng", 1, "3000.33")]),
])
def test_org_groups_by_the_callers_direct_sub_orgs_and_a_clerk_by_its_own_org(api, world, collected, user, expected):
    found = rows(summary(api, user, group_by="org"))

    assert found == [(str(world.orgs[org].id), world.orgs[org].name, count, amount)
                     for org, count, amount in expected]


@pytest.mark.parametrize(("user", "count", "amount"), [
    ("tiedong", 3, "4500.35"), ("clerk_jiefang", 1, "1500.05"), ("beijing", 1, "3000.33"),
])
def test_a_reviewer_or_clerk_sees_only_its_subtree_even_by_channel(api, world, collected, user, count, amount):
    response = summary(api, user, group_by="channel")

    assert len(response.json["rows"]) == 1
    assert response.json["total"] == {"count": count, "amount": amount}


def test_by_state_in_workflow_order_with_the_states_names(api, world, collected):
    found = rows(summary(api, "central", group_by="state"))

    assert found == [
        ("recorded", "已登记，未上报", 2, "4500.38"),
        ("in_review", "逐级审核中", 1, "2000.20"),
        ("rejected", "未予接收", 1, "1000.10"),
    ]


def test_by_month_keys_are_year_month_and_the_years_first_and_last_days_count(api, world, collected):
    found = rows(summary(api, "central", group_by="month"))

    assert found == [
        (f"{YEAR}-01", f"{YEAR}年1月", 1, "1000.10"),
        (f"{YEAR}-03", f"{YEAR}年3月", 1, "3000.33"),
        (f"{YEAR}-06", f"{YEAR}年6月", 1, "2000.20"),
        (f"{YEAR}-12", f"{YEAR}年12月", 1, "1500.05"),
    ]


def test_state_filters_the_payments_counted(api, world, collected):
    response = summary(api, "central", group_by="channel", state="recorded")

    assert rows(response) == [(str(world.orgs["jilin"].id), "中共吉林省委组织部", 1, "1500.05"),
                              (str(world.orgs["beijing"].id), "中共北京市委组织部", 1, "3000.33")]
    assert response.json["total"] == {"count": 2, "amount": "4500.38"}


def test_a_year_without_payments_has_no_rows_and_a_zero_total(api, world, collected):
    response = api.get("/reports/summary", "central", query_string={"year": "2010", "group_by": "state"})

    assert response.status_code == 200
    assert response.json == {"rows": [], "total": {"count": 0, "amount": "0.00"}}


def test_amounts_are_summed_exactly_to_the_fen(api, world):
    for _ in range(10):
        record(api, world, "zhang", "1000.10")
    record(api, world, "zhang", "9999999.99")
    record(api, world, "zhang", "9999999.99")

    response = summary(api, "clerk", group_by="org")

    # summed as integer fen in SQL: SQLite keeps these amounts as floating point, the sum must not drift
    assert response.json["total"] == {"count": 12, "amount": "20010000.98"}
    assert sum(Decimal(row["amount"]) for row in response.json["rows"]) == Decimal("20010000.98")


def test_the_summary_is_one_grouped_sql_statement_whatever_the_number_of_payments(app, api, world, collected):
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args):  # noqa: ANN001, ANN202
        statements.append(statement)

    api.token("central")
    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        response = summary(api, "central", group_by="channel")
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)

    assert response.status_code == 200
    reports = [s for s in statements if "GROUP BY" in s.upper() and "payments" in s]
    assert len(reports) == 1
    assert "sum(" in reports[0].lower()


@pytest.mark.parametrize("user", ["admin", "member"])
def test_admins_and_members_may_not_read_reports(api, world, user):
    response = summary(api, user, group_by="channel")

    assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"


def test_the_role_is_checked_before_the_query(api, world):
    response = api.get("/reports/summary", "admin", query_string={"year": "soon"})

    assert response.status_code == 403


def test_without_a_token_the_report_is_401(api, world):
    assert api.get("/reports/summary", query_string={"year": "2024", "group_by": "org"}).status_code == 401


@pytest.mark.parametrize(("query", "field"), [
    ({"year": "abc", "group_by": "org"}, "year"), ({"year": "20x6", "group_by": "org"}, "year"),
    ({"year": "", "group_by": "org"}, "year"), ({"year": " 2024", "group_by": "org"}, "year"),
    ({"year": "2_024", "group_by": "org"}, "year"), ({"year": "0999", "group_by": "org"}, "year"),
    ({"year": "-2024", "group_by": "org"}, "year"), ({"group_by": "org"}, "year"),
    ({"year": "2024", "group_by": "city"}, "group_by"), ({"year": "2024"}, "group_by"),
    ({"year": "2024", "group_by": "org", "state": "paid"}, "state"),
    ({"year": "2024", "group_by": "org", "format": "pdf"}, "format"),
])
def test_bad_query_parameters_are_422_naming_the_field(api, world, query, field):
    response = api.get("/reports/summary", "central", query_string=query)

    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert field in response.json["error"]["fields"]


# ---- CSV and XLSX ---------------------------------------------------------------------------------------


def test_csv_is_utf8_with_bom_a_chinese_header_the_rows_and_the_total(api, world, collected):
    response = summary(api, "central", group_by="channel", format="csv")

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == \
        f'attachment; filename="duesflow-summary-{YEAR}-channel.csv"'
    assert response.data.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert table == [
        ["代码", "转交渠道", "笔数", "金额（元）"],
        [str(world.orgs["jilin"].id), "中共吉林省委组织部", "3", "4500.35"],
        [str(world.orgs["beijing"].id), "中共北京市委组织部", "1", "3000.33"],
        ["", "合计", "4", "7500.68"],
    ]


def test_a_name_that_looks_like_a_formula_is_quoted_in_the_csv(api, world):
    from conftest import make_member, make_org, make_user

    from duesflow.workflow import OrgKind

    sneaky = make_org("=HYPERLINK(\"x\")党委", OrgKind.GRASSROOTS, world.orgs["beijing"])
    make_user("clerk_sneaky", "clerk", sneaky)
    member = make_member(sneaky, "赵六")
    db.session.commit()
    api.record(member, as_user="clerk_sneaky", collected_on=f"{YEAR}-05-05")

    response = summary(api, "beijing", group_by="org", format="csv")

    assert "'=HYPERLINK" in response.data.decode("utf-8-sig")


def test_xlsx_holds_the_same_summary_with_numeric_amounts(api, world, collected):
    response = summary(api, "tiedong", group_by="org", state="recorded", format="xlsx")

    assert response.status_code == 200
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert f"duesflow-summary-{YEAR}-org-recorded.xlsx" in response.headers["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(response.data)).active
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0][0] == f"{YEAR}年 自愿多交党费汇总（按下级组织，状态：已登记，未上报）"
    assert values[1] == ["代码", "下级组织", "笔数", "金额（元）"]
    assert values[2][:3] == [str(world.orgs["jiefang"].id), "解放街道党工委", 1]
    assert Decimal(str(values[2][3])) == Decimal("1500.05")
    assert values[3][1:3] == ["合计", 1]
    assert sheet.cell(row=3, column=4).number_format == "#,##0.00"


def test_the_openapi_document_lists_the_download_media_types(client):
    operation = client.get("/api/v1/openapi.json").json["paths"]["/api/v1/reports/summary"]["get"]

    content = operation["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/csv",
                            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
    assert {"401", "403", "422"} <= set(operation["responses"])


# ---- the dashboard page ---------------------------------------------------------------------------------


def login(app, username: str) -> Page:
    page = Page(app.test_client())
    assert page.login(username).status_code == 302
    return page


@pytest.mark.parametrize("user", ["clerk", "tiedong", "central"])
def test_the_dashboard_is_in_the_navigation_of_clerks_reviewers_and_central(app, world, user):
    page = login(app, user).get("/").get_data(as_text=True)

    assert '<a href="/reports"' in page and "统计报表" in page


def test_the_dashboard_draws_the_summary_as_an_inline_svg_chart_without_script(app, world, collected):
    response = login(app, "central").get("/reports", query_string={"year": str(YEAR), "group_by": "channel"})

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    svg = re.search(r"<svg.*?</svg>", page, re.S).group(0)
    assert svg.count("<rect") == 2
    assert "中共吉林省委组织部" in svg and "¥4,500.35" in svg
    widths = [int(width) for width in re.findall(r'<rect [^>]*width="(\d+)"', svg)]
    assert widths[0] > widths[1] > 0  # 4500.35 against 3000.33
    assert "<script" not in page and "style=" not in page
    assert "¥7,500.68" in page  # the total of the table
    assert f"/reports/summary.csv?year={YEAR}&amp;group_by=channel" in page
    assert f"/reports/summary.xlsx?year={YEAR}&amp;group_by=channel" in page


def test_the_dashboard_defaults_to_this_year_by_month(app, world):
    from duesflow.timeutil import beijing_today

    page = login(app, "clerk").get("/reports").get_data(as_text=True)

    assert f"{beijing_today().year}年 自愿多交党费汇总（按月份）" in page
    assert "这一年还没有代收的款项" in page


def test_the_dashboard_shows_a_bad_choice_next_to_its_selector(app, world):
    response = login(app, "tiedong").get("/reports", query_string={"year": "20x6", "group_by": "org"})

    assert response.status_code == 422
    assert "年份须为四位数字" in response.get_data(as_text=True)


def test_the_dashboard_downloads_use_the_session(app, world, collected):
    client = login(app, "clerk")

    csv_file = client.get("/reports/summary.csv", query_string={"year": str(YEAR), "group_by": "month"})
    xlsx_file = client.get("/reports/summary.xlsx", query_string={"year": str(YEAR), "group_by": "month"})

    assert csv_file.status_code == 200 and csv_file.data.startswith(b"\xef\xbb\xbf")
    assert "attachment" in csv_file.headers["Content-Disposition"]
    assert xlsx_file.status_code == 200 and xlsx_file.data.startswith(b"PK")


@pytest.mark.parametrize("user", ["admin", "member"])
def test_admins_and_members_cannot_open_the_dashboard(app, world, user):
    assert login(app, user).get("/reports").status_code == 403
    assert login(app, user).get("/reports/summary.csv?year=2024&group_by=org").status_code == 403

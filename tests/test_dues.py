"""The regular dues calculator (SPEC §9) under the 2008 regulation (中组发〔2008〕3号): every bracket edge, half-up
rounding to the fen, fixed amounts, the API's roles and validation, and the helper on the payment entry page."""

from __future__ import annotations

from decimal import Decimal

import pytest
from test_web_pages import Page

from duesflow.dues import DuesCategory, regular_dues

# (category, monthly income, rate, monthly dues, monthly dues max, article cited)
TABLE = [
    ("employed", "0", "0.005", "0.00", None, "第二条"),
    ("employed", "0.01", "0.005", "0.00", None, "第二条"),
    ("employed", "1234.50", "0.005", "6.17", None, "第二条"),  # 6.1725 → 6.17
    ("employed", "1235.00", "0.005", "6.18", None, "第二条"),  # 6.175 → 6.18 (half up)
    ("employed", "1001", "0.005", "5.01", None, "第二条"),  # 5.005 → 5.01
    ("employed", "3000.00", "0.005", "15.00", None, "第二条"),
    ("employed", "3000.01", "0.01", "30.00", None, "第二条"),  # 30.0001
    ("employed", "3333.33", "0.01", "33.33", None, "第二条"),
    ("employed", "4999.50", "0.01", "50.00", None, "第二条"),  # 49.995 → 50.00
    ("employed", "5000.00", "0.01", "50.00", None, "第二条"),
    ("employed", "5000.01", "0.015", "75.00", None, "第二条"),  # 75.00015
    ("employed", "6666.67", "0.015", "100.00", None, "第二条"),  # 100.00005
    ("employed", "10000.00", "0.015", "150.00", None, "第二条"),
    ("employed", "10000.01", "0.02", "200.00", None, "第二条"),  # 200.0002
    ("employed", "12345.67", "0.02", "246.91", None, "第二条"),  # 246.9134
    ("employed", "10000.25", "0.02", "200.01", None, "第二条"),  # 200.005 → 200.01
    ("retired", "0", "0.005", "0.00", None, "第五条"),
    ("retired", "3000.00", "0.005", "15.00", None, "第五条"),
    ("retired", "5000.00", "0.005", "25.00", None, "第五条"),
    ("retired", "5000.01", "0.01", "50.00", None, "第五条"),
    ("retired", "12000", "0.01", "120.00", None, "第五条"),
    ("farmer", None, None, "0.20", "1.00", "第六条"),
    ("student", None, None, "0.20", None, "第六条"),
    ("unemployed", None, None, "0.20", None, "第六条"),
    ("relief", None, None, "0.20", None, "第六条"),
    ("low_income", None, None, "0.20", None, "第六条"),
]


@pytest.mark.parametrize(("category", "income", "rate", "dues", "dues_max", "article"), TABLE)
def test_every_bracket_edge_and_fixed_amount(category, income, rate, dues, dues_max, article):
    result = regular_dues(DuesCategory(category), None if income is None else Decimal(income))

    assert result.rate == (None if rate is None else Decimal(rate))
    assert str(result.monthly_dues) == dues
    assert result.monthly_dues_max == (None if dues_max is None else Decimal(dues_max))
    assert "中组发〔2008〕3号" in result.rule and article in result.rule


@pytest.mark.parametrize(("category", "words"), [
    ("farmer", "农民党员每月交纳党费0.2元至1元"), ("student", "学生党员"), ("unemployed", "下岗失业"),
    ("relief", "依靠抚恤或救济生活"), ("low_income", "领取当地最低生活保障金"),
    ("retired", "离退休费总额或养老金总额"),
])
def test_the_rule_quotes_the_regulations_words_for_the_category(category, words):
    assert words in regular_dues(DuesCategory(category), Decimal("100")).rule


def test_an_income_is_required_for_employed_and_retired_members():
    with pytest.raises(ValueError):
        regular_dues(DuesCategory.EMPLOYED)


# ---- GET /api/v1/dues/regular ---------------------------------------------------------------------------


@pytest.mark.parametrize(("category", "income", "rate", "dues", "dues_max", "article"), TABLE)
def test_the_api_answers_the_table(api, world, category, income, rate, dues, dues_max, article):
    query = {"category": category} if income is None else {"category": category, "monthly_income": income}

    response = api.get("/dues/regular", "clerk", query_string=query)

    assert response.status_code == 200
    assert set(response.json) == {"rate", "monthly_dues", "monthly_dues_max", "rule"}
    assert response.json["rate"] == rate
    assert response.json["monthly_dues"] == dues
    assert response.json["monthly_dues_max"] == (None if dues_max is None else f"{Decimal(dues_max):.2f}")
    assert article in response.json["rule"]


def test_an_income_given_for_a_fixed_category_is_ignored(api, world):
    response = api.get("/dues/regular", "clerk", query_string={"category": "student", "monthly_income": "8000"})

    assert response.json["monthly_dues"] == "0.20" and response.json["rate"] is None


@pytest.mark.parametrize("user", ["clerk", "tiedong", "jilin", "central"])
def test_clerks_reviewers_and_central_may_use_the_calculator(api, world, user):
    response = api.get("/dues/regular", user, query_string={"category": "employed", "monthly_income": "8000"})

    assert response.status_code == 200 and response.json["monthly_dues"] == "120.00"


@pytest.mark.parametrize("user", ["admin", "member"])
def test_admins_and_members_may_not(api, world, user):
    response = api.get("/dues/regular", user, query_string={"category": "employed", "monthly_income": "8000"})

    assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"


def test_without_a_token_it_is_401(api, world):
    assert api.get("/dues/regular", query_string={"category": "student"}).status_code == 401


@pytest.mark.parametrize(("query", "field"), [
    ({"category": "employed"}, "monthly_income"),
    ({"category": "retired", "monthly_income": ""}, "monthly_income"),
    ({"category": "employed", "monthly_income": "-1"}, "monthly_income"),
    ({"category": "employed", "monthly_income": "1e3"}, "monthly_income"),
    ({"category": "employed", "monthly_income": "1,000"}, "monthly_income"),
    ({"category": "employed", "monthly_income": "1000.001"}, "monthly_income"),
    ({"category": "employed", "monthly_income": "01000"}, "monthly_income"),
    ({"category": "employed", "monthly_income": "NaN"}, "monthly_income"),
    ({"category": "employed", "monthly_income": "1000000000.00"}, "monthly_income"),
    ({"category": "soldier", "monthly_income": "1000"}, "category"),
    ({"monthly_income": "1000"}, "category"),
])
def test_bad_queries_are_422_naming_the_field(api, world, query, field):
    response = api.get("/dues/regular", "clerk", query_string=query)

    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert field in response.json["error"]["fields"]


def test_the_largest_income_accepted_is_computed_exactly(api, world):
    response = api.get("/dues/regular", "clerk",
                       query_string={"category": "employed", "monthly_income": "999999999.99"})

    assert response.json["monthly_dues"] == "20000000.00"  # 19999999.9998


# ---- the helper on the payment entry page ----------------------------------------------------------------


def login(app, username: str) -> Page:
    page = Page(app.test_client())
    assert page.login(username).status_code == 302
    return page


def test_the_payment_entry_page_offers_the_helper_as_a_plain_get_form(app, world):
    page = login(app, "clerk").get("/payments/new").get_data(as_text=True)

    assert "常规党费测算" in page
    assert 'method="get" action="/payments/new#regular-dues"' in page
    assert 'name="category"' in page and 'name="monthly_income"' in page
    assert "<script" not in page


def test_the_helper_shows_the_monthly_dues_and_keeps_the_chosen_member(app, world):
    member_id = world.members["zhang"].id
    response = login(app, "clerk").get("/payments/new", query_string={
        "member_id": member_id, "category": "employed", "monthly_income": "3333.33"})

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "每月应交党费：<strong>¥33.33</strong>" in page
    assert "月收入的 1%" in page and "第二条" in page
    assert f'<option value="{member_id}" selected>' in page
    assert '<option value="employed" selected>' in page


def test_the_helper_shows_a_farmers_range(app, world):
    page = login(app, "clerk").get("/payments/new", query_string={"category": "farmer"}).get_data(as_text=True)

    assert "¥0.20 至 ¥1.00" in page


def test_the_helper_explains_a_missing_income_next_to_the_field(app, world):
    response = login(app, "clerk").get("/payments/new", query_string={"category": "retired"})

    assert response.status_code == 422
    assert "离退休党员须填写离退休费或养老金" in response.get_data(as_text=True)

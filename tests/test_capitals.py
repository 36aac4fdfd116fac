"""Amounts in Chinese capitals (正确填写票据和结算凭证的基本规定) and in figures."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from duesflow.receipts.capitals import format_yuan, parse_capitals, to_capitals

CAPITALS = [
    # the rules' own examples
    ("1409.50", "壹仟肆佰零玖元伍角"),
    ("6007.14", "陆仟零柒元壹角肆分"),
    ("1680.32", "壹仟陆佰捌拾元叁角贰分"),
    ("107000.53", "壹拾万零柒仟元伍角叁分"),
    ("325.04", "叁佰贰拾伍元零肆分"),
    # whole amounts take 整 after 元
    ("1000", "壹仟元整"),
    ("1000.00", "壹仟元整"),
    ("1001", "壹仟零壹元整"),
    ("1010", "壹仟零壹拾元整"),
    ("1100", "壹仟壹佰元整"),
    ("1234", "壹仟贰佰叁拾肆元整"),
    ("2000", "贰仟元整"),
    ("9999", "玖仟玖佰玖拾玖元整"),
    # 拾 always has its digit
    ("10", "壹拾元整"),
    ("11", "壹拾壹元整"),
    ("110", "壹佰壹拾元整"),
    ("100000", "壹拾万元整"),
    ("1000000000", "壹拾亿元整"),
    # fractions: 角 alone without 整, 零 for a zero 角 before 分, no 零 before 角
    ("0.01", "壹分"),
    ("0.10", "壹角"),
    ("0.11", "壹角壹分"),
    ("1000.05", "壹仟元零伍分"),
    ("1000.50", "壹仟元伍角"),
    ("1000.55", "壹仟元伍角伍分"),
    ("1000.99", "壹仟元玖角玖分"),
    ("12345.67", "壹万贰仟叁佰肆拾伍元陆角柒分"),
    # zeros in every position of a section, one 零 for a run
    ("10001", "壹万零壹元整"),
    ("10010", "壹万零壹拾元整"),
    ("10100", "壹万零壹佰元整"),
    ("11000", "壹万壹仟元整"),
    ("100100", "壹拾万零壹佰元整"),
    ("101000", "壹拾万零壹仟元整"),
    ("1000000", "壹佰万元整"),
    ("1001000", "壹佰万零壹仟元整"),
    # the 万 section boundary and 10 000 000.00, the default maximum
    ("10000", "壹万元整"),
    ("10000000.00", "壹仟万元整"),
    ("10000001", "壹仟万零壹元整"),
    ("10001000", "壹仟万零壹仟元整"),
    ("10010000", "壹仟零壹万元整"),
    ("10100000", "壹仟零壹拾万元整"),
    ("11000000", "壹仟壹佰万元整"),
    ("9999999.99", "玖佰玖拾玖万玖仟玖佰玖拾玖元玖角玖分"),
    # the 亿 section boundary; an all-zero 万 section loses its unit
    ("100000000", "壹亿元整"),
    ("100000001", "壹亿零壹元整"),
    ("100010000", "壹亿零壹万元整"),
    ("100100000", "壹亿零壹拾万元整"),
    ("101000000", "壹亿零壹佰万元整"),
    ("110000000", "壹亿壹仟万元整"),
    ("110000001.01", "壹亿壹仟万零壹元零壹分"),
    ("100000000.10", "壹亿元壹角"),
    ("200000000000", "贰仟亿元整"),
    ("999999999999.99", "玖仟玖佰玖拾玖亿玖仟玖佰玖拾玖万玖仟玖佰玖拾玖元玖角玖分"),
]


@pytest.mark.parametrize(("figures", "capitals"), CAPITALS)
def test_amount_is_written_in_capitals_by_the_rules(figures: str, capitals: str) -> None:
    assert to_capitals(Decimal(figures)) == capitals


@pytest.mark.parametrize(("figures", "capitals"), CAPITALS)
def test_capitals_read_back_to_the_amount(figures: str, capitals: str) -> None:
    assert parse_capitals("人民币" + capitals) == Decimal(figures)


@pytest.mark.parametrize(
    ("text", "figures"),
    [
        ("人民币壹仟元正", "1000"),
        ("壹仟元伍角整", "1000.50"),
        ("壹拾万柒仟元零伍角叁分", "107000.53"),
        ("壹仟陆佰捌拾元零叁角贰分", "1680.32"),
    ],
)
def test_parse_accepts_the_alternative_forms_the_rules_allow(text: str, figures: str) -> None:
    assert parse_capitals(text) == Decimal(figures)


@pytest.mark.parametrize(
    "text", ["", "人民币", "元整", "壹仟", "壹壹元整", "拾元整", "壹佰壹仟元整", "壹万壹亿元整", "壹仟元伍"]
)
def test_parse_refuses_text_that_is_not_an_amount(text: str) -> None:
    with pytest.raises(ValueError):
        parse_capitals(text)


@pytest.mark.parametrize(
    "amount", ["-0.01", "-1000", "1000.001", "0.005", "1000000000000", "NaN", "Infinity"]
)
def test_capitals_refuse_negative_overlong_or_unbounded_amounts(amount: str) -> None:
    with pytest.raises(ValueError):
        to_capitals(Decimal(amount))


def test_capitals_refuse_float() -> None:
    with pytest.raises(TypeError):
        to_capitals(1000.5)  # type: ignore[arg-type]


def test_zero_is_zero_yuan() -> None:
    assert to_capitals(Decimal("0")) == "零元整"


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999999999999.99"), places=2))
def test_parse_capitals_inverts_to_capitals(amount: Decimal) -> None:
    assert parse_capitals(to_capitals(amount)) == amount


@pytest.mark.parametrize(
    ("amount", "figures"),
    [
        ("1000", "¥1,000.00"),
        ("1000.5", "¥1,000.50"),
        ("12345.67", "¥12,345.67"),
        ("999.99", "¥999.99"),
        ("0.01", "¥0.01"),
        ("10000000.00", "¥10,000,000.00"),
        ("1E+3", "¥1,000.00"),
        ("999999999999.99", "¥999,999,999,999.99"),
        ("12345678901234567.89", "¥12,345,678,901,234,567.89"),
    ],
)
def test_format_yuan_has_two_decimals_and_thousands_separators(amount: str, figures: str) -> None:
    assert format_yuan(Decimal(amount)) == figures


@pytest.mark.parametrize("amount", ["1000.001", "-5", "NaN"])
def test_format_yuan_refuses_what_is_not_an_amount(amount: str) -> None:
    with pytest.raises(ValueError):
        format_yuan(Decimal(amount))

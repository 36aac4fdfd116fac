"""Regular monthly party dues under the 2008 regulation, so a clerk can check that a member paid them at the
prescribed ratio or standard before accepting extra dues. Pure: no Flask, no database, never a float.

Source: 《关于中国共产党党费收缴、使用和管理的规定》(中组发〔2008〕3号), in force since 1 April 2008:
article 2 (employed members, by after-tax monthly wage), article 5 (retirees, by pension), article 6 (farmers;
students, the unemployed, members living on relief or on the local minimum living allowance).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from .money import CENT

REGULATION = "《关于中国共产党党费收缴、使用和管理的规定》（中组发〔2008〕3号）"


class DuesCategory(StrEnum):
    EMPLOYED = "employed"  # 在职，按月领取工资
    RETIRED = "retired"  # 离退休干部、职工
    FARMER = "farmer"  # 农民党员
    STUDENT = "student"  # 学生党员
    UNEMPLOYED = "unemployed"  # 下岗失业的党员
    RELIEF = "relief"  # 依靠抚恤或救济生活的党员
    LOW_INCOME = "low_income"  # 领取当地最低生活保障金的党员


CATEGORY_NAMES: dict[DuesCategory, str] = {
    DuesCategory.EMPLOYED: "在职党员（按税后月工资收入）",
    DuesCategory.RETIRED: "离退休党员（按离退休费或养老金）",
    DuesCategory.FARMER: "农民党员",
    DuesCategory.STUDENT: "学生党员",
    DuesCategory.UNEMPLOYED: "下岗失业的党员",
    DuesCategory.RELIEF: "依靠抚恤或救济生活的党员",
    DuesCategory.LOW_INCOME: "领取当地最低生活保障金的党员",
}

# Categories whose dues are a share of a monthly income, which must then be given.
INCOME_CATEGORIES = frozenset({DuesCategory.EMPLOYED, DuesCategory.RETIRED})


@dataclass(frozen=True)
class Bracket:
    """Incomes up to ``upper`` (inclusive; None: no limit) pay ``rate`` of the whole income."""

    upper: Decimal | None
    rate: Decimal
    rule: str


# Article 2: 每月工资收入（税后）在3000元以下（含3000元）者，交纳月工资收入的0.5%；3000元以上至5000元（含5000元）者，
# 交纳1%；5000元以上至10000元（含10000元）者，交纳1.5%；10000元以上者，交纳2%。
EMPLOYED_BRACKETS: tuple[Bracket, ...] = (
    Bracket(Decimal("3000"), Decimal("0.005"),
            "第二条：每月工资收入（税后）在3000元以下（含3000元）者，交纳月工资收入的0.5%。"),
    Bracket(Decimal("5000"), Decimal("0.01"),
            "第二条：每月工资收入（税后）3000元以上至5000元（含5000元）者，交纳1%。"),
    Bracket(Decimal("10000"), Decimal("0.015"),
            "第二条：每月工资收入（税后）5000元以上至10000元（含10000元）者，交纳1.5%。"),
    Bracket(None, Decimal("0.02"), "第二条：每月工资收入（税后）10000元以上者，交纳2%。"),
)

# Article 5: 离退休干部、职工中的党员，每月以实际领取的离退休费总额或养老金总额为计算基数，5000元以下（含5000元）的
# 按0.5%交纳党费，5000元以上的按1%交纳党费。
RETIRED_BRACKETS: tuple[Bracket, ...] = (
    Bracket(Decimal("5000"), Decimal("0.005"),
            "第五条：离退休干部、职工中的党员，以每月实际领取的离退休费总额或养老金总额为计算基数，"
            "5000元以下（含5000元）的按0.5%交纳党费。"),
    Bracket(None, Decimal("0.01"),
            "第五条：离退休干部、职工中的党员，以每月实际领取的离退休费总额或养老金总额为计算基数，"
            "5000元以上的按1%交纳党费。"),
)

FARMER_RANGE = (Decimal("0.20"), Decimal("1.00"))
FIXED_AMOUNT = Decimal("0.20")

# Article 6: 农民党员每月交纳党费0.2元至1元。学生党员、下岗失业的党员、依靠抚恤或救济生活的党员、领取当地最低生活
# 保障金的党员，每月交纳党费0.2元。
FIXED_RULES: dict[DuesCategory, str] = {
    DuesCategory.FARMER: "第六条：农民党员每月交纳党费0.2元至1元。",
    DuesCategory.STUDENT: "第六条：学生党员每月交纳党费0.2元。",
    DuesCategory.UNEMPLOYED: "第六条：下岗失业的党员每月交纳党费0.2元。",
    DuesCategory.RELIEF: "第六条：依靠抚恤或救济生活的党员每月交纳党费0.2元。",
    DuesCategory.LOW_INCOME: "第六条：领取当地最低生活保障金的党员每月交纳党费0.2元。",
}


@dataclass(frozen=True)
class RegularDues:
    """What a member owes each month: ``rate`` of the income, or a fixed amount (``rate`` None); farmers owe a
    range from ``monthly_dues`` to ``monthly_dues_max``."""

    rate: Decimal | None
    monthly_dues: Decimal
    monthly_dues_max: Decimal | None
    rule: str


def bracket_for(income: Decimal, brackets: tuple[Bracket, ...]) -> Bracket:
    """The bracket ``income`` falls in: the first whose upper bound it does not exceed."""
    return next(b for b in brackets if b.upper is None or income <= b.upper)


def regular_dues(category: DuesCategory, monthly_income: Decimal | None = None) -> RegularDues:
    """The regular monthly dues of a member of ``category``; the rate applies to the whole income, rounded half
    up to the fen. ``monthly_income`` (≥ 0) is required for employed and retired members and ignored otherwise."""
    if category in INCOME_CATEGORIES:
        if monthly_income is None or monthly_income < 0:
            raise ValueError("a non-negative monthly income is required for this category")
        brackets = EMPLOYED_BRACKETS if category is DuesCategory.EMPLOYED else RETIRED_BRACKETS
        bracket = bracket_for(monthly_income, brackets)
        dues = (monthly_income * bracket.rate).quantize(CENT, rounding=ROUND_HALF_UP)
        return RegularDues(bracket.rate, dues, None, REGULATION + bracket.rule)
    rule = REGULATION + FIXED_RULES[category]
    if category is DuesCategory.FARMER:
        return RegularDues(None, FARMER_RANGE[0], FARMER_RANGE[1], rule)
    return RegularDues(None, FIXED_AMOUNT, None, rule)

"""Resident ID numbers, phone numbers and names: validation and masking (pure, no app)."""

from __future__ import annotations

from datetime import date

import pytest

from duesflow.identity import (
    COMPOUND_SURNAMES,
    mask_name,
    mask_phone,
    mask_resident_id,
    parse_resident_id,
    resident_id_check_character,
    validate_person_name,
    validate_phone,
    validate_resident_id,
)

TODAY = date(2026, 11, 26)


# ---------------------------------------------------------------- resident ID numbers


@pytest.mark.parametrize(
    "number",
    [
        "11010519491231002X",  # the worked example of GB 11643-1999
        "22030219900101123X",
        "220302199001051231",
        "440304198510201233",
        "110101200002290034",  # 29 February of a leap year
        "65010219700228001X",
    ],
)
def test_valid_resident_ids_are_accepted_unchanged(number):
    assert validate_resident_id(number, today=TODAY) == number


def test_check_character_follows_iso_7064_mod_11_2():
    assert resident_id_check_character("11010519491231002") == "X"
    assert resident_id_check_character("22030219900101123") == "X"
    assert resident_id_check_character("22030219900105123") == "1"


def test_lower_case_x_and_surrounding_spaces_are_normalised():
    assert validate_resident_id(" 11010519491231002x ", today=TODAY) == "11010519491231002X"


def test_wrong_check_character_is_refused():
    # 22030219900101123 needs X, not 1.
    with pytest.raises(ValueError, match="校验位不正确"):
        validate_resident_id("220302199001011231", today=TODAY)


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("", "不能为空"),
        ("11010519491231002", "18位"),
        ("11010519491231002XX", "18位"),
        ("110105194912310", "18位"),  # the old 15-digit numbers are not accepted
        ("1101051949123100X2", "17位数字"),
        ("１１０１０５１９４９１２３１００２Ｘ", "17位数字"),  # full-width digits
        ("99010519491231002X", "地址码"),
        ("110105194902300028", "不是有效日期"),  # 30 February
        ("110105199013010021", "不是有效日期"),  # month 13
        ("110105189912310020", "1900"),
        ("110105202612310027", "晚于今天"),
    ],
)
def test_malformed_resident_ids_are_refused(number, message):
    with pytest.raises(ValueError, match=message):
        validate_resident_id(number, today=TODAY)


def test_birth_date_today_is_accepted_and_tomorrow_refused():
    first17_today, first17_tomorrow = "11010520261126001", "11010520261127001"
    today_id = first17_today + resident_id_check_character(first17_today)
    tomorrow_id = first17_tomorrow + resident_id_check_character(first17_tomorrow)
    assert validate_resident_id(today_id, today=TODAY) == today_id
    with pytest.raises(ValueError, match="晚于今天"):
        validate_resident_id(tomorrow_id, today=TODAY)


def test_parse_resident_id_gives_birth_date_and_gender():
    parsed = parse_resident_id("11010519491231002X", today=TODAY)
    assert parsed.birth_date == date(1949, 12, 31)
    assert parsed.gender == "female"  # 17th digit 2 is even
    assert parsed.address_code == "110105"
    assert parse_resident_id("220302199001051231", today=TODAY).gender == "male"


def test_non_text_resident_id_is_a_value_error():
    with pytest.raises(ValueError):
        validate_resident_id(110105194912310020)  # type: ignore[arg-type]


def test_resident_id_mask_keeps_first_six_and_last_four():
    assert mask_resident_id("220302199001051231") == "220302********1231"
    assert mask_resident_id("11010519491231002x") == "110105********002X"


def test_resident_id_mask_of_odd_lengths():
    assert mask_resident_id("110105491231002") == "110105*****1002"  # old 15-digit number
    assert mask_resident_id("1234567890") == "**********"
    assert mask_resident_id("") == ""


# ---------------------------------------------------------------- phone numbers


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("13800138000", "13800138000"),
        (" 138 0013 8000 ", "13800138000"),
        ("138-0013-8000", "13800138000"),
        ("+86 13800138000", "13800138000"),
        ("0086-19912345678", "19912345678"),
        ("0431-81234567", "0431-81234567"),
        ("043181234567", "0431-81234567"),
        ("0431 8123456", "0431-8123456"),
        ("(010)82345678", "010-82345678"),
        ("02182345678", "021-82345678"),
        ("81234567", "81234567"),
        ("2345678", "2345678"),
    ],
)
def test_valid_phone_numbers_are_normalised(raw, normalised):
    assert validate_phone(raw) == normalised


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "1380013800",  # 10 digits
        "138001380001",  # 12 digits
        "12800138000",  # 12x is no mobile prefix
        "+86 0431 81234567",
        "010-1234567",  # 3-digit area codes take 8-digit numbers
        "021-12345678",  # local numbers never start with 1
        "0100-2345678",  # 010 is a 3-digit area code
        "0011-82345678",
        "123456",
        "0431-81234567-808",  # extensions are not accepted
        "tel:13800138000",
        "１３８００１３８０００",
    ],
)
def test_invalid_phone_numbers_are_refused(raw):
    with pytest.raises(ValueError):
        validate_phone(raw)


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("13800000000", "138****0000"),
        ("138 0013 8000", "138****8000"),
        ("0431-81234567", "0431-******67"),
        ("01082345678", "010-******78"),
        ("81234567", "******67"),
        ("2345678", "*****78"),
        ("12345", "*****"),  # invalid and short: all hidden
        ("0011-82345678", "001********78"),  # invalid: first 3 and last 2
    ],
)
def test_phone_masks(raw, masked):
    assert mask_phone(raw) == masked


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三", "张*"),
        ("李小龙", "李**"),
        ("  王五  ", "王*"),
        ("王", "王"),
        ("欧阳修文", "欧阳**"),
        ("司马懿", "司马*"),
        ("诸葛亮", "诸葛*"),
        ("歐陽修", "歐陽*"),
        ("欧阳", "欧*"),  # a two-character name keeps one character
        ("买买提·艾力", "买买提·**"),
        ("阿依古丽·买买提", "阿依古丽·***"),
        ("阿依古丽•买买提", "阿依古丽·***"),  # variants of the separator are normalised
        ("爱新觉罗·溥仪", "爱新觉罗·**"),
        ("A·B·C", "A·*·*"),
        ("Anna Li", "Anna **"),
        ("", ""),
    ],
)
def test_name_masks(name, masked):
    assert mask_name(name) == masked


def test_compound_surnames_include_the_common_ones():
    for surname in ["欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文",
                    "司徒", "夏侯", "轩辕", "令狐", "端木", "独孤", "南宫", "西门", "百里", "呼延", "澹台",
                    "公冶", "宗政", "濮阳", "太史", "申屠", "钟离", "闻人", "赫连", "万俟", "单于", "第五",
                    "拓跋", "东郭"]:
        assert surname in COMPOUND_SURNAMES
        assert mask_name(surname + "明") == surname + "*"


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("张三", "张三"),
        ("  张三 ", "张三"),
        ("买买提·艾力", "买买提·艾力"),
        ("买买提 · 艾力", "买买提·艾力"),
        ("买买提•艾力", "买买提·艾力"),
        ("买买提．艾力", "买买提·艾力"),
        ("买买提・艾力", "买买提·艾力"),
        ("买买提\u00b7艾力", "买买提·艾力"),
        ("𠀀𠀁", "𠀀𠀁"),  # CJK Extension B
        ("\U00031350文", "\U00031350文"),  # CJK Extension H
        ("王〇", "王〇"),
        ("Zhang  San", "Zhang San"),
        ("José Martínez", "José Martínez"),
        ("Jose\u0301", "José"),  # composed to NFC
        ("王", "王"),
        ("名" * 50, "名" * 50),
    ],
)
def test_valid_person_names_are_normalised(raw, normalised):
    assert validate_person_name(raw) == normalised


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "不能为空"),
        ("   ", "不能为空"),
        ("名" * 51, "不能超过50"),
        ("张3", "数字"),
        ("张３", "数字"),
        ("张\u200b三", "控制字符"),
        ("张\t三", "控制字符"),
        ("李\u202e四", "控制字符"),
        ("O'Brien", "标点"),
        ("Jean-Pierre", "标点"),
        ("张.三", "标点"),
        ("张三😀", "只能使用"),
        ("张，三", "只能使用"),
        ("·艾力", "开头或结尾"),
        ("买买提·", "开头或结尾"),
        ("买买提··艾力", "连续"),
    ],
)
def test_invalid_person_names_are_refused(raw, message):
    with pytest.raises(ValueError, match=message):
        validate_person_name(raw)

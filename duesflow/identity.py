"""Personal particulars of a member: resident ID numbers, phone numbers and names.

Validation (normalise or raise ``ValueError`` with a Chinese message) and masking for display. Pure
functions: no Flask, no database. The messages are meant to be shown to a clerk as they are.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")

# --------------------------------------------------------------------------------------------------
# Resident ID numbers (公民身份号码, GB 11643-1999)
# --------------------------------------------------------------------------------------------------

RESIDENT_ID_LENGTH = 18
# ISO 7064 MOD 11-2 as GB 11643-1999 writes it: weight 2^(17-i) mod 11 for the 17 leading digits.
RESIDENT_ID_WEIGHTS: tuple[int, ...] = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
RESIDENT_ID_CHECK_CHARACTERS = "10X98765432"
EARLIEST_BIRTH_DATE = date(1900, 1, 1)

# First two digits of the address code (GB/T 2260): the 31 provinces, autonomous regions and
# municipalities, plus 71/81/82/83, which the same 18-character format uses for Taiwan, Hong Kong and
# Macao (residence permits for Hong Kong, Macao and Taiwan residents).
PROVINCE_CODES: frozenset[str] = frozenset({
    "11", "12", "13", "14", "15",
    "21", "22", "23",
    "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46",
    "50", "51", "52", "53", "54",
    "61", "62", "63", "64", "65",
    "71", "81", "82", "83",
})

_RESIDENT_ID_SHAPE = re.compile(r"[0-9]{17}[0-9X]")


@dataclass(frozen=True)
class ResidentId:
    """A validated resident ID number and what it says about its holder."""

    number: str
    address_code: str
    birth_date: date
    gender: str  # "male" or "female": the 17th digit is odd for men, even for women


def resident_id_check_character(first17: str) -> str:
    """The check character (``0``–``9`` or ``X``) for the 17 leading digits of a resident ID number."""
    if len(first17) != 17 or not all("0" <= c <= "9" for c in first17):
        raise ValueError("身份证号码前17位必须是数字")
    total = sum(int(c) * w for c, w in zip(first17, RESIDENT_ID_WEIGHTS, strict=True))
    return RESIDENT_ID_CHECK_CHARACTERS[total % 11]


def parse_resident_id(value: str, *, today: date | None = None) -> ResidentId:
    """Validate an 18-character resident ID number and split it into its parts.

    Accepts surrounding whitespace and a lower-case ``x``; the birth date (YYYYMMDD, characters 7–14)
    must be a real date, not before 1900-01-01 and not after ``today`` (by default today's Beijing date;
    callers with a clock of their own pass ``today=timeutil.beijing_today()``).
    Raises ``ValueError`` with a Chinese message otherwise.
    """
    if not isinstance(value, str):
        raise ValueError("身份证号码必须是文本")
    number = value.strip().upper()
    if not number:
        raise ValueError("身份证号码不能为空")
    if len(number) != RESIDENT_ID_LENGTH:
        raise ValueError("身份证号码应为18位")
    if not _RESIDENT_ID_SHAPE.fullmatch(number):
        raise ValueError("身份证号码应为17位数字加1位数字或X")
    if number[:2] not in PROVINCE_CODES:
        raise ValueError("身份证号码的地址码不正确")
    try:
        birth_date = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise ValueError("身份证号码中的出生日期不是有效日期") from None
    if birth_date < EARLIEST_BIRTH_DATE:
        raise ValueError("身份证号码中的出生日期不能早于1900年")
    if birth_date > (today or _beijing_today()):
        raise ValueError("身份证号码中的出生日期不能晚于今天")
    if resident_id_check_character(number[:17]) != number[17]:
        raise ValueError("身份证号码校验位不正确")
    return ResidentId(
        number=number,
        address_code=number[:6],
        birth_date=birth_date,
        gender="male" if int(number[16]) % 2 else "female",
    )


def validate_resident_id(value: str, *, today: date | None = None) -> str:
    """Return the resident ID number normalised (upper-case ``X``, trimmed); raise ValueError if invalid."""
    return parse_resident_id(value, today=today).number


def mask_resident_id(value: str) -> str:
    """Show a resident ID number as the first 6 and last 4 characters with ``*`` between.

    An 18-character number gives exactly 8 stars (``220302********1231``); an old 15-digit number keeps
    the same ends (5 stars). Anything of 10 characters or fewer is starred out entirely, so that a
    short or broken value never shows most of itself.
    """
    number = value.strip().upper()
    if len(number) <= 10:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def _beijing_today() -> date:
    # Not timeutil.beijing_today: that module imports the models, and this one stays free of the DB.
    return datetime.now(BEIJING).date()


# --------------------------------------------------------------------------------------------------
# Phone numbers
# --------------------------------------------------------------------------------------------------

_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_MOBILE_COUNTRY_PREFIX = re.compile(r"(?:\+86|0086)-?")
# A landline: an area code with a hyphen or in brackets, or run straight into the local number.
_LANDLINE_BRACKETED = re.compile(r"\((?P<area>[0-9]+)\)(?P<local>[0-9]+)")
_LANDLINE_HYPHENATED = re.compile(r"(?P<area>0[0-9]*)-(?P<local>[0-9]+)")
_DIGITS = re.compile(r"[0-9]+")
# Area codes with 3 digits are exactly 010 and 020–029; every other one has 4 digits, 03xx–09xx.
_THREE_DIGIT_AREA = re.compile(r"010|02[0-9]")
_FOUR_DIGIT_AREA = re.compile(r"0[3-9][0-9]{2}")
# Local numbers have 7 or 8 digits and never start with 0 or 1.
_LOCAL_NUMBER = re.compile(r"[2-9][0-9]{6,7}")
_SPACES = re.compile(r"[\s\u3000]+")


def _split_landline(text: str) -> tuple[str | None, str]:
    match = _LANDLINE_BRACKETED.fullmatch(text) or _LANDLINE_HYPHENATED.fullmatch(text)
    if match is not None:
        return match.group("area"), match.group("local")
    if not _DIGITS.fullmatch(text):
        raise ValueError("电话号码只能包含数字、区号后的连字符「-」或区号外的括号")
    if not text.startswith("0"):
        return None, text
    area_length = 3 if _THREE_DIGIT_AREA.match(text) else 4
    return text[:area_length], text[area_length:]


def validate_phone(value: str) -> str:
    """Validate a mainland phone number and return it normalised.

    - a mobile number: 11 digits starting with 13–19, with or without a ``+86``/``0086`` prefix, spaces
      or hyphens (``138 0013 8000``, ``+86 138-0013-8000``) → ``13800138000``;
    - a landline: a local number of 7–8 digits starting with 2–9, optionally preceded by an area code
      (``010`` or ``02x`` followed by 8 digits, or a 4-digit ``03xx``–``09xx``), with a hyphen, in
      brackets or run together — 7 to 12 digits overall → ``0431-81234567`` (the hyphen always written
      when there is an area code) or ``81234567``.

    Extensions and foreign numbers are not accepted. Raises ``ValueError`` with a Chinese message.
    """
    if not isinstance(value, str):
        raise ValueError("电话号码必须是文本")
    text = _SPACES.sub("", value)
    if not text:
        raise ValueError("电话号码不能为空")

    prefix = _MOBILE_COUNTRY_PREFIX.match(text)
    mobile = (text[prefix.end():] if prefix else text).replace("-", "")
    if _MOBILE.fullmatch(mobile):
        return mobile
    if prefix or text.startswith("1"):
        raise ValueError("手机号码应为以13至19开头的11位数字")

    area, local = _split_landline(text)
    if area is not None and not (_THREE_DIGIT_AREA.fullmatch(area) or _FOUR_DIGIT_AREA.fullmatch(area)):
        raise ValueError("区号不正确：区号为010、020至029，或以03至09开头的四位数字")
    if not _LOCAL_NUMBER.fullmatch(local):
        raise ValueError("固定电话号码应为7至8位数字，且不以0或1开头")
    if area is not None and len(area) == 3 and len(local) != 8:
        raise ValueError("固定电话号码位数不正确：区号为三位时号码应为8位")
    return local if area is None else f"{area}-{local}"


def mask_phone(value: str) -> str:
    """Show a phone number with its middle hidden.

    - mobile: first 3 and last 4 digits, ``138****0000``;
    - landline: the area code stays (it only names a city) and the last 2 digits of the local number,
      ``0431-******67``; without an area code ``******67``;
    - anything that is not a valid number (old data): 7 or more characters keep the first 3 and the last
      2 (``123***89``); shorter ones are starred out entirely.
    """
    try:
        phone = validate_phone(value)
    except ValueError:
        text = _SPACES.sub("", value)
        if len(text) < 7:
            return "*" * len(text)
        return text[:3] + "*" * (len(text) - 5) + text[-2:]
    if _MOBILE.fullmatch(phone):
        return phone[:3] + "****" + phone[-4:]
    area, _, local = phone.rpartition("-")
    masked_local = "*" * (len(local) - 2) + local[-2:]
    return f"{area}-{masked_local}" if area else masked_local


# --------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------

NAME_MAX_LENGTH = 50
NAME_SEPARATOR = "·"  # U+00B7 MIDDLE DOT, the 间隔号 used in minority and foreign names on ID cards

# Characters people type for the 间隔号; all are written as U+00B7.
NAME_SEPARATOR_VARIANTS = "\u2022\uff0e\u30fb\uff65\u2027\u2219\u22c5\u0387"  # • ． ・ ･ ‧ ∙ ⋅ ·(Greek)

# The common compound surnames (复姓), simplified and, where it differs, traditional spelling. A name that
# starts with one is read as compound; the rare single-surname name that looks the same (钟 + 离…) then
# shows one more character, which is accepted. 贺兰 is left out: 贺 is too common a surname on its own.
COMPOUND_SURNAMES: frozenset[str] = frozenset({
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙",
    "宇文", "司徒", "夏侯", "轩辕", "令狐", "端木", "独孤", "南宫", "西门", "百里",
    "呼延", "澹台", "公冶", "宗政", "濮阳", "太史", "申屠", "钟离", "闻人", "赫连",
    "万俟", "单于", "第五", "拓跋", "东郭", "淳于", "鲜于", "司空", "公羊", "仲孙",
    "闾丘", "亓官", "司寇", "子车", "颛孙", "公西", "漆雕", "壤驷", "公良", "宰父",
    "羊舌", "微生", "左丘", "东门", "南门", "太叔", "夹谷", "呼衍", "纳兰",
    "完颜", "爱新觉罗",
    # traditional spellings
    "歐陽", "司馬", "諸葛", "東方", "尉遲", "公孫", "長孫", "軒轅", "獨孤", "南宮",
    "西門", "澹臺", "濮陽", "鍾離", "聞人", "赫連", "萬俟", "單于", "東郭", "鮮于",
    "閭丘", "顓孫", "東門", "南門", "夾谷", "納蘭", "完顏", "愛新覺羅", "仲孫", "壤駟",
})

# Ideographs in every CJK block up to Extension I (Unicode 15.1), written as ranges so that the check
# does not depend on the Unicode version of the running Python's unicodedata.
_CJK_RANGES: tuple[tuple[int, int], ...] = (
    (0x3400, 0x4DBF),    # Extension A
    (0x4E00, 0x9FFF),    # Unified Ideographs
    (0xF900, 0xFAFF),    # Compatibility Ideographs
    (0x20000, 0x2A6DF),  # Extension B
    (0x2A700, 0x2EE5F),  # Extensions C, D, E, F, I
    (0x2F800, 0x2FA1F),  # Compatibility Ideographs Supplement
    (0x30000, 0x323AF),  # Extensions G, H
)
_CJK_COMPATIBILITY = re.compile("([\uf900-\ufaff\U0002f800-\U0002fa1f]+)")
_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_NAME_SPACES = re.compile(r"[ \u3000]+")
_SPACES_AROUND_SEPARATOR = re.compile(r" ?· ?")


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return char == "〇" or any(low <= code <= high for low, high in _CJK_RANGES)


def _is_latin_letter(char: str) -> bool:
    return unicodedata.category(char).startswith("L") and "LATIN" in unicodedata.name(char, "")


def _nfc_except_compatibility_ideographs(text: str) -> str:
    # NFC would replace CJK compatibility ideographs by their unified twins; names keep what was written.
    parts = _CJK_COMPATIBILITY.split(text)
    return "".join(part if i % 2 else unicodedata.normalize("NFC", part) for i, part in enumerate(parts))


def normalize_name(name: str) -> str:
    """Trim, compose accents (NFC), write every 间隔号 variant as ``·`` and collapse runs of spaces."""
    text = _nfc_except_compatibility_ideographs(name.strip())
    for variant in NAME_SEPARATOR_VARIANTS:
        text = text.replace(variant, NAME_SEPARATOR)
    text = _NAME_SPACES.sub(" ", text)
    return _SPACES_AROUND_SEPARATOR.sub(NAME_SEPARATOR, text)


def validate_person_name(name: str) -> str:
    """Validate a person's name and return it normalised (see :func:`normalize_name`).

    1–50 characters of Chinese (every CJK block, extensions included, and 〇), Latin letters (accents
    allowed), single spaces between words and the 间隔号 ``·`` between parts. Refuses control and
    formatting characters, digits, ASCII punctuation and anything else, with a Chinese message.
    """
    if not isinstance(name, str):
        raise ValueError("姓名必须是文本")
    text = normalize_name(name)
    if not text:
        raise ValueError("姓名不能为空")
    if len(text) > NAME_MAX_LENGTH:
        raise ValueError(f"姓名不能超过{NAME_MAX_LENGTH}个字符")
    for char in text:
        category = unicodedata.category(char)
        if category in {"Cc", "Cf", "Cs", "Zl", "Zp"}:
            raise ValueError("姓名不能包含控制字符或不可见字符")
        if category == "Nd":
            raise ValueError("姓名不能包含数字")
        if char in _ASCII_PUNCTUATION:
            raise ValueError("姓名不能包含标点符号（间隔号「·」除外）")
        if not (char in {" ", NAME_SEPARATOR} or _is_cjk(char) or _is_latin_letter(char)):
            raise ValueError(f"姓名不能包含字符「{char}」：只能使用汉字、拉丁字母、空格和间隔号「·」")
    if text.startswith(NAME_SEPARATOR) or text.endswith(NAME_SEPARATOR):
        raise ValueError("间隔号「·」不能位于姓名的开头或结尾")
    if NAME_SEPARATOR * 2 in text:
        raise ValueError("姓名中不能有连续的间隔号")
    return text


def mask_name(name: str) -> str:
    """Show a name with only its surname (or first part) readable.

    - ``张三`` → ``张*``; a compound surname from :data:`COMPOUND_SURNAMES` stays whole when the name
      is longer than it (``欧阳修文`` → ``欧阳**``; a two-character name keeps one: ``欧阳`` → ``欧*``);
    - names in parts, joined by ``·`` or (Latin names) spaces, keep their first part and star every
      other character, the separators kept: ``买买提·艾力`` → ``买买提·**``, ``Anna Li`` → ``Anna **``;
    - a one-character name stays as it is; surrounding whitespace is trimmed, ``·`` variants normalised.
    """
    text = normalize_name(name)
    if len(text) <= 1:
        return text
    separators = {NAME_SEPARATOR, " "}
    if any(sep in text[1:] for sep in separators):
        first_end = min(i for i, char in enumerate(text) if char in separators and i > 0)
        rest = "".join(char if char in separators else "*" for char in text[first_end:])
        return text[:first_end] + rest
    surname_length = 1
    for surname in COMPOUND_SURNAMES:
        if len(text) > len(surname) and text.startswith(surname):
            surname_length = max(surname_length, len(surname))
    return text[:surname_length] + "*" * (len(text) - surname_length)


def fold_username(username: str) -> str:
    """The form in which usernames are unique and looked up (SPEC §7): Unicode compatibility forms unified (NFKC)
    and letter case folded, so that ``Clerk``, ``CLERK`` and the full-width ``ｃｌｅｒｋ`` are one name.

    NFKC again after case folding: folding can produce characters that NFKC composes (Unicode's NFKC_Casefold).
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())

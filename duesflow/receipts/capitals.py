"""Amounts in Chinese capitals and in figures, as written on bills and settlement documents.

The rules are those of 《正确填写票据和结算凭证的基本规定》 (People's Bank of China). Where the rules
allow two forms, this module writes one of them, always the same; see :func:`to_capitals`.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

DIGITS = "零壹贰叁肆伍陆柒捌玖"
_PLACE_UNITS = ("", "拾", "佰", "仟")  # inside a four-digit section
_SECTION_UNITS = ("", "万", "亿")  # one per four-digit section, from the right
_CENT = Decimal("0.01")
LARGEST_AMOUNT = Decimal("999999999999.99")  # 亿 sections only; 万亿 is never needed for dues
PREFIX = "人民币"


def _checked(amount: Decimal) -> Decimal:
    """Return ``amount`` if it is a finite, non-negative amount with at most two decimal places."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise TypeError(f"amount must be a Decimal, not {type(amount).__name__}")
    amount = Decimal(amount)
    if not amount.is_finite():
        raise ValueError(f"amount must be finite: {amount}")
    if amount < 0:
        raise ValueError(f"amount must not be negative: {amount}")
    try:
        in_cents = amount.quantize(_CENT)
    except InvalidOperation as error:  # more digits than the decimal context holds
        raise ValueError(f"amount too large: {amount}") from error
    if amount != in_cents:
        raise ValueError(f"amount has more than two decimal places: {amount}")
    return amount


def _integer_capitals(yuan: int) -> str:
    """Write a whole number of yuan (1 ≤ yuan < 10**12) in capitals, without the 元."""
    digits = str(yuan)
    out: list[str] = []
    zero_pending = False
    for index, char in enumerate(digits):
        position = len(digits) - 1 - index  # 0 is the 元 place
        digit = int(char)
        if digit == 0:
            zero_pending = bool(out)
        else:
            if zero_pending:
                out.append("零")  # one 零 for a run of zeros, even across a 万 or 亿 boundary
                zero_pending = False
            out.append(DIGITS[digit] + _PLACE_UNITS[position % 4])
        section, place = divmod(position, 4)
        if place == 0 and section > 0 and (yuan // 10 ** (4 * section)) % 10_000:
            out.append(_SECTION_UNITS[section])
    return "".join(out)


def to_capitals(amount: Decimal) -> str:
    """Write ``amount`` (0 … 999 999 999 999.99 yuan) in Chinese capitals, without the 人民币 prefix.

    - 拾 always has a digit before it: 10 → 壹拾元整.
    - A run of zeros between two non-zero digits of the yuan part is one 零, also where the run
      covers a 万 or 亿 place: 100010000 → 壹亿零壹万元整, 10000001 → 壹仟万零壹元整,
      107000.53 → 壹拾万零柒仟元伍角叁分 (one of the two forms the rules give for it).
      A section that is all zeros loses its unit: 100000001 → 壹亿零壹元整.
      Zeros at the end of the yuan part are not written: 1000 → 壹仟元整.
    - 整 follows 元 when there are no 角 and no 分: 1000 → 壹仟元整.
    - 角 without 分 is written without 整 (the rules allow both; this is their own example
      ¥1409.50 → 壹仟肆佰零玖元伍角): 1000.50 → 壹仟元伍角.
    - A zero 角 before a non-zero 分 is 零: 1000.05 → 壹仟元零伍分. A zero 元 place before a non-zero 角
      gets no 零 (the rules allow both): 1680.32 → 壹仟陆佰捌拾元叁角贰分.
    - Less than one yuan has no 元: 0.05 → 伍分, 0.50 → 伍角; zero is 零元整.

    Raises ``ValueError`` for a negative amount, more than two decimal places, or more than
    999 999 999 999.99; ``TypeError`` for a float (amounts never travel through binary floating point).
    """
    amount = _checked(amount)
    if amount > LARGEST_AMOUNT:
        raise ValueError(f"amount too large for capitals: {amount}")
    cents = int(amount * 100)
    yuan, rest = divmod(cents, 100)
    jiao, fen = divmod(rest, 10)
    if cents == 0:
        return "零元整"
    text = _integer_capitals(yuan) + "元" if yuan else ""
    if jiao == 0 and fen == 0:
        return text + "整"
    if jiao:
        text += DIGITS[jiao] + "角"
    elif yuan:
        text += "零"
    if fen:
        text += DIGITS[fen] + "分"
    return text


_FRACTION = re.compile(rf"^(?:零?([{DIGITS[1:]}])分|零?([{DIGITS[1:]}])角(?:([{DIGITS[1:]}])分)?)?$")
_SMALL_UNITS = {"拾": 10, "佰": 100, "仟": 1000}
_BIG_UNITS = {"万": 10**4, "亿": 10**8}


def _parse_integer(text: str) -> int:
    """Read the yuan part of capitals (without 元), checking that units follow digits in order."""
    total = 0  # everything closed by 亿 or 万
    section = 0  # the current four-digit section
    digit: int | None = None
    last_small_unit = 10_000
    last_big_unit = 10**12
    for char in text:
        if char == "零":
            if digit is not None:
                raise ValueError(f"零 after a digit in {text!r}")
        elif char in DIGITS:
            if digit is not None:
                raise ValueError(f"two digits in a row in {text!r}")
            digit = DIGITS.index(char)
        elif char in _SMALL_UNITS:
            unit = _SMALL_UNITS[char]
            if digit is None or unit >= last_small_unit:
                raise ValueError(f"misplaced {char} in {text!r}")
            section += digit * unit
            digit, last_small_unit = None, unit
        elif char in _BIG_UNITS:
            unit = _BIG_UNITS[char]
            section += digit or 0
            if section == 0 or unit >= last_big_unit:
                raise ValueError(f"misplaced {char} in {text!r}")
            total += section * unit
            section, digit, last_small_unit, last_big_unit = 0, None, 10_000, unit
        else:
            raise ValueError(f"unexpected {char!r} in {text!r}")
    return total + section + (digit or 0)


def parse_capitals(text: str) -> Decimal:
    """Read an amount written in Chinese capitals, with or without the 人民币 prefix.

    The inverse of :func:`to_capitals`; also reads the alternative forms the rules allow
    (正 for 整, 整 after 角, no 零 before 角 or 分). Returns a Decimal with two decimal places and
    raises ``ValueError`` for text that is not an amount in capitals.
    """
    body = text.strip().removeprefix(PREFIX)
    if body == "零元整":
        return Decimal("0.00")
    if body.endswith(("整", "正")):
        body = body[:-1]
    if not body:
        raise ValueError(f"not an amount in capitals: {text!r}")
    integer_text, separator, fraction_text = body.rpartition("元")
    if separator and not integer_text:
        raise ValueError(f"元 without an amount in {text!r}")
    fraction = _FRACTION.match(fraction_text)
    if fraction is None:
        raise ValueError(f"not an amount in capitals: {text!r}")
    fen_alone, jiao, fen = fraction.groups()
    yuan = _parse_integer(integer_text) if integer_text else 0
    cents = yuan * 100
    cents += DIGITS.index(jiao) * 10 if jiao else 0
    cents += DIGITS.index(fen_alone or fen) if (fen_alone or fen) else 0
    if cents == 0:
        raise ValueError(f"not an amount in capitals: {text!r}")
    return (Decimal(cents) / 100).quantize(_CENT)


def format_yuan(amount: Decimal) -> str:
    """Format an amount in figures: ``Decimal("12345.67")`` → ``¥12,345.67``; never through float."""
    return f"¥{_checked(amount):,.2f}"

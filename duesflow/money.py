"""Money: the rule's minimum, the accepted amount syntax, and how amounts are written. Never a float."""

from __future__ import annotations

import re
from decimal import Context, Decimal

# The rule: 1000元及以上 in a single payment; 1000.00 itself counts.
MINIMUM_AMOUNT = Decimal("1000.00")
CENT = Decimal("0.01")

_AMOUNT_TEXT = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]{1,2})?")


class JsonNumber(str):
    """The source text of a JSON number with a fraction or exponent, kept as text so no float is ever made."""


def parse_amount(value: object) -> Decimal:
    """Parse an amount given as a decimal string, a JSON integer or a JSON number with ≤ 2 fraction digits.

    Raises ValueError for anything else: more digits, exponents, signs, spaces, commas, NaN, booleans, null.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError("not an amount")
    if not isinstance(value, int | str):
        raise ValueError("not an amount")
    text = str(value)
    if not _AMOUNT_TEXT.fullmatch(text):
        raise ValueError("not an amount")
    # Enough precision for any number of digits: the default context (28 digits) raises on huge amounts.
    return Decimal(text).quantize(CENT, context=Context(prec=len(text) + 2))


def format_amount(amount: Decimal) -> str:
    """The API's form of an amount: a string with exactly two decimals."""
    return str(amount.quantize(CENT))

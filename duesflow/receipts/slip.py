"""The collection slip (收款凭条): what the grassroots committee hands the member when it collects the money.

Deliberately plain, black on white, with no seal, no QR code and no ornament, and it says in a box that it is
not the central commemorative receipt. Pure: takes a :class:`SlipContent`, returns bytes.
"""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass
from decimal import Decimal

from reportlab.lib.colors import Color
from reportlab.lib.pagesizes import A5, landscape
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas

from .capitals import PREFIX, format_yuan, to_capitals
from .pdf import CENTRAL_ISSUER, _fitted, _font_name, chinese_date
from .typed_text import printable_content

TITLE = "收款凭条"
SUBTITLE = "党员自愿一次性多交党费 · 基层党委代收凭证"
NOT_A_RECEIPT = f"本凭条仅为基层党委代收凭证，不是{CENTRAL_ISSUER}开具的纪念收据。"
WHAT_COMES_NEXT = f"款项经党组织逐级转交{CENTRAL_ISSUER}，确认后由其开具纪念收据，逐级转交本人。"
METHOD_LABELS = {"cash": "现金", "bank_transfer": "银行转账", "wechat": "微信支付", "alipay": "支付宝", "other": "其他"}

PAGE_WIDTH, PAGE_HEIGHT = landscape(A5)
_MARGIN = 44
_INK = Color(0, 0, 0)
_GREY = Color(0.4, 0.4, 0.4)


@dataclass(frozen=True)
class SlipContent:
    """Everything printed on a collection slip."""

    payment_id: int
    member_name: str
    amount: Decimal
    collected_on: datetime.date
    method: str  # one of METHOD_LABELS' keys
    grassroots_org_name: str
    printed_on: datetime.date


def _row(canvas: Canvas, font: str, label: str, value: str, y: float, size: float = 12.5) -> None:
    value_left = _MARGIN + 96
    right = PAGE_WIDTH - _MARGIN
    canvas.setFillColor(_GREY)
    canvas.setFont(font, 11)
    canvas.drawString(_MARGIN + 6, y, label)
    canvas.setStrokeColor(_GREY)
    canvas.setLineWidth(0.4)
    canvas.line(value_left - 4, y - 5, right, y - 5)
    canvas.setFillColor(_INK)
    canvas.setFont(font, _fitted(value, font, size, right - value_left - 4))
    canvas.drawString(value_left, y, value)


def render_slip_pdf(content: SlipContent, font_path: str | None = None) -> bytes:
    """Render the collection slip of one payment as PDF bytes (same fonts as the receipt)."""
    content = printable_content(content, "member_name", "grassroots_org_name")
    font = _font_name(font_path)
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=(PAGE_WIDTH, PAGE_HEIGHT), invariant=True)
    canvas.setTitle(f"{TITLE} 款项 {content.payment_id}")
    canvas.setSubject(NOT_A_RECEIPT)
    canvas.setAuthor(content.grassroots_org_name)
    canvas.setCreator("duesflow")
    canvas.setDateFormatter(lambda *_: content.printed_on.strftime("D:%Y%m%d000000+08'00'"))

    canvas.setStrokeColor(_INK)
    canvas.setLineWidth(0.8)
    canvas.rect(20, 20, PAGE_WIDTH - 40, PAGE_HEIGHT - 40, stroke=1, fill=0)

    canvas.setFillColor(_INK)
    canvas.setFont(font, 20)
    canvas.drawCentredString(PAGE_WIDTH / 2, PAGE_HEIGHT - 62, TITLE)
    canvas.setFont(font, 10.5)
    canvas.drawCentredString(PAGE_WIDTH / 2, PAGE_HEIGHT - 82, SUBTITLE)
    canvas.setFont(font, 10)
    canvas.drawRightString(PAGE_WIDTH - _MARGIN, PAGE_HEIGHT - 104, f"款项编号：{content.payment_id}")

    y = PAGE_HEIGHT - 134
    rows = (
        ("交款党员", content.member_name, 14.0),
        ("金额（小写）", format_yuan(content.amount), 13.0),
        ("金额（大写）", PREFIX + to_capitals(content.amount), 13.0),
        ("代收日期", chinese_date(content.collected_on), 12.5),
        ("交纳方式", METHOD_LABELS.get(content.method, content.method), 12.5),
        ("代收党组织", content.grassroots_org_name, 12.5),
    )
    for label, value, size in rows:
        _row(canvas, font, label, value, y, size)
        y -= 26

    # the disclaimer stands in a box of its own, where nobody can miss it
    box_top, box_height = y - 2, 40
    canvas.setLineWidth(1.2)
    canvas.rect(_MARGIN, box_top - box_height, PAGE_WIDTH - 2 * _MARGIN, box_height, stroke=1, fill=0)
    canvas.setFont(font, _fitted(NOT_A_RECEIPT, font, 12, PAGE_WIDTH - 2 * _MARGIN - 20))
    canvas.drawCentredString(PAGE_WIDTH / 2, box_top - 17, NOT_A_RECEIPT)
    canvas.setFont(font, _fitted(WHAT_COMES_NEXT, font, 9, PAGE_WIDTH - 2 * _MARGIN - 20))
    canvas.drawCentredString(PAGE_WIDTH / 2, box_top - 32, WHAT_COMES_NEXT)

    canvas.setFont(font, 10.5)
    signature_y = 42
    for x, label in (
        (_MARGIN, "交款人（签字）："),
        (_MARGIN + 180, "经办人（签字）："),
        (_MARGIN + 360, "代收党组织（盖章）"),
    ):
        canvas.drawString(x, signature_y, label)
    canvas.setFillColor(_GREY)
    canvas.setFont(font, 8.5)
    printed = f"打印日期：{chinese_date(content.printed_on)}"
    canvas.drawString(PAGE_WIDTH - _MARGIN - pdfmetrics.stringWidth(printed, font, 8.5), 26, printed)

    canvas.showPage()
    canvas.save()
    return buffer.getvalue()

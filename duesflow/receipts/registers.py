"""Printed lists (A4, reportlab platypus): the list that goes with a transfer batch's bank transfer (汇总上缴清单)
and a grassroots committee's collection register of commemorative receipts (纪念收据领取登记表).

Pure: takes the content, returns PDF bytes; the same fonts as the receipt, so the Chinese text is extractable.
"""

from __future__ import annotations

import datetime
import io
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import SimpleDocTemplate, Spacer, Table, TableStyle
from reportlab.platypus.flowables import Flowable

from .capitals import PREFIX, format_yuan, to_capitals
from .pdf import _font_name, chinese_date
from .typed_text import paragraph

TRANSFER_LIST_TITLE = "自愿多交党费汇总上缴清单"
REGISTER_TITLE = "自愿多交党费纪念收据领取登记表"
_MARGIN = 36
_GRID = colors.Color(0.35, 0.35, 0.35)
_HEAD = colors.Color(0.92, 0.92, 0.92)


@dataclass(frozen=True)
class TransferListLine:
    payment_id: int
    member_name: str
    grassroots_org_name: str
    collected_on: datetime.date
    amount: Decimal


@dataclass(frozen=True)
class TransferListContent:
    transfer_id: int
    from_org_name: str
    to_org_name: str
    bank_reference: str
    note: str | None
    sent_on: datetime.date
    lines: Sequence[TransferListLine]
    total: Decimal
    printed_on: datetime.date


@dataclass(frozen=True)
class RegisterLine:
    receipt_number: str
    member_name: str
    amount: Decimal
    issued_on: datetime.date
    version: int
    delivered_on: datetime.date | None
    signed_by: str | None


@dataclass(frozen=True)
class RegisterContent:
    org_name: str
    lines: Sequence[RegisterLine]
    printed_on: datetime.date
    undelivered_only: bool = False


def _styles(font: str) -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("base", fontName=font, fontSize=9.5, leading=13, wordWrap="CJK")
    return {
        "title": ParagraphStyle("title", parent=base, fontSize=17, leading=24, alignment=1),
        "facts": ParagraphStyle("facts", parent=base, fontSize=10.5, leading=16),
        "cell": base,
        "number": ParagraphStyle("number", parent=base, alignment=2),
        "small": ParagraphStyle("small", parent=base, fontSize=8.5, leading=12, textColor=colors.Color(0.3, 0.3, 0.3)),
    }


def _table(rows: list[list[object]], widths: list[float], font: str, *, total_row: bool) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1)
    style = [
        ("FONTNAME", (0, 0), (-1, -1), font),
        ("FONTSIZE", (0, 0), (-1, -1), 9.5),
        ("GRID", (0, 0), (-1, -1), 0.5, _GRID),
        ("BACKGROUND", (0, 0), (-1, 0), _HEAD),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 4),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
    ]
    if total_row:
        style.append(("BACKGROUND", (0, -1), (-1, -1), _HEAD))
    table.setStyle(TableStyle(style))
    return table


def _render(story: list[Flowable], *, title: str, subject: str, pagesize: tuple[float, float], font: str,
            printed_on: datetime.date) -> bytes:
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer, pagesize=pagesize, leftMargin=_MARGIN, rightMargin=_MARGIN, topMargin=_MARGIN,
        bottomMargin=_MARGIN + 12, title=title, subject=subject, author="duesflow", creator="duesflow",
        invariant=True,
    )

    def footer(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont(font, 8.5)
        canvas.setFillColor(colors.Color(0.35, 0.35, 0.35))
        canvas.drawString(_MARGIN, _MARGIN - 6, f"{title}　打印日期：{chinese_date(printed_on)}")
        canvas.drawRightString(pagesize[0] - _MARGIN, _MARGIN - 6, f"第 {doc.page} 页")
        canvas.restoreState()

    document.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


def render_transfer_list_pdf(content: TransferListContent, font_path: str | None = None) -> bytes:
    """The list of a transfer batch's payments with their total, in figures and in capitals."""
    font = _font_name(font_path)
    style = _styles(font)
    facts = [
        f"上缴单号：#{content.transfer_id}　　上缴日期：{chinese_date(content.sent_on)}",
        f"上缴单位：{content.from_org_name}",
        f"接收单位：{content.to_org_name}",
        f"银行转账凭证号：{content.bank_reference}",
        f"笔数：{len(content.lines)} 笔　　合计：{format_yuan(content.total)}（{PREFIX}{to_capitals(content.total)}）",
    ]
    if content.note:
        facts.append(f"备注：{content.note}")
    rows: list[list[object]] = [["序号", "款项编号", "党员姓名", "代收基层党委", "代收日期", "金额（元）"]]
    for index, line in enumerate(content.lines, start=1):
        rows.append([str(index), f"#{line.payment_id}", paragraph(line.member_name, style["cell"]),
                     paragraph(line.grassroots_org_name, style["cell"]), chinese_date(line.collected_on),
                     paragraph(format_yuan(line.amount), style["number"])])
    total = paragraph(format_yuan(content.total), style["number"])
    rows.append(["合计", "", f"{len(content.lines)} 笔", "", "", total])
    width = A4[0] - 2 * _MARGIN
    story: list[Flowable] = [
        paragraph(TRANSFER_LIST_TITLE, style["title"]), Spacer(1, 10),
        *[paragraph(text, style["facts"]) for text in facts], Spacer(1, 10),
        _table(rows, [0.07 * width, 0.11 * width, 0.15 * width, 0.33 * width, 0.16 * width, 0.18 * width], font,
               total_row=True),
        Spacer(1, 28),
        paragraph("经办人（签字）：　　　　　　　　复核人（签字）：　　　　　　　　上缴单位（盖章）", style["facts"]),
        Spacer(1, 8),
        paragraph("本清单随银行转账凭证一并交接收单位核对；接收单位按实收金额在系统中确认到账。", style["small"]),
    ]
    return _render(story, title=TRANSFER_LIST_TITLE, subject=f"汇总上缴单 #{content.transfer_id}",
                   pagesize=A4, font=font, printed_on=content.printed_on)


def render_collection_register_pdf(content: RegisterContent, font_path: str | None = None) -> bytes:
    """The grassroots committee's register: one line per live receipt, signed by the member on collection."""
    font = _font_name(font_path)
    style = _styles(font)
    pagesize = landscape(A4)
    rows: list[list[object]] = [["序号", "收据编号", "党员姓名", "金额（元）", "开具日期", "领取日期", "领取人签字",
                                 "备注"]]
    for index, line in enumerate(content.lines, start=1):
        remark = f"补发（第{line.version}版）" if line.version > 1 else ""
        rows.append([str(index), line.receipt_number, paragraph(line.member_name, style["cell"]),
                     paragraph(format_yuan(line.amount), style["number"]), chinese_date(line.issued_on),
                     chinese_date(line.delivered_on) if line.delivered_on else "",
                     paragraph(line.signed_by or "", style["cell"]), remark])
    if not content.lines:
        rows.append(["", "（没有需要登记的收据）", "", "", "", "", "", ""])
    width = pagesize[0] - 2 * _MARGIN
    scope = "（仅列未领取的收据）" if content.undelivered_only else ""
    story: list[Flowable] = [
        paragraph(REGISTER_TITLE, style["title"]), Spacer(1, 8),
        paragraph(f"基层党委：{content.org_name}　　共 {len(content.lines)} 份{scope}", style["facts"]),
        Spacer(1, 8),
        _table(rows, [0.05 * width, 0.12 * width, 0.13 * width, 0.12 * width, 0.13 * width, 0.13 * width,
                      0.17 * width, 0.15 * width], font, total_row=False),
        Spacer(1, 12),
        paragraph("党员本人领取收据时在“领取人签字”栏签名；他人代领的，注明代领人姓名及与党员的关系。"
                  "经办人随后在系统中登记领取日期和签收人。", style["small"]),
    ]
    return _render(story, title=REGISTER_TITLE, subject=content.org_name, pagesize=pagesize, font=font,
                   printed_on=content.printed_on)

"""The commemorative receipt as a one-page PDF (A5 landscape), drawn with reportlab's canvas.

Pure: takes a :class:`ReceiptContent`, returns bytes; no Flask, no database.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import io
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from reportlab import rl_config
from reportlab.lib.colors import Color
from reportlab.lib.pagesizes import A5, landscape
from reportlab.pdfbase import pdfmetrics, ttfonts
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from .capitals import PREFIX, format_yuan, to_capitals
from .qr import qr_matrix
from .typed_text import printable_content

TITLE = "中国共产党党员自愿多交党费纪念收据"
CENTRAL_ISSUER = "中共中央组织部"
VOID_MARK = "作废"
ACKNOWLEDGEMENT = ("您自愿一次性多交纳的党费，经党组织逐级上交，已如数收到。", "特发此据，以资纪念。")

PAGE_WIDTH, PAGE_HEIGHT = landscape(A5)
_MARGIN = 40  # left and right edge of the content, inside both borders
_QR_SIZE = 104  # points, quiet zone included
_QR_LEFT, _QR_BOTTOM = PAGE_WIDTH - _MARGIN - _QR_SIZE, PAGE_HEIGHT - 124 - _QR_SIZE
_TEXT_RIGHT = _QR_LEFT - 18  # the fields end before the QR code
_VALUE_LEFT = _MARGIN + 84
_SALUTATION_Y = PAGE_HEIGHT - 136
_FIELD_Y, _FIELD_STEP = _SALUTATION_Y - 80, 28  # baseline of the first field, distance between fields
_FIELDS = 4
_RULE_Y = PAGE_HEIGHT - 80  # under the title
# the seal is stamped over the issuer and the date, so the circle marking its place encloses them
_SEAL_X, _SEAL_Y, _SEAL_RADIUS = PAGE_WIDTH - _MARGIN - 90, 82, 48

# Streams Flate-compressed only, not also ASCII85-armoured: a third smaller, and without the optional rl_accel
# package reportlab's pure-Python ASCII85 encoder costs a tenth of a receipt (BENCHMARKS.md). Process-wide.
rl_config.useA85 = 0

_RED = Color(0.70, 0.08, 0.08)
_SEAL_RED = Color(0.80, 0.20, 0.20)
_INK = Color(0.12, 0.10, 0.09)
_LABEL = Color(0.42, 0.33, 0.27)
_RULE = Color(0.78, 0.66, 0.55)
_PAPER = Color(1.0, 0.985, 0.95)
_WHITE = Color(1, 1, 1)

_CID_FACE = "STSong-Light"


@dataclass(frozen=True)
class ReceiptContent:
    """Everything printed on one version of a receipt."""

    member_name: str
    amount: Decimal
    grassroots_org_name: str
    number: str
    verification_code: str
    issued_on: datetime.date
    verify_url: str
    issuer: str = CENTRAL_ISSUER
    version: int = 1
    voided: bool = False


class _SongUTF16(UnicodeCIDFont):
    """STSong-Light addressed through the UniGB-UTF16-H CMap instead of reportlab's UniGB-UCS2-H.

    reportlab already writes the text as UTF-16BE; only the CMap name changes. UCS2-H lacks glyphs
    that names need, notably the middle dot of 买买提·艾力 (U+00B7), which UTF16-H maps.
    """

    def __init__(self, name: str) -> None:
        super().__init__(_CID_FACE)
        self.encodingName = "UniGB-UTF16-H"
        self.name = self.fontName = name


_reportlab_to_unicode_cmap = ttfonts.makeToUnicodeCMap


def _to_unicode_cmap(font_name: str, subset: list[int]) -> str:
    """reportlab's ToUnicode CMap of an embedded TrueType subset, with characters beyond the BMP (𠮷, U+20BB7)
    written as UTF-16 surrogate pairs: reportlab writes <20BB7>, which readers reject, so such a name would show
    but not be extractable."""
    cmap = _reportlab_to_unicode_cmap(font_name, subset)
    for index, code_point in enumerate(subset):
        if code_point > 0xFFFF:
            utf16 = chr(code_point).encode("utf-16-be").hex().upper()
            cmap = cmap.replace(f"<{index:02X}> <{code_point:04X}>", f"<{index:02X}> <{utf16}>")
    return cmap


ttfonts.makeToUnicodeCMap = _to_unicode_cmap  # reportlab's TTFont.addObjects looks the function up here


@functools.cache
def _font_name(font_path: str | None) -> str:
    """Register the receipt font once per process and return its reportlab name."""
    if font_path is None:
        name = "DuesflowSong"
        pdfmetrics.registerFont(_SongUTF16(name))
        return name
    name = "Duesflow-" + hashlib.sha1(font_path.encode()).hexdigest()[:10]
    # subfontIndex picks the first face of a .ttc collection and is ignored for a .ttf
    pdfmetrics.registerFont(TTFont(name, font_path, subfontIndex=0))
    return name


def _cid_can_render(char: str) -> bool:
    """Approximate Adobe-GB1 coverage through UniGB-UTF16-H: GB 18030-2000 two-byte characters
    (the GBK repertoire, user-defined areas excluded), CJK Extension A and printable ASCII.

    Checked against the CMap itself: no character accepted here lacks a glyph; about 1,700 rare
    symbols and radicals that do have one are refused, which is harmless for names.
    """
    code_point = ord(char)
    if 0x20 <= code_point < 0x7F:
        return True
    if 0x3400 <= code_point <= 0x4DB5:
        return True
    if unicodedata.category(char) in ("Co", "Cs", "Cc", "Cn"):
        return False
    return len(char.encode("gb18030")) == 2


def missing_glyphs(text: str, font_path: str | None) -> set[str]:
    """Characters of ``text`` the receipt font cannot show (``font_path`` None: the built-in CID font).

    Registration uses this to refuse member names the receipt could not print.
    """
    if font_path is None:
        return {char for char in text if not _cid_can_render(char)}
    char_to_glyph = pdfmetrics.getFont(_font_name(font_path)).face.charToGlyph
    return {char for char in text if char_to_glyph.get(ord(char), 0) == 0}


def chinese_date(day: datetime.date) -> str:
    """``2026-11-26`` → ``2026年11月26日``."""
    return f"{day.year}年{day.month}月{day.day}日"


def _fitted(text: str, font: str, size: float, max_width: float) -> float:
    """The largest font size ≤ ``size`` at which ``text`` fits in ``max_width``."""
    width = pdfmetrics.stringWidth(text, font, size)
    return size if width <= max_width else size * max_width / width


def _dark_runs(row: bytes | bytearray) -> Iterator[tuple[int, int]]:
    """(start, length) of each horizontal run of dark modules in one QR row."""
    start: int | None = None
    for column, dark in enumerate(row):
        if dark and start is None:
            start = column
        elif not dark and start is not None:
            yield start, column - start
            start = None
    if start is not None:
        yield start, len(row) - start


def _draw_qr(canvas: Canvas, url: str, left: float, bottom: float, size: float) -> None:
    """Draw a QR code of ``url`` as filled rectangles, one per horizontal run of dark modules."""
    matrix = qr_matrix(url)  # a fixed mask and cached patterns: ~0.07 ms, against ~6 ms for segno.make
    quiet = 4  # modules of white border, as the QR standard asks
    module = size / (len(matrix) + 2 * quiet)
    canvas.setFillColor(_WHITE)
    canvas.rect(left, bottom, size, size, stroke=0, fill=1)
    canvas.saveState()
    canvas.setFillColor(Color(0, 0, 0))
    # one unit = one module, origin at the top-left module: the rectangles are small integers,
    # exact and far cheaper to write than through reportlab's float formatting of path.rect
    canvas.transform(module, 0, 0, module, left + quiet * module, bottom + size - quiet * module)
    rectangles = [
        f"{start} {-row_number - 1} {length} 1 re"
        for row_number, row in enumerate(matrix)
        for start, length in _dark_runs(row)
    ]
    canvas.addLiteral("\n".join(rectangles) + "\nf")
    canvas.restoreState()


@functools.cache
def _operators(draw: Callable[[Canvas], None]) -> str:
    """The PDF operators ``draw`` writes, made once per process and copied into every receipt after that.

    For the fixed artwork (no text, no font): drawn anew it would cost as much as all the text of the page,
    since reportlab formats every coordinate and colour in pure Python.
    """
    scratch = Canvas(io.BytesIO(), pagesize=(PAGE_WIDTH, PAGE_HEIGHT))
    first = len(scratch._code)  # reportlab collects the page's operators in this list
    draw(scratch)
    return "\n".join(["q", *scratch._code[first:], "Q"])


def _draw_artwork(canvas: Canvas) -> None:
    """Everything that is the same on every receipt and is not text."""
    canvas.addLiteral(_operators(_draw_frame))
    canvas.addLiteral(_operators(_draw_rules))


def _draw_rules(canvas: Canvas) -> None:
    """The rule with a diamond under the title, the ruled lines of the fields and the seal's dashed circle."""
    canvas.setStrokeColor(_RED)
    canvas.setLineWidth(0.7)
    canvas.line(_MARGIN + 70, _RULE_Y, PAGE_WIDTH / 2 - 9, _RULE_Y)
    canvas.line(PAGE_WIDTH / 2 + 9, _RULE_Y, PAGE_WIDTH - _MARGIN - 70, _RULE_Y)
    canvas.setFillColor(_RED)
    _diamond(canvas, PAGE_WIDTH / 2, _RULE_Y, 3.5)
    canvas.setStrokeColor(_RULE)
    canvas.setLineWidth(0.5)
    for field in range(_FIELDS):
        y = _FIELD_Y - field * _FIELD_STEP - 5
        canvas.line(_VALUE_LEFT - 4, y, _TEXT_RIGHT, y)
    canvas.setStrokeColor(_SEAL_RED)
    canvas.setLineWidth(0.9)
    canvas.setDash(3, 2)
    canvas.circle(_SEAL_X, _SEAL_Y, _SEAL_RADIUS, stroke=1, fill=0)
    canvas.setDash()


def _draw_frame(canvas: Canvas) -> None:
    """Paper tint, the double border and the corner ornaments."""
    canvas.setFillColor(_PAPER)
    canvas.rect(0, 0, PAGE_WIDTH, PAGE_HEIGHT, stroke=0, fill=1)
    canvas.setStrokeColor(_RED)
    canvas.setLineWidth(2.4)
    canvas.rect(14, 14, PAGE_WIDTH - 28, PAGE_HEIGHT - 28, stroke=1, fill=0)
    canvas.setLineWidth(0.8)
    canvas.rect(20, 20, PAGE_WIDTH - 40, PAGE_HEIGHT - 40, stroke=1, fill=0)
    canvas.setFillColor(_RED)
    arm = 18
    for x, y, dx, dy in (
        (26, 26, 1, 1),
        (PAGE_WIDTH - 26, 26, -1, 1),
        (26, PAGE_HEIGHT - 26, 1, -1),
        (PAGE_WIDTH - 26, PAGE_HEIGHT - 26, -1, -1),
    ):
        canvas.setLineWidth(1.2)
        canvas.line(x, y, x + dx * arm, y)
        canvas.line(x, y, x, y + dy * arm)
        canvas.setLineWidth(0.6)
        canvas.line(x + dx * 4, y + dy * 4, x + dx * (arm - 6), y + dy * 4)
        canvas.line(x + dx * 4, y + dy * 4, x + dx * 4, y + dy * (arm - 6))
        _diamond(canvas, x + dx * 4, y + dy * 4, 2.2)


def _diamond(canvas: Canvas, x: float, y: float, radius: float) -> None:
    path = canvas.beginPath()
    path.moveTo(x, y + radius)
    path.lineTo(x + radius, y)
    path.lineTo(x, y - radius)
    path.lineTo(x - radius, y)
    path.close()
    canvas.drawPath(path, stroke=0, fill=1)


def _draw_bold(canvas: Canvas, text: str, font: str, size: float, x: float, y: float, color: Color) -> None:
    """Draw ``text`` filled and stroked for weight: the CID font has no bold face."""
    canvas.saveState()  # restores the text render mode, which would otherwise apply to later text
    text_object = canvas.beginText(x, y)
    text_object.setTextRenderMode(2)
    text_object.setFont(font, size)
    text_object.setFillColor(color)
    canvas.setStrokeColor(color)
    canvas.setLineWidth(size / 45)
    text_object.textOut(text)
    canvas.drawText(text_object)
    canvas.restoreState()


def _draw_title(canvas: Canvas, font: str) -> None:
    """The red title (its rule with a diamond is part of the artwork)."""
    size = _fitted(TITLE, font, 21, PAGE_WIDTH - 2 * _MARGIN - 40)
    width = pdfmetrics.stringWidth(TITLE, font, size)
    _draw_bold(canvas, TITLE, font, size, (PAGE_WIDTH - width) / 2, PAGE_HEIGHT - 64, _RED)


def _draw_field(canvas: Canvas, font: str, label: str, value: str, field: int, size: float) -> None:
    """Label and value of the ``field``-th field on its ruled line, the value shrunk to fit before the QR code."""
    y = _FIELD_Y - field * _FIELD_STEP
    canvas.setFillColor(_LABEL)
    canvas.setFont(font, 11)
    canvas.drawString(_MARGIN + 8, y, label)
    canvas.setFillColor(_INK)
    canvas.setFont(font, _fitted(value, font, size, _TEXT_RIGHT - _VALUE_LEFT - 4))
    canvas.drawString(_VALUE_LEFT, y, value)


def _draw_void_mark(canvas: Canvas, font: str) -> None:
    """A large, translucent 作废 stamp across the middle of the page."""
    canvas.saveState()
    canvas.translate(PAGE_WIDTH / 2 - 40, PAGE_HEIGHT / 2 - 10)
    canvas.rotate(18)
    canvas.setFillAlpha(0.55)
    canvas.setStrokeAlpha(0.7)
    canvas.setFillColor(_RED)
    canvas.setStrokeColor(_RED)
    canvas.setLineWidth(3)
    canvas.roundRect(-105, -40, 210, 100, 8, stroke=1, fill=0)
    canvas.setFont(font, 80)
    canvas.drawCentredString(0, -15, VOID_MARK)
    canvas.restoreState()


def render_receipt_pdf(content: ReceiptContent, font_path: str | None = None) -> bytes:
    """Render one version of a commemorative receipt as PDF bytes.

    ``font_path`` is a TrueType font (.ttf, or the first face of a .ttc), embedded as a subset; without
    it the text uses reportlab's built-in CID font STSong-Light, which viewers supply themselves.
    The output depends only on the arguments (reportlab's invariant mode, dated with ``issued_on``),
    so rendering the same receipt again gives the same bytes.
    """
    content = printable_content(content, "member_name", "grassroots_org_name")
    font = _font_name(font_path)
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=(PAGE_WIDTH, PAGE_HEIGHT), invariant=True)
    canvas.setTitle(f"{TITLE} {content.number}")
    canvas.setSubject(f"{content.member_name} {format_yuan(content.amount)}")
    canvas.setAuthor(content.issuer)
    canvas.setCreator("duesflow")
    # invariant mode would date every file 2000-01-01; the issue date (Beijing time) is the true one
    canvas.setDateFormatter(lambda *_: content.issued_on.strftime("D:%Y%m%d000000+08'00'"))

    _draw_artwork(canvas)
    _draw_title(canvas, font)

    canvas.setFillColor(_INK)
    canvas.setFont(font, 10.5)
    canvas.drawRightString(PAGE_WIDTH - _MARGIN, PAGE_HEIGHT - 102, f"编号：{content.number}")
    if content.version > 1:
        canvas.setFillColor(_RED)
        canvas.drawString(_MARGIN, PAGE_HEIGHT - 102, f"补发（第{content.version}版）")

    salutation_y = _SALUTATION_Y
    name_size = _fitted(content.member_name, font, 19, _TEXT_RIGHT - _MARGIN - 60)
    _draw_bold(canvas, content.member_name, font, name_size, _MARGIN, salutation_y, _INK)
    canvas.setFillColor(_INK)
    canvas.setFont(font, 14)
    canvas.drawString(
        _MARGIN + pdfmetrics.stringWidth(content.member_name, font, name_size) + 6, salutation_y, "同志："
    )
    canvas.setFont(font, 12)
    for line_number, line in enumerate(ACKNOWLEDGEMENT):
        canvas.drawString(_MARGIN + 24, salutation_y - 24 - 18 * line_number, line)

    _draw_field(canvas, font, "金额（小写）", format_yuan(content.amount), 0, 16)
    _draw_field(canvas, font, "金额（大写）", PREFIX + to_capitals(content.amount), 1, 14)
    _draw_field(canvas, font, "代收党组织", content.grassroots_org_name, 2, 12.5)
    _draw_field(canvas, font, "验证码", content.verification_code, 3, 13)

    _draw_qr(canvas, content.verify_url, _QR_LEFT, _QR_BOTTOM, _QR_SIZE)
    canvas.setFillColor(_LABEL)
    canvas.setFont(font, 9)
    canvas.drawCentredString(_QR_LEFT + _QR_SIZE / 2, _QR_BOTTOM - 13, "扫码核验收据真伪")

    seal_x, seal_y, seal_radius = _SEAL_X, _SEAL_Y, _SEAL_RADIUS  # its dashed circle is part of the artwork
    canvas.setFillColor(_INK)
    canvas.setFont(font, _fitted(content.issuer, font, 12, 1.8 * seal_radius))
    canvas.drawCentredString(seal_x, seal_y + 5, content.issuer)
    issued_on = chinese_date(content.issued_on)
    canvas.setFont(font, _fitted(issued_on, font, 11, 1.7 * seal_radius))
    canvas.drawCentredString(seal_x, seal_y - 14, issued_on)

    canvas.setFillColor(_LABEL)
    note_right = seal_x - 60
    canvas.setFont(font, 8.5)
    canvas.drawString(_MARGIN, 50, "扫描二维码或访问以下地址，可核验本收据：")
    canvas.setFont(font, _fitted(content.verify_url, font, 8.5, note_right - _MARGIN))
    canvas.drawString(_MARGIN, 37, content.verify_url)

    if content.voided:
        _draw_void_mark(canvas, font)

    canvas.showPage()
    canvas.save()
    return buffer.getvalue()

"""The commemorative receipt as a one-page PDF (A5 landscape), drawn with reportlab's canvas.

Pure: takes a :class:`ReceiptContent`, returns bytes; no Flask, no database.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import io
import itertools
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import reportlab
from reportlab import rl_config
from reportlab.lib.colors import Color
from reportlab.lib.pagesizes import A5, landscape
from reportlab.pdfbase import pdfmetrics, ttfonts
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from .capitals import PREFIX, format_yuan, to_capitals
from .qr import qr_matrix
from .signature import SigningKey, add_signature_field, short_fingerprint, sign_pdf
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
# the signature block, under the last field and left of the lower right corner ornament
_BLOCK_LEFT, _BLOCK_BOTTOM, _BLOCK_RIGHT, _BLOCK_TOP = 300, 34, PAGE_WIDTH - 52, 106
SIGNED_STATEMENT = f"本收据已由{CENTRAL_ISSUER}数字签名"

# Streams Flate-compressed only, not also ASCII85-armoured: a third smaller, and without the optional rl_accel
# package reportlab's pure-Python ASCII85 encoder costs a tenth of a receipt (BENCHMARKS.md). Process-wide.
rl_config.useA85 = 0

_RED = Color(0.70, 0.08, 0.08)
_INK = Color(0.12, 0.10, 0.09)
_LABEL = Color(0.42, 0.33, 0.27)
_RULE = Color(0.78, 0.66, 0.55)
_PAPER = Color(1.0, 0.985, 0.95)
_WHITE = Color(1, 1, 1)

_CID_FACE = "STSong-Light"
_LATIN_FONT_FILE = Path(reportlab.__file__).parent / "fonts" / "Vera.ttf"  # Bitstream Vera, shipped with reportlab
_LATIN = frozenset(chr(code) for code in range(0x20, 0x7F)) | {"¥"}
_BEIJING = ZoneInfo("Asia/Shanghai")


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

    @property
    def verify_home(self) -> str:
        """The public verification page (``/verify``), where the PDF itself can be uploaded."""
        return self.verify_url.split("/verify/", 1)[0] + "/verify"


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


@dataclass(frozen=True)
class _Faces:
    """The fonts of a receipt: a configured TrueType font for everything; without one, the built-in CID font for
    Chinese and Vera, embedded, for Latin letters, digits and ¥, which viewers would otherwise substitute (cramped
    digits in some, wide ones in others)."""

    main: str
    latin: str | None = None

    def runs(self, text: str) -> Iterator[tuple[str, str]]:
        """(font, text) of each run of ``text`` that one font draws."""
        if self.latin is None:
            yield self.main, text
            return
        latin = self.latin
        for is_latin, chars in itertools.groupby(text, _LATIN.__contains__):
            yield (latin if is_latin else self.main), "".join(chars)

    def width(self, text: str, size: float) -> float:
        return sum(pdfmetrics.stringWidth(run, font, size) for font, run in self.runs(text))

    def fitted(self, text: str, size: float, max_width: float) -> float:
        """The largest font size ≤ ``size`` at which ``text`` fits in ``max_width``."""
        width = self.width(text, size)
        return size if width <= max_width else size * max_width / width


@functools.cache
def _faces(font_path: str | None) -> _Faces:
    if font_path is not None:
        return _Faces(_font_name(font_path))
    latin = "DuesflowVera"
    pdfmetrics.registerFont(TTFont(latin, str(_LATIN_FONT_FILE)))
    return _Faces(_font_name(None), latin)


def _draw_text(canvas: Canvas, faces: _Faces, text: str, x: float, y: float, size: float, color: Color, *,
               align: str = "left", bold: bool = False) -> None:
    """Draw ``text`` each run in its font; ``align`` left, centre or right of ``x``. ``bold`` fills and strokes
    the glyphs for weight: the CID font has no bold face."""
    if align != "left":
        x -= faces.width(text, size) / (2 if align == "centre" else 1)
    canvas.setFillColor(color)
    text_object = canvas.beginText(x, y)
    if bold:
        canvas.saveState()  # restores the text render mode, which would otherwise apply to later text
        text_object.setTextRenderMode(2)
        canvas.setStrokeColor(color)
        canvas.setLineWidth(size / 45)
    for font, run in faces.runs(text):
        text_object.setFont(font, size)
        text_object.textOut(run)
    canvas.drawText(text_object)
    if bold:
        canvas.restoreState()


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
    """The rule with a diamond under the title, the ruled lines of the fields and the signature block's frame."""
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
    canvas.setFillColor(_WHITE)
    canvas.setLineWidth(0.8)
    canvas.roundRect(_BLOCK_LEFT, _BLOCK_BOTTOM, _BLOCK_RIGHT - _BLOCK_LEFT, _BLOCK_TOP - _BLOCK_BOTTOM, 4,
                     stroke=1, fill=1)
    canvas.setFillColor(_RED)  # a red bar down the block's left edge
    canvas.rect(_BLOCK_LEFT + 6, _BLOCK_BOTTOM + 8, 2.2, _BLOCK_TOP - _BLOCK_BOTTOM - 16, stroke=0, fill=1)


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


def _draw_title(canvas: Canvas, faces: _Faces) -> None:
    """The red title (its rule with a diamond is part of the artwork)."""
    size = faces.fitted(TITLE, 21, PAGE_WIDTH - 2 * _MARGIN - 40)
    _draw_text(canvas, faces, TITLE, PAGE_WIDTH / 2, PAGE_HEIGHT - 64, size, _RED, align="centre", bold=True)


def _draw_field(canvas: Canvas, faces: _Faces, label: str, value: str, field: int, size: float) -> None:
    """Label and value of the ``field``-th field on its ruled line, the value shrunk to fit before the QR code."""
    y = _FIELD_Y - field * _FIELD_STEP
    _draw_text(canvas, faces, label, _MARGIN + 8, y, 11, _LABEL)
    _draw_text(canvas, faces, value, _VALUE_LEFT, y, faces.fitted(value, size, _TEXT_RIGHT - _VALUE_LEFT - 4), _INK)


_BLOCK_STYLES = ((10, _RED, True), (8.5, _INK, False), (8.5, _INK, False), (8, _LABEL, False), (8, _LABEL, False))


def signature_block_lines(content: ReceiptContent, key: SigningKey) -> tuple[str, ...]:
    """The text of the signature block, line by line."""
    return (
        SIGNED_STATEMENT,
        f"签发单位：{content.issuer}　　签发日期：{chinese_date(content.issued_on)}",
        f"签名证书指纹（SHA-256）：{short_fingerprint(key.fingerprint)}",
        f"核验：在 {content.verify_home} 上传本PDF文件，",
        "或在PDF阅读器中查看签名（无需联网）",
    )


def _draw_signature_block(canvas: Canvas, faces: _Faces, content: ReceiptContent, key: SigningKey) -> None:
    """Who signed, when, the certificate's fingerprint and where to check it: a digital signature, not a seal."""
    left, width = _BLOCK_LEFT + 16, _BLOCK_RIGHT - _BLOCK_LEFT - 24
    y = _BLOCK_TOP - 17
    for text, (size, color, bold) in zip(signature_block_lines(content, key), _BLOCK_STYLES, strict=True):
        _draw_text(canvas, faces, text, left, y, faces.fitted(text, size, width), color, bold=bold)
        y -= 16 if bold else 12.5


def _draw_void_mark(canvas: Canvas, faces: _Faces) -> None:
    """A large, translucent 作废 stamp across the middle of the page."""
    canvas.saveState()
    canvas.translate(PAGE_WIDTH / 2 - 40, PAGE_HEIGHT / 2 - 10)
    canvas.rotate(18)
    canvas.setFillAlpha(0.55)
    canvas.setStrokeAlpha(0.7)
    canvas.setStrokeColor(_RED)
    canvas.setLineWidth(3)
    canvas.roundRect(-105, -40, 210, 100, 8, stroke=1, fill=0)
    _draw_text(canvas, faces, VOID_MARK, 0, -15, 80, _RED, align="centre")
    canvas.restoreState()


def receipt_identity(content: ReceiptContent) -> dict[str, str | int]:
    """What the signature dictionary of a receipt's PDF says it is (read back by ``verify-document``)."""
    return {"DuesflowReceipt": content.number, "DuesflowVersion": content.version}


def render_receipt_pdf(content: ReceiptContent, key: SigningKey, font_path: str | None = None) -> bytes:
    """Render one version of a commemorative receipt as PDF bytes, signed with ``key`` (PAdES B-B).

    ``font_path`` is a TrueType font (.ttf, or the first face of a .ttc), embedded as a subset; without
    it the Chinese text uses reportlab's built-in CID font STSong-Light, which viewers supply themselves, and
    Latin letters and digits Vera, embedded. Apart from the signature (its time and, for ECDSA, its random
    value) the output depends only on the arguments (reportlab's invariant mode, dated with ``issued_on``).
    """
    content = printable_content(content, "member_name", "grassroots_org_name")
    faces = _faces(font_path)
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=(PAGE_WIDTH, PAGE_HEIGHT), invariant=True)
    canvas.setTitle(f"{TITLE} {content.number}")
    canvas.setSubject(f"{content.member_name} {format_yuan(content.amount)}")
    canvas.setAuthor(content.issuer)
    canvas.setCreator("duesflow")
    # invariant mode would date every file 2000-01-01; the issue date (Beijing time) is the true one
    canvas.setDateFormatter(lambda *_: content.issued_on.strftime("D:%Y%m%d000000+08'00'"))

    _draw_artwork(canvas)
    _draw_title(canvas, faces)

    _draw_text(canvas, faces, f"编号：{content.number}", PAGE_WIDTH - _MARGIN, PAGE_HEIGHT - 102, 10.5, _INK,
               align="right")
    if content.version > 1:
        _draw_text(canvas, faces, f"补发（第{content.version}版）", _MARGIN, PAGE_HEIGHT - 102, 10.5, _RED)

    salutation_y = _SALUTATION_Y
    name_size = faces.fitted(content.member_name, 19, _TEXT_RIGHT - _MARGIN - 60)
    _draw_text(canvas, faces, content.member_name, _MARGIN, salutation_y, name_size, _INK, bold=True)
    _draw_text(canvas, faces, "同志：", _MARGIN + faces.width(content.member_name, name_size) + 6, salutation_y, 14,
               _INK)
    for line_number, line in enumerate(ACKNOWLEDGEMENT):
        _draw_text(canvas, faces, line, _MARGIN + 24, salutation_y - 24 - 18 * line_number, 12, _INK)

    _draw_field(canvas, faces, "金额（小写）", format_yuan(content.amount), 0, 16)
    _draw_field(canvas, faces, "金额（大写）", PREFIX + to_capitals(content.amount), 1, 14)
    _draw_field(canvas, faces, "代收党组织", content.grassroots_org_name, 2, 12.5)
    _draw_field(canvas, faces, "验证码", content.verification_code, 3, 13)

    _draw_qr(canvas, content.verify_url, _QR_LEFT, _QR_BOTTOM, _QR_SIZE)
    _draw_text(canvas, faces, "扫码核验收据真伪", _QR_LEFT + _QR_SIZE / 2, _QR_BOTTOM - 13, 9, _LABEL, align="centre")

    _draw_signature_block(canvas, faces, content, key)

    note_right = _BLOCK_LEFT - 12
    _draw_text(canvas, faces, "扫描二维码或访问以下地址，可核验本收据：", _MARGIN, 50, 8.5, _LABEL)
    _draw_text(canvas, faces, content.verify_url, _MARGIN, 37,
               faces.fitted(content.verify_url, 8.5, note_right - _MARGIN), _LABEL)

    if content.voided:
        _draw_void_mark(canvas, faces)

    signed_at = datetime.datetime.now(_BEIJING).replace(microsecond=0)
    reason = f"{content.issuer}签发纪念收据 {content.number}（第{content.version}版）"
    add_signature_field(
        canvas, key, reason=reason, signed_at=signed_at, rect=(_BLOCK_LEFT, _BLOCK_BOTTOM, _BLOCK_RIGHT, _BLOCK_TOP),
        extra=receipt_identity(content),
    )
    canvas.showPage()
    canvas.save()
    return sign_pdf(buffer.getvalue(), key)

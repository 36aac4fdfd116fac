"""The commemorative receipt PDF: extractable Chinese text, reissue and void marks, QR code, fonts."""

import dataclasses
import datetime
import io
import re
from decimal import Decimal
from pathlib import Path

import pytest
from pypdf import PdfReader
from signing_keys import render_key

from duesflow.receipts.pdf import ReceiptContent, missing_glyphs, render_receipt_pdf

TTF_CANDIDATES = [
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
]
TTF_PATH = next((path for path in TTF_CANDIDATES if Path(path).exists()), None)
needs_ttf = pytest.mark.skipif(TTF_PATH is None, reason="no CJK TrueType font installed")


@pytest.fixture
def content() -> ReceiptContent:
    return ReceiptContent(
        member_name="欧阳晓明",
        amount=Decimal("12345.67"),
        grassroots_org_name="中共四平市铁东区平东街道工作委员会",
        number="2026-000123",
        verification_code="K7MPQ2XW",
        issued_on=datetime.date(2026, 11, 26),
        verify_url="https://duesflow.example.cn/verify/2026-000123?code=K7MPQ2XW",
    )


def page_text(pdf: bytes) -> str:
    return PdfReader(io.BytesIO(pdf)).pages[0].extract_text()


def content_stream(pdf: bytes) -> bytes:
    return PdfReader(io.BytesIO(pdf)).pages[0].get_contents().get_data()


def assert_receipt_text(text: str) -> None:
    for expected in (
        "欧阳晓明",
        "¥12,345.67",
        "人民币壹万贰仟叁佰肆拾伍元陆角柒分",
        "中共四平市铁东区平东街道工作委员会",
        "2026-000123",
        "K7MPQ2XW",
        "中共中央组织部",
        "2026年11月26日",
    ):
        assert expected in text


def test_cid_receipt_text_is_extractable(content: ReceiptContent) -> None:
    pdf = render_receipt_pdf(content, render_key())

    assert pdf.startswith(b"%PDF")
    assert_receipt_text(page_text(pdf))


def test_receipt_is_one_a5_landscape_page_with_a_title(content: ReceiptContent) -> None:
    reader = PdfReader(io.BytesIO(render_receipt_pdf(content, render_key())))

    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 420)
    assert "2026-000123" in reader.metadata.title
    assert "纪念收据" in reader.metadata.title


def test_first_version_says_nothing_of_a_reissue_or_void(content: ReceiptContent) -> None:
    text = page_text(render_receipt_pdf(content, render_key()))

    assert "补发" not in text
    assert "作废" not in text


def test_reissued_receipt_says_reissue_and_its_version(content: ReceiptContent) -> None:
    text = page_text(render_receipt_pdf(dataclasses.replace(content, version=2), render_key()))

    assert "补发（第2版）" in text
    assert_receipt_text(text)


def test_voided_receipt_is_marked_void(content: ReceiptContent) -> None:
    text = page_text(render_receipt_pdf(dataclasses.replace(content, voided=True), render_key()))

    assert "作废" in text


def test_qr_code_is_drawn_as_rectangles(content: ReceiptContent) -> None:
    stream = content_stream(render_receipt_pdf(content, render_key()))

    assert len(re.findall(rb" re\b", stream)) > 50


def test_rendering_is_repeatable_but_for_the_signature(content: ReceiptContent) -> None:
    first, second = (render_receipt_pdf(content, render_key()) for _ in range(2))

    assert content_stream(first) == content_stream(second)


def test_middle_dot_names_render_with_the_cid_font(content: ReceiptContent) -> None:
    pdf = render_receipt_pdf(dataclasses.replace(content, member_name="买买提·艾力"), render_key())

    assert "买买提·艾力" in page_text(pdf)
    assert b"/UniGB-UTF16-H" in pdf  # the UCS2 CMap has no glyph for U+00B7


@pytest.mark.parametrize("name", ["张三", "欧阳晓明", "买买提·艾力", "王䶮", "Anna Li"])
def test_cid_font_shows_ordinary_names(name: str) -> None:
    assert missing_glyphs(name, None) == set()


@pytest.mark.parametrize("char", ["𠀀", "\ue000", "\u0000", "ก"])
def test_cid_font_reports_characters_it_cannot_show(char: str) -> None:
    assert missing_glyphs(f"张{char}", None) == {char}


@needs_ttf
def test_ttf_receipt_embeds_the_font_and_text_is_extractable(content: ReceiptContent) -> None:
    pdf = render_receipt_pdf(content, render_key(), font_path=TTF_PATH)

    assert b"/FontFile2" in pdf
    assert_receipt_text(page_text(pdf))


@needs_ttf
def test_ttf_missing_glyphs_come_from_the_font_cmap() -> None:
    assert missing_glyphs("张三·李", TTF_PATH) == set()
    assert missing_glyphs("张\ue000", TTF_PATH) == {"\ue000"}

"""Finding 2 of issue 14: text people typed prints literally in every PDF (receipt, slip, transfer list,
collection register); no tag of it pulls in a file, makes a link or breaks the document."""

from __future__ import annotations

import datetime
import io
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import advance
from PIL import Image
from pypdf import PdfReader
from signing_keys import render_key

from duesflow.receipts.pdf import ReceiptContent, render_receipt_pdf
from duesflow.receipts.registers import (
    RegisterContent,
    RegisterLine,
    TransferListContent,
    TransferListLine,
    render_collection_register_pdf,
    render_transfer_list_pdf,
)
from duesflow.receipts.slip import SlipContent, render_slip_pdf
from duesflow.receipts.typed_text import printable

DAY = datetime.date(2026, 11, 26)


@pytest.fixture(scope="module")
def server_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A file of the server that a markup tag could pull into a PDF."""
    path = tmp_path_factory.mktemp("server") / "secret.png"
    Image.new("RGB", (8, 8), "red").save(path)
    return str(path)


HOSTILE = [
    "A<B",
    '<img src="{image}" width="40" height="40"/>',
    '<a href="javascript:alert(1)">点我</a>',
    '<link href="file:///etc/passwd">链接</link>',
    "R&D 部 &amp; &lt; &nbsp;",
    "<para>段落</para>",
    "<b>未闭合",
    "</i>多余的闭合",
    '<font name="Courier" color="red">换字体</font>',
    "控制\x07字符\x1b[31m\r\n换行\t制表\x7f",
]


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def pdf_text(pdf: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def links_and_images(pdf: bytes) -> tuple[int, int]:
    """(link annotations, image XObjects) over every page."""
    links = images = 0
    for page in PdfReader(io.BytesIO(pdf)).pages:
        links += sum(1 for annot in page.get("/Annots") or [] if annot.get_object().get("/Subtype") == "/Link")
        resources = page.get("/Resources") or {}
        xobjects = resources.get("/XObject") or {}
        images += sum(1 for ref in xobjects.values() if ref.get_object().get("/Subtype") == "/Image")
    return links, images


def _receipt(text: str) -> bytes:
    return render_receipt_pdf(ReceiptContent(
        member_name=text, amount=Decimal("1000.00"), grassroots_org_name=text, number="2026-000001",
        verification_code="K7MPQ2XW", issued_on=DAY, verify_url="http://testserver/verify/2026-000001?code=K7MPQ2XW"),
        render_key())


def _slip(text: str) -> bytes:
    return render_slip_pdf(SlipContent(payment_id=1, member_name=text, amount=Decimal("1000.00"), collected_on=DAY,
                                       method="cash", grassroots_org_name=text, printed_on=DAY))


def _transfer_list(text: str) -> bytes:
    line = TransferListLine(payment_id=1, member_name=text, grassroots_org_name=text, collected_on=DAY,
                            amount=Decimal("1000.00"))
    return render_transfer_list_pdf(TransferListContent(
        transfer_id=1, from_org_name=text, to_org_name=text, bank_reference=text, note=text, sent_on=DAY,
        lines=[line], total=Decimal("1000.00"), printed_on=DAY))


def _register(text: str) -> bytes:
    line = RegisterLine(receipt_number="2026-000001", member_name=text, amount=Decimal("1000.00"), issued_on=DAY,
                        version=1, delivered_on=DAY, signed_by=text)
    return render_collection_register_pdf(RegisterContent(org_name=text, lines=[line], printed_on=DAY))


RENDERERS: dict[str, Callable[[str], bytes]] = {
    "receipt": _receipt, "slip": _slip, "transfer_list": _transfer_list, "collection_register": _register,
}


@pytest.mark.parametrize("document", RENDERERS)
@pytest.mark.parametrize("hostile", HOSTILE)
def test_every_pdf_prints_typed_text_literally(document: str, hostile: str, server_image: str) -> None:
    text = hostile.format(image=server_image)
    render = RENDERERS[document]
    pdf = render(text)
    assert _squeezed(printable(text)) in _squeezed(pdf_text(pdf))
    assert links_and_images(pdf) == links_and_images(render("张建国"))  # no link, no image beyond its own


def test_a_transfer_note_with_markup_prints_literally_through_the_api(api, world, client) -> None:
    ids = [api.record(world.members["zhang"])["id"]]
    note = '<a href="javascript:x">A<B</a> & <img src="/etc/passwd"/>'
    transfer = api.post("/transfers", "clerk", json={"payment_ids": ids, "bank_reference": "<b>CN-1&2", "note": note})
    assert transfer.status_code == 201, transfer.json
    for user in ("clerk", "tiedong", "central"):
        response = api.get(f"/transfers/{transfer.json['id']}/list.pdf", user)
        assert response.status_code == 200 and response.mimetype == "application/pdf"
        text = _squeezed(pdf_text(response.data))
        assert _squeezed(note) in text and "<b>CN-1&2" in text
        assert links_and_images(response.data) == (0, 0)


def test_an_org_name_with_markup_prints_literally_in_the_register(api, world) -> None:
    payment = api.record(world.members["zhang"])
    advance(api, payment["id"], 4)
    api.act(payment["id"], "confirm", "central")
    name = "北门<b>党工委 & A<B"
    renamed = api.patch(f"/orgs/{world.orgs['beimen'].id}", "admin", json={"name": name})
    assert renamed.status_code == 200, renamed.json
    response = api.get(f"/orgs/{world.orgs['beimen'].id}/collection-register.pdf", "clerk")
    assert response.status_code == 200
    assert _squeezed(name) in _squeezed(pdf_text(response.data))
    assert links_and_images(response.data) == (0, 0)


def test_the_typed_text_module_is_the_only_way_typed_text_meets_a_paragraph() -> None:
    receipts = Path(__file__).resolve().parent.parent / "duesflow" / "receipts"
    for module in receipts.glob("*.py"):
        if module.name != "typed_text.py":
            assert "Paragraph(" not in module.read_text(encoding="utf-8").replace("Paragraph(TITLE", ""), module.name

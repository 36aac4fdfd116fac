"""The receipt's QR code, read back from the picture: it opens the public verification page (SPEC §5); and the
fast encoder behind it draws exactly the symbol segno would."""

from __future__ import annotations

import datetime
import random
import string
from decimal import Decimal
from urllib.parse import urlsplit

import pypdfium2
import pytest
import segno
import segno.encoder
import zxingcpp
from conftest import advance
from signing_keys import render_key

from duesflow.receipts.pdf import ReceiptContent, render_receipt_pdf
from duesflow.receipts.qr import MASK, MAX_VERSION, qr_matrix
from duesflow.services.receipts import new_verification_code


def decode_qr(pdf: bytes, scale: float = 2.0) -> list[str]:
    """Rasterize the PDF's first page (``scale`` × 72 dpi) and return the text of every QR code found in it."""
    page = pypdfium2.PdfDocument(pdf)[0]
    picture = page.render(scale=scale).to_pil()
    return [code.text for code in zxingcpp.read_barcodes(picture) if code.format == zxingcpp.BarcodeFormat.QRCode]


def confirmed(api, world) -> dict:  # noqa: ANN001
    payment = api.record(world.members["zhang"], "12345.67")
    advance(api, payment["id"], 4)
    return api.act(payment["id"], "confirm", "central")


def receipt_pdf(api, payment_id: int) -> bytes:  # noqa: ANN001
    response = api.get(f"/payments/{payment_id}/receipt.pdf", "member")
    assert response.status_code == 200
    return response.data


def follow(client, url: str) -> str:  # noqa: ANN001
    """Open ``url`` (PUBLIC_URL/…) on the test client: path and query only."""
    parts = urlsplit(url)
    response = client.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_the_qr_code_in_the_picture_opens_the_verification_page(api, world, client, app):
    payment = confirmed(api, world)
    receipt = payment["receipt"]

    texts = decode_qr(receipt_pdf(api, payment["id"]))

    assert texts == [f"{app.config['PUBLIC_URL']}/verify/{receipt['number']}?code={receipt['verification_code']}"]
    page = follow(client, texts[0])
    assert "真实有效" in page and "中共中央组织部" in page and "张**" in page and receipt["number"] in page


def test_after_a_reissue_the_new_qr_code_verifies_and_the_old_one_does_not(api, world, client):
    payment = confirmed(api, world)
    old = decode_qr(receipt_pdf(api, payment["id"]))[0]

    api.post(f"/payments/{payment['id']}/receipt/reissue", "central", json={"reason": "遗失补发"})
    new = decode_qr(receipt_pdf(api, payment["id"]))[0]

    assert new != old and new.split("?")[0] == old.split("?")[0]
    assert "真实有效" in follow(client, new)
    parts = urlsplit(old)
    assert client.get(f"{parts.path}?{parts.query}").status_code == 404


def test_a_voided_receipts_qr_code_says_voided(api, world, client):
    payment = confirmed(api, world)
    api.post(f"/payments/{payment['id']}/receipt/void", "central", json={"reason": "确认有误"})

    page = follow(client, decode_qr(receipt_pdf(api, payment["id"]))[0])

    assert "作废" in page and "真实有效" not in page


@pytest.mark.parametrize("public_url", ["http://127.0.0.1:5000", "https://dues.example.org.cn",
                                        "https://党费.example.cn/一个很长的路径/verification-service"])
def test_qr_codes_of_random_receipts_read_back_at_screen_resolution(public_url):
    rng = random.Random(public_url)
    for _ in range(12):
        number, code = f"{rng.randint(2024, 2099)}-{rng.randint(1, 999999):06d}", new_verification_code()
        url = f"{public_url}/verify/{number}?code={code}"
        content = ReceiptContent(member_name="张三", amount=Decimal("1000.00"), grassroots_org_name="北门街道党工委",
                                 number=number, verification_code=code, issued_on=datetime.date(2026, 1, 2),
                                 verify_url=url)

        assert decode_qr(render_receipt_pdf(content, render_key()), scale=1.0) == [url]  # 72 dpi: ~2.4 pixels a module


# ---- the encoder -------------------------------------------------------------------------------------------


@pytest.fixture
def segno_by_the_standard(monkeypatch: pytest.MonkeyPatch) -> None:
    """segno pads a byte-aligned bit stream with 8 more zero bits before the pad codewords (ISO/IEC 18004 7.4.10
    asks for none); decoders stop at the terminator and never see them. Compare with segno minus that quirk."""

    def padding_bits(buffer, version, length):  # noqa: ANN001, ANN202
        buffer.extend([0] * (-length % 8))

    monkeypatch.setattr(segno.encoder, "write_padding_bits", padding_bits)


@pytest.mark.usefixtures("segno_by_the_standard")
def test_every_length_and_version_is_segnos_symbol_module_for_module():
    rng = random.Random(18004)
    versions = set()
    for length in range(0, 214):  # 213 bytes is what version 10-M holds
        text = "".join(rng.choice(string.ascii_letters + string.digits + "/:?=.-_~") for _ in range(length))
        reference = segno.make(text.encode(), error="m", mask=MASK, boost_error=False, micro=False, mode="byte")
        ours = qr_matrix(text)
        assert [bytes(row) for row in ours] == [bytes(row) for row in reference.matrix], (length, reference.version)
        versions.add(reference.version)
    assert versions == set(range(1, MAX_VERSION + 1))


@pytest.mark.usefixtures("segno_by_the_standard")
def test_utf8_text_is_encoded_as_bytes():
    text = "https://党费.example.cn/verify/2026-000001?code=ABCDEFGH"
    reference = segno.make(text.encode(), error="m", mask=MASK, boost_error=False, micro=False, mode="byte")
    assert [bytes(row) for row in qr_matrix(text)] == [bytes(row) for row in reference.matrix]


def test_text_longer_than_version_10_falls_back_to_segno():
    text = "https://example.cn/" + "x" * 300
    matrix = qr_matrix(text)
    assert len(matrix) > 17 + 4 * MAX_VERSION
    reference = segno.make(text.encode(), error="m", mask=MASK, boost_error=False, micro=False, mode="byte")
    assert [bytes(row) for row in matrix] == [bytes(row) for row in reference.matrix]


def test_each_call_gets_its_own_rows():
    first = qr_matrix("http://127.0.0.1:5000/verify/2026-000001?code=AAAAAAAA")
    first[10][10] ^= 1
    assert qr_matrix("http://127.0.0.1:5000/verify/2026-000001?code=AAAAAAAA") != first

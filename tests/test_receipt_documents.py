"""Stored receipt documents: a download renders a receipt's PDF once and sends the stored bytes afterwards, for as
long as they still match what the receipt shows."""

from __future__ import annotations

import io
import logging

import pytest
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from test_receipts_api import receipted

from duesflow.extensions import db
from duesflow.models import Receipt, ReceiptDocument
from duesflow.receipts.pdf import render_receipt_pdf
from duesflow.services import receipt_documents
from duesflow.signing import signing


def download(api, payment_id: int, user: str = "central") -> bytes:
    response = api.get(f"/payments/{payment_id}/receipt.pdf", user)
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    return response.get_data()


def stored(payment_id: int) -> ReceiptDocument | None:
    db.session.expire_all()
    return db.session.scalar(
        select(ReceiptDocument).join(Receipt, Receipt.id == ReceiptDocument.receipt_id)
        .where(Receipt.payment_id == payment_id)
    )


def text_of(pdf: bytes) -> str:
    return PdfReader(io.BytesIO(pdf)).pages[0].extract_text()


def page_content(pdf: bytes) -> bytes:
    return PdfReader(io.BytesIO(pdf)).pages[0].get_contents().get_data()


def test_the_first_download_stores_the_document_and_the_next_ones_send_it(api, world, monkeypatch):
    payment_id = receipted(api, world)["id"]
    assert stored(payment_id) is None
    first = download(api, payment_id, "member")
    document = stored(payment_id)
    assert document is not None and document.pdf == first
    monkeypatch.setattr(receipt_documents, "render_receipt_pdf", lambda *_a, **_k: pytest.fail("rendered again"))
    assert download(api, payment_id, "member") == first
    assert download(api, payment_id, "jilin") == first


def test_the_stored_document_is_the_page_a_rendering_gives_signed_once(api, world, app):
    payment_id = receipted(api, world)["id"]
    sent = download(api, payment_id)
    receipt = db.session.scalar(select(Receipt).where(Receipt.payment_id == payment_id))
    rendered = render_receipt_pdf(receipt_documents.content_for(receipt), signing(app).key, app.config["RECEIPT_FONT"])
    assert page_content(sent) == page_content(rendered)
    assert download(api, payment_id) == sent == stored(payment_id).pdf  # the same signature at every download


def test_a_renamed_member_gets_a_new_document(api, world):
    payment_id = receipted(api, world)["id"]
    download(api, payment_id)
    before = stored(payment_id).fingerprint
    response = api.patch(f"/members/{world.members['zhang'].id}", "clerk", json={"name": "张新名"})
    assert response.status_code == 200, response.json
    pdf = download(api, payment_id)
    assert "张新名" in text_of(pdf)
    after = stored(payment_id)
    assert after.fingerprint != before and after.pdf == pdf


def test_a_reissued_and_a_voided_receipt_are_not_sent_as_stored_before(api, world):
    payment_id = receipted(api, world)["id"]
    original = download(api, payment_id)
    api.post(f"/payments/{payment_id}/receipt/reissue", "central", json={"reason": "遗失"})
    reissued = download(api, payment_id)
    assert reissued != original and "补发" in text_of(reissued)
    api.post(f"/payments/{payment_id}/receipt/void", "central", json={"reason": "误确认"})
    voided = download(api, payment_id)
    assert voided not in (original, reissued)
    assert stored(payment_id).pdf == voided


def test_a_changed_renderer_makes_every_stored_document_stale(api, world, monkeypatch):
    payment_id = receipted(api, world)["id"]
    download(api, payment_id)
    before = stored(payment_id).fingerprint
    monkeypatch.setattr(receipt_documents, "_renderer_version", lambda: "a newer renderer")
    download(api, payment_id)
    assert stored(payment_id).fingerprint != before


def test_a_document_that_cannot_be_stored_is_still_sent(api, world, monkeypatch, caplog):
    payment_id = receipted(api, world)["id"]

    def database_gone():
        raise OperationalError("INSERT INTO receipt_documents", {}, Exception("database is locked"))

    monkeypatch.setattr(receipt_documents, "insert_on_conflict", database_gone)
    with caplog.at_level(logging.WARNING, logger=receipt_documents.__name__):
        pdf = download(api, payment_id)
    assert text_of(pdf) and stored(payment_id) is None
    assert "not stored" in caplog.text

"""Signed receipts (SPEC §5): every receipt PDF carries central's PAdES signature, checked by two independent
validators; verify-document, the /verify page and verify-receipt tell a genuine live receipt from a changed, foreign,
unsigned, superseded, voided or non-receipt one; the signing key, its development stand-in and rotation."""

from __future__ import annotations

import io
import logging
import multiprocessing
import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, Encoding, pkcs12
from pyhanko.pdf_utils.generic import TextStringObject
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pypdf import PdfReader
from reportlab.pdfgen.canvas import Canvas
from signing_keys import stranger_key
from sqlalchemy import select
from test_receipts_api import receipted

from duesflow.extensions import db
from duesflow.models import Receipt
from duesflow.receipts.pdf import TITLE, render_receipt_pdf
from duesflow.receipts.signature import SigningKey, short_fingerprint
from duesflow.services import receipt_documents
from duesflow.signing import DEVELOPMENT_KEY_FILE, development_key_file, new_development_key, signing

VERIFY_DOCUMENT = "/api/v1/receipts/verify-document"


def download(api, payment_id: int) -> bytes:
    response = api.get(f"/payments/{payment_id}/receipt.pdf", "central")
    assert response.status_code == 200
    return response.get_data()


def verify(client, pdf: bytes):  # noqa: ANN201
    return client.post(VERIFY_DOCUMENT, data=pdf, content_type="application/pdf")


def changed_byte(pdf: bytes, marker: bytes) -> bytes:
    """``pdf`` with one byte changed, just after ``marker``."""
    at = pdf.index(marker) + len(marker)
    return pdf[:at] + bytes([pdf[at] ^ 0x01]) + pdf[at + 1:]


def pyhanko_signed(pdf: bytes, key: SigningKey, tmp_path: Path) -> bytes:
    """``pdf`` signed by pyHanko (an incremental update), as another signing tool would do it."""
    key_file = tmp_path / "signer.p12"
    key_file.write_bytes(key.to_pkcs12())
    signer = signers.SimpleSigner.load_pkcs12(str(key_file), passphrase=None)
    meta = signers.PdfSignatureMetadata(field_name="Other", subfilter=fields.SigSeedSubFilter.PADES,
                                        md_algorithm="sha256")
    return signers.PdfSigner(meta, signer=signer).sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf))).getvalue()


def plain_pdf(*lines: str) -> bytes:
    buffer = io.BytesIO()
    canvas = Canvas(buffer)
    for number, line in enumerate(lines):
        canvas.drawString(40, 780 - 20 * number, line)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


# ---- the signature, checked by pyHanko and by poppler -----------------------------------------------------


def test_the_signing_certificate_is_published_as_pem(client, app):
    response = client.get("/api/v1/receipts/signing-certificate")

    assert response.status_code == 200 and response.mimetype == "application/x-pem-file"
    assert response.get_data().startswith(b"-----BEGIN CERTIFICATE-----")
    assert response.get_data() == signing(app).certificate_pem


def test_a_receipt_is_signed_pades_over_the_whole_file_by_the_published_certificate(api, world, client):
    pdf = download(api, receipted(api, world)["id"])
    _, _, der = pem.unarmor(client.get("/api/v1/receipts/signing-certificate").get_data())
    published = asn1_x509.Certificate.load(der)

    signature = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0]
    status = validate_pdf_signature(signature, ValidationContext(trust_roots=[published]))

    assert signature.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
    assert status.bottom_line and status.intact and status.valid and status.trusted
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert status.md_algorithm == "sha256"
    assert status.signing_cert.dump() == published.dump()


@pytest.mark.skipif(shutil.which("pdfsig") is None, reason="poppler-utils (pdfsig) not installed")
def test_poppler_finds_the_signature_valid_and_covering_the_whole_document(api, world, tmp_path):
    path = tmp_path / "receipt.pdf"
    path.write_bytes(download(api, receipted(api, world)["id"]))

    report = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, check=True).stdout

    assert "Signature Validation: Signature is Valid." in report
    assert "Total document signed" in report
    assert "Signature Type: ETSI.CAdES.detached" in report and "Signing Hash Algorithm: SHA-256" in report


def test_the_receipt_shows_who_signed_and_the_certificate_fingerprint(api, world, app):
    text = PdfReader(io.BytesIO(download(api, receipted(api, world)["id"]))).pages[0].extract_text()

    assert "本收据已由中共中央组织部数字签名" in text
    assert short_fingerprint(signing(app).key.fingerprint) in text
    assert "http://testserver/verify" in text


# ---- verify-document --------------------------------------------------------------------------------------


def test_a_genuine_receipt_verifies_with_its_number_version_and_masked_name(api, world, client):
    payment = receipted(api, world)

    response = verify(client, download(api, payment["id"]))

    assert response.status_code == 200
    assert response.json == {
        "valid": True, "number": payment["receipt"]["number"], "version": 1, "amount": "12345.67",
        "issued_on": payment["receipt"]["issued_on"], "member_name": "张**", "signed_by": "中共中央组织部",
    }


@pytest.mark.parametrize("marker", [b"/Title (", b"stream\n", b"/Contents <"])
def test_a_one_byte_change_is_modified(api, world, client, marker):
    pdf = download(api, receipted(api, world)["id"])

    response = verify(client, changed_byte(pdf, marker))

    assert response.status_code == 200 and response.json == {"valid": False, "reason": "modified"}


def test_bytes_appended_after_signing_are_modified(api, world, client, tmp_path):
    pdf = download(api, receipted(api, world)["id"])
    update = IncrementalPdfFileWriter(io.BytesIO(pdf))
    update.root["/Lang"] = TextStringObject("zh-CN")  # any change made after the signature, as an update
    update.update_root()
    buffer = io.BytesIO()
    update.write(buffer)

    assert verify(client, buffer.getvalue()).json == {"valid": False, "reason": "modified"}


def test_a_receipt_signed_by_a_key_of_ones_own_is_unknown_signer(api, world, client):
    payment = receipted(api, world)
    receipt = db.session.scalar(select(Receipt).where(Receipt.payment_id == payment["id"]))

    forged = render_receipt_pdf(receipt_documents.content_for(receipt), stranger_key())

    assert verify(client, forged).json == {"valid": False, "reason": "unknown_signer"}


def test_a_reissue_supersedes_the_old_pdf_and_the_new_one_is_version_2(api, world, client):
    payment_id = receipted(api, world)["id"]
    old = download(api, payment_id)
    assert api.post(f"/payments/{payment_id}/receipt/reissue", "central", json={"reason": "遗失"}).status_code == 200

    new = download(api, payment_id)

    assert verify(client, old).json == {"valid": False, "reason": "superseded"}
    answer = verify(client, new).json
    assert answer["valid"] is True and answer["version"] == 2


def test_a_voided_receipt_is_voided_in_every_version(api, world, client):
    payment_id = receipted(api, world)["id"]
    before = download(api, payment_id)
    assert api.post(f"/payments/{payment_id}/receipt/void", "central", json={"reason": "误确认"}).status_code == 200

    after = download(api, payment_id)

    assert verify(client, before).json == {"valid": False, "reason": "voided"}
    assert verify(client, after).json == {"valid": False, "reason": "voided"}


def test_an_unsigned_receipt_like_pdf_is_not_signed(client):
    response = verify(client, plain_pdf(TITLE, "2026-000001", "12345.67"))

    assert response.json == {"valid": False, "reason": "not_signed"}


def test_a_pdf_the_service_signed_that_is_no_receipt_is_not_a_receipt(client, app, tmp_path):
    signed = pyhanko_signed(plain_pdf("not a receipt"), signing(app).key, tmp_path)

    assert verify(client, signed).json == {"valid": False, "reason": "not_a_receipt"}


def test_a_pdf_signed_by_a_stranger_with_pyhanko_is_unknown_signer(client, tmp_path):
    signed = pyhanko_signed(plain_pdf(TITLE), stranger_key(), tmp_path)

    assert verify(client, signed).json == {"valid": False, "reason": "unknown_signer"}


def test_a_sample_receipt_is_signed_but_names_no_receipt(runner, client, tmp_path):
    out = tmp_path / "sample.pdf"
    assert runner.invoke(args=["sample-receipt", str(out)]).exit_code == 0

    assert verify(client, out.read_bytes()).json == {"valid": False, "reason": "not_a_receipt"}


@pytest.mark.parametrize("body", [b"", b"hello", b"\x89PNG\r\n\x1a\n", b"%PDF-1.7\n garbage without structure"])
def test_a_body_that_is_no_pdf_is_422(client, body):
    response = verify(client, body)

    assert response.status_code == 422 and response.json["error"]["code"] == "validation_error"


def test_a_document_over_2_mib_is_413(client):
    response = verify(client, b"%PDF-1.7\n" + b"0" * (2 * 1024 * 1024))

    assert response.status_code == 413


def test_verify_document_is_throttled_like_verification(client, app):
    app.config["VERIFY_MAX_ATTEMPTS"] = 3
    statuses = [verify(client, plain_pdf("x")).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    assert client.get("/api/v1/receipts/2026-000001/verify?code=ABCDEFGH").status_code == 429  # one budget


# ---- keys: development key, configured key, rotation ---------------------------------------------------------


def _make_development_key(folder: str) -> bytes:
    return development_key_file(Path(folder))


def test_the_development_key_is_made_once_whoever_asks_at_the_same_time(tmp_path):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        keys = pool.map(_make_development_key, [str(tmp_path)] * 8)

    assert len(set(keys)) == 1 and keys[0] == (tmp_path / DEVELOPMENT_KEY_FILE).read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == [DEVELOPMENT_KEY_FILE]  # no temporary file left behind
    assert SigningKey.from_pkcs12(keys[0]).signer_name == "中共中央组织部"


def test_without_a_configured_key_the_log_says_it_is_a_development_key(app, caplog, tmp_path):
    app.instance_path = str(tmp_path)
    with caplog.at_level(logging.WARNING, logger="duesflow.signing"):
        key = signing(app).key

    assert "DEVELOPMENT key" in caplog.text and key.fingerprint in caplog.text
    assert signing(app).development


def rotate(app, tmp_path: Path, *, keep_old: str | None) -> SigningKey:
    """Give ``app`` a new PKCS#12 key (with a password); the old certificate kept as ``keep_old`` says."""
    old = signing(app).key
    new_file = tmp_path / "central-2027.p12"
    new = SigningKey.from_pkcs12(new_development_key())
    new_file.write_bytes(pkcs12.serialize_key_and_certificates(
        b"central", new.private_key, new.certificate, None, BestAvailableEncryption(b"secret-password")))
    retired = tmp_path / "retired"
    retired.mkdir()
    (retired / "central-2026.pem").write_bytes(old.certificate.public_bytes(Encoding.PEM))
    app.config.update(SIGNING_KEY=str(new_file), SIGNING_KEY_PASSWORD="secret-password",
                      SIGNING_OLD_CERTS={"folder": [str(retired)], "file": [str(retired / "central-2026.pem")],
                                         None: []}[keep_old])
    return new


@pytest.mark.parametrize("keep_old", ["folder", "file"])
def test_after_rotation_new_receipts_are_signed_by_the_new_key_and_old_ones_stay_valid(api, world, client, app,
                                                                                      tmp_path, keep_old):
    payment_id = receipted(api, world)["id"]
    old_pdf = download(api, payment_id)
    new = rotate(app, tmp_path, keep_old=keep_old)

    new_pdf = download(api, payment_id)  # the stored document was signed by the old key: signed anew

    assert verify(client, old_pdf).json["valid"] is True
    assert verify(client, new_pdf).json["valid"] is True
    assert client.get("/api/v1/receipts/signing-certificate").get_data() == signing(app).certificate_pem
    signer = PdfFileReader(io.BytesIO(new_pdf)).embedded_signatures[0].signer_cert
    assert signer.dump() == new.certificate_der


def test_a_retired_certificate_not_kept_makes_its_receipts_unknown_signer(api, world, client, app, tmp_path):
    old_pdf = download(api, receipted(api, world)["id"])
    rotate(app, tmp_path, keep_old=None)

    assert verify(client, old_pdf).json == {"valid": False, "reason": "unknown_signer"}


# ---- verify-receipt, offline -------------------------------------------------------------------------------


def test_verify_receipt_exits_0_only_for_a_genuine_receipt(api, world, runner, tmp_path):
    pdf = download(api, receipted(api, world)["id"])
    genuine, changed, junk = tmp_path / "genuine.pdf", tmp_path / "changed.pdf", tmp_path / "junk.pdf"
    genuine.write_bytes(pdf)
    changed.write_bytes(changed_byte(pdf, b"/Title ("))
    junk.write_bytes(b"not a pdf")

    ok = runner.invoke(args=["verify-receipt", str(genuine)])
    bad = runner.invoke(args=["verify-receipt", str(changed)])
    unreadable = runner.invoke(args=["verify-receipt", str(junk)])

    assert ok.exit_code == 0 and "真实有效" in ok.output and "张**" in ok.output
    assert bad.exit_code == 1 and "modified" in bad.output and "改动" in bad.output
    assert unreadable.exit_code == 2


# ---- the /verify page ----------------------------------------------------------------------------------------


def csrf_of(client) -> str:
    client.get("/verify")
    with client.session_transaction() as session:
        return session["csrf_token"]


def test_the_verify_page_is_a_form_for_number_and_code_and_an_upload(client):
    response = client.get("/verify")

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'name="number"' in page and 'name="code"' in page
    assert 'type="file"' in page and 'enctype="multipart/form-data"' in page and 'name="csrf_token"' in page


def test_the_number_and_code_form_leads_to_the_receipt_page(api, world, client):
    receipt = receipted(api, world)["receipt"]

    response = client.get("/verify", query_string={"number": receipt["number"], "code": receipt["verification_code"]})

    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/verify/{receipt['number']}?code={receipt['verification_code']}")


def test_uploading_a_genuine_receipt_says_so_in_chinese(api, world, client):
    pdf = download(api, receipted(api, world)["id"])

    response = client.post("/verify", data={"csrf_token": csrf_of(client), "document": (io.BytesIO(pdf), "r.pdf")},
                           content_type="multipart/form-data")

    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "真实有效" in page and "张**" in page


def test_uploading_a_changed_receipt_says_it_was_changed(api, world, client):
    pdf = changed_byte(download(api, receipted(api, world)["id"]), b"/Title (")

    response = client.post("/verify", data={"csrf_token": csrf_of(client), "document": (io.BytesIO(pdf), "r.pdf")},
                           content_type="multipart/form-data")

    assert response.status_code == 200 and "被改动过" in response.get_data(as_text=True)


def test_uploading_something_else_is_422_and_an_upload_without_the_csrf_token_400(client):
    junk = client.post("/verify", data={"csrf_token": csrf_of(client), "document": (io.BytesIO(b"x"), "x.pdf")},
                       content_type="multipart/form-data")
    forged = client.post("/verify", data={"document": (io.BytesIO(b"x"), "x.pdf")},
                         content_type="multipart/form-data")

    assert junk.status_code == 422 and "不是PDF" in junk.get_data(as_text=True)
    assert forged.status_code == 400

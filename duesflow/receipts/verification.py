"""Reading a signed receipt PDF back: is its signature intact, does it cover the whole file, who made it, and
which receipt version does it name. Validated with pyHanko; pure (the caller supplies the certificates it trusts).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .signature import certificate_fingerprint, signer_name

log = logging.getLogger(__name__)


class DocumentProblem(StrEnum):
    """Why a document is not a genuine live receipt (the SPEC's reason codes)."""

    NOT_SIGNED = "not_signed"
    MODIFIED = "modified"
    UNKNOWN_SIGNER = "unknown_signer"
    SUPERSEDED = "superseded"
    VOIDED = "voided"
    NOT_A_RECEIPT = "not_a_receipt"


PROBLEM_TEXT = {
    DocumentProblem.NOT_SIGNED: "此文件没有数字签名，不能证明是中共中央组织部开具的收据。",
    DocumentProblem.MODIFIED: "此文件在签名后被改动过（或签名已损坏），不是原件。",
    DocumentProblem.UNKNOWN_SIGNER: "此文件的签名不是中共中央组织部的签名证书所作。",
    DocumentProblem.SUPERSEDED: "此收据已补发新版本，此文件是被替换的旧版本，不再有效。",
    DocumentProblem.VOIDED: "此收据已作废，不再有效。",
    DocumentProblem.NOT_A_RECEIPT: "此文件虽由本系统签名，但不是一张已开具的纪念收据（例如样张）。",
}


class NotAPdf(ValueError):
    """The bytes are not a PDF file pyHanko can read."""


@dataclass(frozen=True)
class SignedDocument:
    """What a document's signature says: a problem, or the receipt version it names and who signed it."""

    problem: DocumentProblem | None
    number: str | None = None
    version: int | None = None
    signed_by: str | None = None


def _looks_like_pdf(data: bytes) -> bool:
    return b"%PDF-" in data[:1024]  # readers accept the header anywhere in the first kilobyte


def read_signed_document(data: bytes, known: dict[str, x509.Certificate]) -> SignedDocument:
    """Check the newest signature of the PDF ``data`` against the certificates ``known`` (fingerprint → certificate).

    A signature that does not verify, or that leaves part of the file out (bytes appended after signing), is
    ``modified``; one made by a certificate not in ``known`` is ``unknown_signer``; a signed document without a
    receipt's number and version in its signature dictionary is ``not_a_receipt``. Raises :class:`NotAPdf`.
    """
    if not _looks_like_pdf(data):
        raise NotAPdf("not a PDF file")
    # pyHanko is imported here, by the one function that reads a signature: it is a quarter of the package's import
    # time, which every gunicorn worker and every `flask` command would otherwise pay (docs/testing.md)
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.generic import NumberObject, TextStringObject
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
    except Exception as error:  # noqa: BLE001 - a parser fed untrusted bytes: any failure means "unreadable"
        log.info("an uploaded document could not be read as a PDF: %r", error)
        raise NotAPdf("not a readable PDF file") from None
    try:
        signatures = reader.embedded_signatures
    except Exception as error:  # noqa: BLE001 - a signature field whose value no longer parses: changed
        log.info("an uploaded document's signatures could not be read: %r", error)
        return SignedDocument(DocumentProblem.MODIFIED)
    if not signatures:
        return SignedDocument(DocumentProblem.NOT_SIGNED)
    signature = signatures[-1]
    try:
        trusted = [asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER)) for cert in known.values()]
        status = validate_pdf_signature(signature, ValidationContext(trust_roots=trusted, allow_fetching=False))
        intact = status.intact and status.valid and status.coverage == SignatureCoverageLevel.ENTIRE_FILE
        certificate = x509.load_der_x509_certificate(signature.signer_cert.dump())
    except Exception as error:  # noqa: BLE001 - a damaged signature value or CMS structure fails the same way
        log.info("an uploaded document's signature could not be validated: %r", error)
        return SignedDocument(DocumentProblem.MODIFIED)
    if not intact:
        return SignedDocument(DocumentProblem.MODIFIED)
    if certificate_fingerprint(certificate) not in known:
        return SignedDocument(DocumentProblem.UNKNOWN_SIGNER, signed_by=signer_name(certificate))
    number = signature.sig_object.get("/DuesflowReceipt")
    version = signature.sig_object.get("/DuesflowVersion")
    if not isinstance(number, TextStringObject | str) or not isinstance(version, NumberObject | int):
        return SignedDocument(DocumentProblem.NOT_A_RECEIPT, signed_by=signer_name(certificate))
    return SignedDocument(None, number=str(number), version=int(version), signed_by=signer_name(certificate))

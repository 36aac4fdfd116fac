"""PDF signatures, PAdES baseline B-B (``ETSI.CAdES.detached``, SHA-256), made in one pass with reportlab.

The document is written with a signature field whose ``/ByteRange`` and ``/Contents`` are fixed-width
placeholders; once reportlab has written every byte, the placeholders are filled in place (no offset moves), so
the signature covers the whole file but its own value. The CMS SignedData is assembled here from DER pieces:
building it with asn1crypto (as pyHanko does) costs ~40 ms a receipt, this ~0.2 ms. Its signed attributes are
the three PAdES B-B asks for: content type, message digest and the ESS signing certificate v2; the signing time
is the signature dictionary's ``/M`` (PAdES forbids the CMS signing-time attribute).

Pure: keys and certificates come in as ``cryptography`` objects; no Flask, no files.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import re
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from reportlab.pdfbase.pdfdoc import PDFArray, PDFDictionary, PDFName, PDFObject, PDFStream, PDFString
from reportlab.pdfgen.canvas import Canvas

SUBFILTER = "ETSI.CAdES.detached"
_BYTE_RANGE_WIDTH = 10  # digits of each /ByteRange number: files up to 10 GB
_BYTE_RANGE_PLACEHOLDER = b"[0 " + b" ".join([b"#" * _BYTE_RANGE_WIDTH] * 3) + b"]"


class SigningError(ValueError):
    """A key that cannot sign receipts (not ECDSA P-256/384/521 or RSA), or a document without room to sign."""


@dataclass(frozen=True)
class SigningKey:
    """Central's private key, its certificate, and the certificates that issued it (embedded for validators)."""

    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()
    _der: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise SigningError("the signing key must be an ECDSA or RSA key")
        object.__setattr__(self, "_der", self.certificate.public_bytes(serialization.Encoding.DER))

    @classmethod
    def from_pkcs12(cls, data: bytes, password: bytes | None = None) -> SigningKey:
        """The key, certificate and chain of a PKCS#12 file (ValueError when unreadable or incomplete)."""
        private_key, certificate, chain = pkcs12.load_key_and_certificates(data, password)
        if private_key is None or certificate is None:
            raise ValueError("the PKCS#12 file must hold the private key and its certificate")
        return cls(private_key, certificate, tuple(chain))  # type: ignore[arg-type]

    def to_pkcs12(self) -> bytes:
        """This key as an unencrypted PKCS#12 file: how it travels to the processes of ``render-receipts``."""
        return pkcs12.serialize_key_and_certificates(None, self.private_key, self.certificate, list(self.chain) or None,
                                                     serialization.NoEncryption())

    @property
    def certificate_der(self) -> bytes:
        return self._der

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate, hex, upper case."""
        return certificate_fingerprint(self.certificate)

    @property
    def signer_name(self) -> str:
        return signer_name(self.certificate)


def certificate_fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, 64 upper-case hex digits."""
    return certificate.fingerprint(hashes.SHA256()).hex().upper()


def short_fingerprint(fingerprint: str) -> str:
    """The first 16 hex digits of a fingerprint in groups of four (``3F2A 9C01 …``), as printed on a receipt."""
    return " ".join(fingerprint[i:i + 4] for i in range(0, 16, 4))


def signer_name(certificate: x509.Certificate) -> str:
    """The organisation (else the common name) a certificate names."""
    for oid in (x509.NameOID.ORGANIZATION_NAME, x509.NameOID.COMMON_NAME):
        values = certificate.subject.get_attributes_for_oid(oid)
        if values:
            return str(values[0].value)
    return certificate.subject.rfc4514_string()


# --- DER, the few shapes a CMS SignedData needs ---------------------------------------------------------------

def _tlv(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes((tag, length)) + content
    size = (length.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + length.to_bytes(size, "big") + content


def _sequence(*parts: bytes) -> bytes:
    return _tlv(0x30, b"".join(parts))


def _set(*parts: bytes) -> bytes:
    return _tlv(0x31, b"".join(sorted(parts)))  # DER orders a SET OF by encoding


def _integer(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _octets(value: bytes) -> bytes:
    return _tlv(0x04, value)


def _oid(dotted: str) -> bytes:
    numbers = [int(part) for part in dotted.split(".")]
    body = bytearray([40 * numbers[0] + numbers[1]])
    for number in numbers[2:]:
        chunk = [number & 0x7F]
        number >>= 7
        while number:
            chunk.append(0x80 | (number & 0x7F))
            number >>= 7
        body.extend(reversed(chunk))
    return _tlv(0x06, bytes(body))


_SHA256 = _sequence(_oid("2.16.840.1.101.3.4.2.1"))
_ECDSA_SHA256 = _sequence(_oid("1.2.840.10045.4.3.2"))
_RSA_SHA256 = _sequence(_oid("1.2.840.113549.1.1.11"), b"\x05\x00")
_DATA = _oid("1.2.840.113549.1.7.1")
_SIGNED_DATA = _oid("1.2.840.113549.1.7.2")
_CONTENT_TYPE = _oid("1.2.840.113549.1.9.3")
_MESSAGE_DIGEST = _oid("1.2.840.113549.1.9.4")
_SIGNING_CERTIFICATE_V2 = _oid("1.2.840.113549.1.9.16.2.47")


def _attribute(kind: bytes, value: bytes) -> bytes:
    return _sequence(kind, _set(value))


def cms_signature(key: SigningKey, digest: bytes) -> bytes:
    """A detached CAdES signature (CMS SignedData, DER) over content whose SHA-256 is ``digest``."""
    certificate = key.certificate
    issuer_and_serial = _sequence(certificate.issuer.public_bytes(), _integer(certificate.serial_number))
    # ESSCertIDv2 with the default hash algorithm (SHA-256, so left out) and the issuer and serial number
    ess_cert_id = _sequence(
        _octets(hashlib.sha256(key.certificate_der).digest()),
        _sequence(_sequence(_tlv(0xA4, certificate.issuer.public_bytes())), _integer(certificate.serial_number)),
    )
    attributes = [
        _attribute(_CONTENT_TYPE, _DATA),
        _attribute(_MESSAGE_DIGEST, _octets(digest)),
        _attribute(_SIGNING_CERTIFICATE_V2, _sequence(_sequence(ess_cert_id))),
    ]
    signed_attributes = _set(*attributes)  # what is signed is the SET; the SignerInfo carries it as [0] IMPLICIT
    if isinstance(key.private_key, ec.EllipticCurvePrivateKey):
        algorithm = _ECDSA_SHA256
        value = key.private_key.sign(signed_attributes, ec.ECDSA(hashes.SHA256()))
    else:
        algorithm = _RSA_SHA256
        value = key.private_key.sign(signed_attributes, padding.PKCS1v15(), hashes.SHA256())
    signer_info = _sequence(
        _integer(1), issuer_and_serial, _SHA256, b"\xa0" + signed_attributes[1:], algorithm, _octets(value)
    )
    certificates = b"".join(cert.public_bytes(serialization.Encoding.DER) for cert in (certificate, *key.chain))
    signed_data = _sequence(
        _integer(1), _set(_SHA256), _sequence(_DATA), _tlv(0xA0, certificates), _set(signer_info)
    )
    return _sequence(_SIGNED_DATA, _tlv(0xA0, signed_data))


# --- the signature field in a reportlab document ---------------------------------------------------------------

class _Verbatim(PDFObject):
    """Bytes written into the file as they are: the placeholders filled in after the file is written."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def format(self, document: object) -> bytes:  # noqa: ARG002 - reportlab's interface
        return self.data


def pdf_date(moment: datetime.datetime) -> str:
    """A PDF date string (``D:20261126093000+08'00'``) of an aware datetime."""
    offset = moment.utcoffset() or datetime.timedelta()
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return moment.strftime("D:%Y%m%d%H%M%S") + f"{sign}{abs(minutes) // 60:02d}'{abs(minutes) % 60:02d}'"


@functools.cache
def signature_room(key: SigningKey) -> int:
    """Bytes to keep for ``key``'s signatures: one made now, and some slack (an ECDSA value varies by a few bytes)."""
    return len(cms_signature(key, bytes(32))) + 32


def add_signature_field(canvas: Canvas, key: SigningKey, *, reason: str, signed_at: datetime.datetime,
                        rect: tuple[float, float, float, float] = (0, 0, 0, 0),
                        extra: dict[str, str | int] | None = None) -> None:
    """Put an (as yet empty) signature on the canvas's current page: a signature dictionary with placeholders
    (and the ``extra`` entries, covered by the signature like everything else), its field's widget over ``rect``
    of the page, and the document's AcroForm naming it. Call before ``showPage``; fill it with :func:`sign_pdf`
    once the canvas is saved."""
    document = canvas._doc
    entries = {key: PDFString(value) if isinstance(value, str) else value for key, value in (extra or {}).items()}
    left, bottom, right, top = rect
    # the page draws the signature block itself; the widget's own appearance is empty (a visible widget needs one)
    appearance = PDFStream(PDFDictionary({
        "Type": PDFName("XObject"), "Subtype": PDFName("Form"), "BBox": PDFArray([0, 0, right - left, top - bottom]),
    }), content=b"", filters=[])
    signature = document.Reference(PDFDictionary({
        **entries,
        "Type": PDFName("Sig"),
        "Filter": PDFName("Adobe.PPKLite"),
        "SubFilter": PDFName(SUBFILTER),
        "ByteRange": _Verbatim(_BYTE_RANGE_PLACEHOLDER),
        "Contents": _Verbatim(b"<" + b"0" * (2 * signature_room(key)) + b">"),
        "M": PDFString(pdf_date(signed_at)),
        "Reason": PDFString(reason),
    }))
    widget = PDFDictionary({
        "Type": PDFName("Annot"),
        "Subtype": PDFName("Widget"),
        "FT": PDFName("Sig"),
        "T": PDFString("central-signature"),
        "V": signature,
        "F": 132,  # print, locked
        "Rect": PDFArray(list(rect)),
        "AP": PDFDictionary({"N": document.Reference(appearance)}),
        "P": document.thisPageRef(),
    })
    canvas._addAnnotation(widget, "central-signature")
    document.Catalog.AcroForm = PDFDictionary({
        "Fields": PDFArray([document.refAnnotation("central-signature")]),
        "SigFlags": 3,  # signatures exist; append only
    })


_PLACEHOLDERS = re.compile(rb"/ByteRange " + re.escape(_BYTE_RANGE_PLACEHOLDER) + rb"\s*/Contents (<0+>)")


def sign_pdf(pdf: bytes, key: SigningKey) -> bytes:
    """Fill the signature field :func:`add_signature_field` left in ``pdf``: the byte range is everything but the
    ``/Contents`` value, the signature is over those bytes."""
    found = _PLACEHOLDERS.search(pdf)
    if found is None:
        raise SigningError("the document has no empty signature field")
    start, end = found.span(1)
    byte_range = b"[0 %d %d %d]" % (start, end, len(pdf) - end)
    placeholder_at = found.start() + len(b"/ByteRange ")
    document = bytearray(pdf)
    document[placeholder_at:placeholder_at + len(_BYTE_RANGE_PLACEHOLDER)] = byte_range.ljust(
        len(_BYTE_RANGE_PLACEHOLDER))
    digest = hashlib.sha256(document[:start])
    digest.update(document[end:])
    signature = cms_signature(key, digest.digest()).hex().encode()
    if len(signature) > end - start - 2:
        raise SigningError("the signature does not fit its placeholder (signed with another key?)")
    document[start + 1:start + 1 + len(signature)] = signature
    return bytes(document)


# --- detached signatures over other content (audit checkpoints) -------------------------------------------------

class BadSignature(ValueError):
    """A detached signature that does not verify, is not ours, or does not parse."""


def sign_detached(content: bytes, key: SigningKey) -> bytes:
    """A detached CAdES signature (CMS SignedData, DER) over ``content``."""
    return cms_signature(key, hashlib.sha256(content).digest())


def verify_detached(signature: bytes, content: bytes, known: dict[str, x509.Certificate]) -> x509.Certificate:
    """The certificate (one of ``known``, fingerprint → certificate) whose key made ``signature`` over ``content``;
    :class:`BadSignature` when the content was changed, the signer is unknown or the signature is damaged."""
    from asn1crypto import cms  # parsing only: asn1crypto's cost is in building, which signing avoids

    try:
        signed_data = cms.ContentInfo.load(signature)["content"]
        signer_info = signed_data["signer_infos"][0]
        attributes = {attribute["type"].dotted: attribute["values"][0] for attribute in signer_info["signed_attrs"]}
        digest = attributes["1.2.840.113549.1.9.4"].native
        signed_attributes = b"\x31" + signer_info["signed_attrs"].dump()[1:]  # signed as a SET, carried as [0]
        value = signer_info["signature"].native
        certificate = x509.load_der_x509_certificate(signed_data["certificates"][0].chosen.dump())
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise BadSignature(f"the signature does not parse ({error})") from None
    if signer_info["digest_algorithm"]["algorithm"].native != "sha256" or digest != hashlib.sha256(content).digest():
        raise BadSignature("the signed content was changed")
    if certificate_fingerprint(certificate) not in known:
        raise BadSignature(f"signed by a certificate the service does not know ({signer_name(certificate)})")
    public_key = certificate.public_key()
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(value, signed_attributes, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(value, signed_attributes, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise BadSignature("the certificate's key is neither ECDSA nor RSA")
    except InvalidSignature:
        raise BadSignature("the signature does not verify") from None
    return certificate

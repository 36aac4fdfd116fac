"""Central's signing key: from ``DUESFLOW_SIGNING_KEY`` (PKCS#12), else a development key made once in the instance
folder; and the retired certificates whose signatures stay valid (docs/receipts.md, "Keys").
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from flask import Flask, current_app

from .receipts.signature import SigningKey, certificate_fingerprint

log = logging.getLogger(__name__)

DEVELOPMENT_KEY_FILE = "signing-key-development.p12"
DEVELOPMENT_SUBJECT = "中共中央组织部"
_CERTIFICATE_SUFFIXES = (".pem", ".crt", ".cer", ".der")


class SigningKeyError(RuntimeError):
    """The configured signing key or a retired certificate cannot be read."""


@dataclass(frozen=True)
class Signing:
    """The key that signs now, and every certificate whose signatures the service recognises as its own."""

    key: SigningKey
    development: bool
    retired: tuple[x509.Certificate, ...] = ()

    @property
    def known(self) -> dict[str, x509.Certificate]:
        """Fingerprint → certificate, the current one first."""
        certificates = (self.key.certificate, *self.retired)
        return {certificate_fingerprint(certificate): certificate for certificate in certificates}

    @property
    def certificate_pem(self) -> bytes:
        return self.key.certificate.public_bytes(serialization.Encoding.PEM)


def load_pkcs12(data: bytes, password: str | None, source: str) -> SigningKey:
    """The key, its certificate and any chain certificates of a PKCS#12 file's bytes."""
    try:
        return SigningKey.from_pkcs12(data, password.encode() if password else None)
    except ValueError as error:
        raise SigningKeyError(f"{source}: not a usable PKCS#12 file, or the password "
                              f"(DUESFLOW_SIGNING_KEY_PASSWORD) is wrong ({error})") from None


def new_development_key(now: datetime.datetime | None = None) -> bytes:
    """A PKCS#12 file (no password) with a fresh ECDSA P-256 key and a self-signed certificate for 中共中央组织部,
    valid ten years from now."""
    now = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEVELOPMENT_SUBJECT),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "duesflow development key, not for production"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"{DEVELOPMENT_SUBJECT}（开发用）"),
    ])
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return pkcs12.serialize_key_and_certificates(b"duesflow-development", key, certificate, None,
                                                 serialization.NoEncryption())


def development_key_file(instance_path: Path) -> bytes:
    """The development key of this instance folder, made by whichever process asks first.

    Written complete under a temporary name, then linked into place: the link fails if another worker got there
    first, and then everyone reads that worker's file, never half of one.
    """
    path = instance_path / DEVELOPMENT_KEY_FILE
    if not path.exists():
        with tempfile.NamedTemporaryFile(dir=instance_path, prefix=".signing-key-", delete=False) as handle:
            handle.write(new_development_key())
        try:
            os.chmod(handle.name, 0o600)
            os.link(handle.name, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(handle.name)
    return path.read_bytes()


def _certificates_in(data: bytes, source: str) -> list[x509.Certificate]:
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise SigningKeyError(f"{source}: not a PEM or DER certificate") from None


def retired_certificates(entries: Iterable[str]) -> tuple[x509.Certificate, ...]:
    """The certificates of ``DUESFLOW_SIGNING_OLD_CERTS``: files (PEM, several certificates each, or DER) and
    folders (their .pem, .crt, .cer and .der files)."""
    found: list[x509.Certificate] = []
    for entry in entries:
        path = Path(entry)
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _CERTIFICATE_SUFFIXES) if path.is_dir() \
            else [path]
        for file in files:
            try:
                data = file.read_bytes()
            except OSError as error:
                raise SigningKeyError(f"DUESFLOW_SIGNING_OLD_CERTS: {error}") from None
            found.extend(_certificates_in(data, str(file)))
    return tuple(found)


@functools.cache
def _load(key_file: str | None, password: str | None, instance_path: str, old_certs: tuple[str, ...],
          _stamp: float) -> Signing:
    if key_file:
        try:
            data = Path(key_file).read_bytes()
        except OSError as error:
            raise SigningKeyError(f"DUESFLOW_SIGNING_KEY: {error}") from None
        signing = Signing(load_pkcs12(data, password, key_file), False, retired_certificates(old_certs))
    else:
        data = development_key_file(Path(instance_path))
        signing = Signing(load_pkcs12(data, None, DEVELOPMENT_KEY_FILE), True, retired_certificates(old_certs))
        log.warning("receipts are signed with a DEVELOPMENT key (%s in the instance folder, self-signed, fingerprint "
                    "%s): set DUESFLOW_SIGNING_KEY to central's PKCS#12 file in production (docs/receipts.md)",
                    DEVELOPMENT_KEY_FILE, signing.key.fingerprint)
    current = signing.key.fingerprint
    retired = tuple(c for c in signing.retired if certificate_fingerprint(c) != current)
    return Signing(signing.key, signing.development, retired)


def _mtime(path: str | None) -> float:
    try:
        return os.stat(path).st_mtime if path else 0.0
    except OSError:
        return 0.0


def signing(app: Flask | None = None) -> Signing:
    """The app's signing key and retired certificates, read once per process (again when the key file changes)."""
    config = (app or current_app).config
    key_file = config["SIGNING_KEY"]
    return _load(key_file, config["SIGNING_KEY_PASSWORD"], (app or current_app).instance_path,
                 tuple(config["SIGNING_OLD_CERTS"]), _mtime(key_file))


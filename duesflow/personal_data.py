"""Resident ID numbers and phone numbers at rest: encrypted, and findable only through a keyed hash.

Each value is stored as a Fernet token (AES-128-CBC with HMAC-SHA256, random IV) under the current data key;
beside it a blind index, HMAC-SHA256 of the normalised value under a key derived from the same data key, lets
an exact value be found without decrypting every row. Retired keys stay readable until ``rotate-data-key``
has re-encrypted every row under the current key (docs/personal-data.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from typing import Literal

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import Text, TypeDecorator

PersonalField = Literal["id_number", "phone"]
PERSONAL_FIELDS: tuple[PersonalField, ...] = ("id_number", "phone")
EXTENSION = "duesflow.data_keys"


class DataKeyError(RuntimeError):
    """The configured data key is malformed, or a stored value is not readable with any configured key."""


def generate_key() -> str:
    """A new data key: 32 random bytes, URL-safe base64, as ``DUESFLOW_DATA_KEY`` takes it."""
    return Fernet.generate_key().decode()


def _index_key(data_key: bytes) -> bytes:
    # A separate key for the blind index, so that the hash never reuses the encryption key's bytes.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"duesflow blind index v1").derive(data_key)


class DataKeys:
    """The current data key (encrypts, indexes) and the retired ones (still read, still searched)."""

    def __init__(self, current: str, retired: Sequence[str] = ()) -> None:
        raw = [self._decode(key, "DUESFLOW_DATA_KEY" if i == 0 else "DUESFLOW_DATA_OLD_KEYS")
               for i, key in enumerate([current, *retired])]
        self._current = Fernet(base64.urlsafe_b64encode(raw[0]))
        self._all = MultiFernet([Fernet(base64.urlsafe_b64encode(key)) for key in raw])
        self._index_keys = [_index_key(key) for key in raw]

    @staticmethod
    def _decode(key: str, name: str) -> bytes:
        try:
            raw = base64.urlsafe_b64decode(key.strip().encode())
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise DataKeyError(f"{name} must be 32 bytes in URL-safe base64 (make one with "
                               "`flask --app duesflow generate-data-key`)")
        return raw

    def encrypt(self, value: str) -> str:
        return self._current.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._all.decrypt(token.encode()).decode()
        except InvalidToken:
            raise DataKeyError("a stored personal value cannot be decrypted with DUESFLOW_DATA_KEY or "
                               "DUESFLOW_DATA_OLD_KEYS; was a key removed before rotate-data-key ran?") from None

    def is_current(self, token: str) -> bool:
        """Whether ``token`` was encrypted under the current key (else ``rotate-data-key`` re-encrypts it)."""
        try:
            self._current.decrypt(token.encode())
        except InvalidToken:
            return False
        return True

    def blind_index(self, field: PersonalField, value: str) -> str:
        """The keyed hash stored beside ``value`` (current key)."""
        return self._hash(self._index_keys[0], field, value)

    def search_indexes(self, field: PersonalField, value: str) -> list[str]:
        """Every hash ``value`` may be stored under while retired keys are still being rotated out."""
        return [self._hash(key, field, value) for key in self._index_keys]

    @staticmethod
    def _hash(key: bytes, field: PersonalField, value: str) -> str:
        return hmac.new(key, f"{field}:{value}".encode(), hashlib.sha256).hexdigest()


def init_app(app: object) -> None:
    """Read the keys from the configuration once; a malformed key stops the app at start, not at first use."""
    config = app.config  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = DataKeys(config["DATA_KEY"], config["DATA_OLD_KEYS"])  # type: ignore[attr-defined]


def data_keys() -> DataKeys:
    return current_app.extensions[EXTENSION]


class EncryptedText(TypeDecorator[str]):
    """A text column whose values are encrypted with the app's data key on the way in and out."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: object) -> str | None:
        return None if value is None else data_keys().encrypt(value)

    def process_result_value(self, value: str | None, dialect: object) -> str | None:
        return None if value is None else data_keys().decrypt(value)

"""Signing keys for tests: the service's (the development key of the app's instance folder) and strangers' own."""

from __future__ import annotations

import functools

from duesflow.receipts.signature import SigningKey
from duesflow.signing import new_development_key


@functools.cache
def stranger_key() -> SigningKey:
    """A key of the test's own, which the service has never seen (its certificate says 中共中央组织部 all the same)."""
    return SigningKey.from_pkcs12(new_development_key())


@functools.cache
def render_key() -> SigningKey:
    """A key for rendering receipts outside an app (the pure PDF tests)."""
    return SigningKey.from_pkcs12(new_development_key())

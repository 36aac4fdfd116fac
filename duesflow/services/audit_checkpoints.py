"""Signed audit checkpoints (SPEC §8): the length and head hash of every audit chain at a moment, signed with the
service's signing key, kept in the database and printed for an archive outside its reach.

The hash chain alone cannot show that its newest events were removed together with the head that pointed at them;
a checkpoint can: every chain must still hold, at the checkpointed length, the checkpointed head (each event's hash
covers all before it, so that proves the whole prefix). The checkpoint is built only on ``audit.chain_heads`` and
``audit.chain_hash_at``, whatever the chains are (one global chain, or one per grassroots org).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..extensions import db
from ..models import AuditCheckpoint, utcnow
from ..receipts.signature import BadSignature, sign_detached, signer_name, verify_detached
from ..signing import signing
from . import audit
from .audit import AuditProblem

FORMAT = "duesflow-audit-checkpoint/1"


class CheckpointRefused(ValueError):
    """A checkpoint file that is not one, or whose signature does not hold (edited, or signed by a stranger)."""


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint file says, its signature checked."""

    created_at: str
    chains: dict[str, tuple[int, str]]
    signed_by: str


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def write_checkpoint(now: datetime | None = None) -> AuditCheckpoint:
    """Sign the heads of every chain as they are now and keep the checkpoint (flushed, the caller commits)."""
    created_at = now or utcnow()
    payload = {
        "format": FORMAT,
        "created_at": created_at.isoformat(),
        "chains": {chain: {"length": length, "head": head}
                   for chain, (length, head) in sorted(audit.chain_heads().items())},
    }
    key = signing().key
    document = {
        "checkpoint": payload,
        "signed_by": key.signer_name,
        "certificate_sha256": key.fingerprint,
        "signature": base64.b64encode(sign_detached(_canonical(payload), key)).decode(),
    }
    row = AuditCheckpoint(created_at=created_at, signer_fingerprint=key.fingerprint,
                          document=json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    db.session.add(row)
    db.session.flush()
    return row


def read_checkpoint(text: str) -> Checkpoint:
    """The checkpoint a file holds, once its signature is checked against the service's certificates (current and
    retired); :class:`CheckpointRefused` otherwise."""
    try:
        document = json.loads(text)
        payload = document["checkpoint"]
        signature = base64.b64decode(document["signature"], validate=True)
        if payload["format"] != FORMAT:
            raise CheckpointRefused(f"unknown format {payload['format']!r}")
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise CheckpointRefused(f"not a checkpoint file ({error})") from None
    try:
        certificate = verify_detached(signature, _canonical(payload), signing().known)
    except BadSignature as bad:
        raise CheckpointRefused(f"its signature does not hold: {bad}") from None
    try:
        chains = {str(chain): (int(entry["length"]), str(entry["head"])) for chain, entry in payload["chains"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointRefused(f"its chains are malformed ({error})") from None
    return Checkpoint(str(payload["created_at"]), chains, signer_name(certificate))


def check_against(checkpoint: Checkpoint) -> AuditProblem | None:
    """The first chain that no longer holds what the checkpoint recorded: shorter (events removed or truncated), or
    another event where the checkpointed head was (rewritten)."""
    for chain, (length, head) in sorted(checkpoint.chains.items()):
        found = audit.chain_hash_at(chain, length)
        if found is None:
            return AuditProblem(f"chain {chain}", f"has fewer than the {length} events it had at the checkpoint of "
                                                  f"{checkpoint.created_at} (events removed or truncated)")
        if found != head:
            return AuditProblem(f"chain {chain}", f"its event {length} is not the head signed at the checkpoint of "
                                                  f"{checkpoint.created_at} (the trail was rewritten)")
    return None

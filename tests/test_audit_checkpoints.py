"""Signed audit checkpoints (SPEC §8): audit-checkpoint signs the length and head of every chain and keeps it;
verify-audit --checkpoint proves that nothing recorded before it was removed, truncated or rewritten, even where
the hash chain alone, its head moved back, cannot tell."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from signing_keys import stranger_key
from sqlalchemy import select, text
from test_audit_cli import trail  # noqa: F401 - the fixture: two payments of 北门 with five events

from duesflow.extensions import db
from duesflow.models import AuditCheckpoint, Event
from duesflow.receipts.signature import sign_detached
from duesflow.services import audit
from duesflow.services.audit_checkpoints import _canonical


def checkpoint(runner, tmp_path: Path, name: str = "checkpoint.json") -> Path:
    out = tmp_path / name
    result = runner.invoke(args=["audit-checkpoint", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def verify_with(runner, path: Path):  # noqa: ANN201
    return runner.invoke(args=["verify-audit", "--checkpoint", str(path)])


# Each of the head's counts of payments by state, recounted from the payments left.
RECOUNTED = ", ".join(f"{column.name} = (SELECT count(*) FROM payments WHERE payments.state = '{state}' AND "
                      "'org-' || payments.grassroots_org_id = audit_heads.chain)"
                      for state, column in audit.PAYMENT_COUNTS.items())


def move_head_back(to_hash: str) -> None:
    """What a database administrator covering their tracks would also do: point the chain's head at the event
    that is now the newest, and make its counts of payments by state those of the payments left."""
    db.session.execute(text("UPDATE audit_heads SET last_hash = :hash, "  # noqa: S608 - the columns' own names
                            "length = (SELECT count(*) FROM events WHERE events.chain = audit_heads.chain), "
                            f"{RECOUNTED}"), {"hash": to_hash})


def test_a_checkpoint_signs_every_chain_and_is_kept_in_the_database(runner, trail, tmp_path):  # noqa: F811
    path = checkpoint(runner, tmp_path)

    document = json.loads(path.read_text(encoding="utf-8"))
    newest = db.session.scalar(select(Event.hash).order_by(Event.id.desc()).limit(1))
    assert document["checkpoint"]["chains"] == {trail["chain"]: {"length": 5, "head": newest}}
    assert document["signed_by"] == "中共中央组织部" and document["signature"]
    stored = db.session.scalars(select(AuditCheckpoint)).one()
    assert stored.document == path.read_text(encoding="utf-8")


def test_without_out_the_checkpoint_is_printed(runner, trail):  # noqa: F811
    result = runner.invoke(args=["audit-checkpoint"])

    assert result.exit_code == 0
    assert json.loads(result.output)["checkpoint"]["chains"][trail["chain"]]["length"] == 5


def test_a_trail_that_grew_since_the_checkpoint_passes(runner, api, trail, tmp_path):  # noqa: F811
    path = checkpoint(runner, tmp_path)
    api.act(trail["p2"], "forward", "tiedong")

    result = verify_with(runner, path)

    assert result.exit_code == 0, result.output
    assert "检查点" in result.output and "无一缺失或改动" in result.output


def test_deleting_a_committees_newest_payment_with_its_events_fails_against_the_checkpoint(
        runner, trail, tmp_path):  # noqa: F811
    path = checkpoint(runner, tmp_path)
    third = db.session.get(Event, trail["e3"]).hash
    db.session.execute(text("DELETE FROM events WHERE payment_id = :p2"), {"p2": trail["p2"]})
    db.session.execute(text("DELETE FROM payments WHERE id = :p2"), {"p2": trail["p2"]})
    move_head_back(third)
    db.session.commit()

    assert runner.invoke(args=["verify-audit"]).exit_code == 0  # the chain alone cannot tell
    result = verify_with(runner, path)

    assert result.exit_code == 1
    assert f"chain {trail['chain']}" in result.output and "fewer than the 5 events" in result.output


def test_a_truncated_chain_fails_against_the_checkpoint(runner, trail, tmp_path):  # noqa: F811
    path = checkpoint(runner, tmp_path)
    for table in ("events", "payments"):
        db.session.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed table names
    move_head_back(audit.GENESIS_HASH)
    db.session.commit()

    assert runner.invoke(args=["verify-audit"]).exit_code == 0
    assert verify_with(runner, path).exit_code == 1


def test_a_trail_rewritten_with_fresh_hashes_fails_against_the_checkpoint(runner, trail, tmp_path):  # noqa: F811
    path = checkpoint(runner, tmp_path)
    events = db.session.scalars(select(Event).order_by(Event.id)).all()
    events[1].note = "改写过的历史"
    previous = audit.GENESIS_HASH
    for event in events:  # every hash recomputed: the chain itself is consistent again
        event.prev_hash, event.hash = previous, audit.event_hash(previous, event)
        previous = event.hash
    move_head_back(previous)
    db.session.commit()

    assert runner.invoke(args=["verify-audit"]).exit_code == 0
    result = verify_with(runner, path)

    assert result.exit_code == 1 and "rewritten" in result.output


@pytest.mark.parametrize("edit", ["length", "head", "time", "signature"])
def test_an_edited_checkpoint_file_fails_its_signature(runner, trail, tmp_path, edit):  # noqa: F811
    path = checkpoint(runner, tmp_path)
    document = json.loads(path.read_text(encoding="utf-8"))
    entry = document["checkpoint"]["chains"][trail["chain"]]
    if edit == "length":
        entry["length"] = 4
    elif edit == "head":
        entry["head"] = "0" * 64
    elif edit == "time":
        document["checkpoint"]["created_at"] = "2020-01-01T00:00:00+00:00"
    else:
        signature = bytearray(base64.b64decode(document["signature"]))
        signature[-10] ^= 0x01  # inside the signature value, the last field of the DER
        document["signature"] = base64.b64encode(bytes(signature)).decode()
    path.write_text(json.dumps(document), encoding="utf-8")

    result = verify_with(runner, path)

    assert result.exit_code == 1 and "检查点文件不可信" in result.output


def test_a_checkpoint_signed_by_a_stranger_is_refused(runner, trail, tmp_path):  # noqa: F811
    path = checkpoint(runner, tmp_path)
    document = json.loads(path.read_text(encoding="utf-8"))
    document["checkpoint"]["chains"][trail["chain"]]["length"] = 1
    document["signature"] = base64.b64encode(sign_detached(_canonical(document["checkpoint"]), stranger_key())).decode()
    path.write_text(json.dumps(document), encoding="utf-8")

    result = verify_with(runner, path)

    assert result.exit_code == 1 and "does not know" in result.output


def test_a_file_that_is_no_checkpoint_is_refused(runner, trail, tmp_path):  # noqa: F811
    path = tmp_path / "junk.json"
    path.write_text("{not json", encoding="utf-8")

    assert verify_with(runner, path).exit_code == 1


def test_chain_hash_at_names_the_nth_event_and_none_beyond(trail):  # noqa: F811
    hashes = db.session.scalars(select(Event.hash).order_by(Event.id)).all()

    assert [audit.chain_hash_at(trail["chain"], n) for n in (1, 5)] == [hashes[0], hashes[4]]
    assert audit.chain_hash_at(trail["chain"], 6) is None and audit.chain_hash_at("elsewhere", 1) is None
    assert audit.chain_heads() == {trail["chain"]: (5, hashes[4])}

"""verify-audit's fast pass (issue 15): the event content written out by hand is json.dumps' text, and the chains
checked in several processes name the same first bad record as one pass does."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text

from duesflow.extensions import db
from duesflow.models import Event, Payment
from duesflow.services.audit import GENESIS_HASH, _content, _split, chain_key, verify_audit


class _Event:
    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)


EVENTS = [
    {"chain": "org-1", "payment_id": 1, "action": "record", "from_state": None, "to_state": "pending",
     "from_org_id": None, "to_org_id": 7, "actor_id": 3, "note": None, "details": {"amount": "1000.00"},
     "at": datetime(2026, 12, 2, 21, 13, 56, 154773, tzinfo=UTC)},
    {"chain": "general", "payment_id": 2**40, "action": "correct", "from_state": "pending", "to_state": "pending",
     "from_org_id": 12, "to_org_id": 12, "actor_id": 1, "note": '改"过\\的\n理由\u2028 é',
     "details": {"old": {"amount": "1.00", "member": "王"}, "new": {"amount": "2.50"}, "z": [1, 2.5, None, True]},
     "at": datetime(2026, 1, 1, tzinfo=UTC)},
    {"chain": "org-99", "payment_id": 5, "action": "deliver", "from_state": "receipted", "to_state": "receipted",
     "from_org_id": 99, "to_org_id": 1, "actor_id": 0, "note": "", "details": {},
     "at": datetime(2026, 6, 30, 23, 59, 59, 1, tzinfo=UTC)},
]


@pytest.mark.parametrize("values", EVENTS, ids=[event["action"] for event in EVENTS])
def test_the_content_written_by_hand_is_json_dumps_text(values):
    expected = json.dumps({**values, "at": values["at"].isoformat()}, sort_keys=True, ensure_ascii=False,
                          separators=(",", ":"))
    assert _content(_Event(**values)) == expected


@pytest.fixture
def chains(api, world) -> dict[str, object]:
    """Three committees' chains: beimen (record, submit, forward; record), jiefang (record, submit), dongcheng
    (record)."""
    first = api.record(world.members["zhang"])["id"]
    api.act(first, "submit", "clerk")
    api.act(first, "forward", "tiedong")
    api.record(world.members["li"], "2000")
    second = api.record(world.members["zhou"], as_user="clerk_jiefang")["id"]
    api.act(second, "submit", "clerk_jiefang")
    third = api.record(world.members["wang"], as_user="clerk_dongcheng")["id"]
    names = {name: chain_key(world.orgs[name].id) for name in ("beimen", "jiefang", "dongcheng")}
    last = {name: db.session.scalar(select(Event.id).where(Event.chain == chain).order_by(Event.position.desc())
                                    .limit(1)) for name, chain in names.items()}
    return {"payments": {"beimen": first, "jiefang": second, "dongcheng": third}, "chains": names, "last": last,
            "orgs": {name: world.orgs[name].id for name in names}}


def test_the_chains_are_split_into_ranges_that_cover_everything(chains):
    parts = _split(2)
    assert len(parts) == 2 and parts[0].low is None and parts[-1].high is None
    assert parts[0].high == parts[1].low
    for chain in [*chains["chains"].values(), "", "general", "org-999999", "zzz"]:
        assert sum(chain in part for part in parts) == 1


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_a_clean_trail_passes_in_any_number_of_processes(chains, jobs):
    assert verify_audit(jobs) is None


def test_the_cli_takes_jobs(runner, chains):
    result = runner.invoke(args=["verify-audit", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    db.session.execute(text("UPDATE events SET note = 'x' WHERE id = :id"), {"id": chains["last"]["dongcheng"]})
    db.session.commit()
    result = runner.invoke(args=["verify-audit", "--jobs", "2"])
    assert result.exit_code == 1 and f"event {chains['last']['dongcheng']}:" in result.output, result.output


# each: statements run against the trail (parameters from the fixture), in one chain or in several
TAMPERING = {
    "edit_each_chain": ["UPDATE events SET note = 'x' WHERE id IN (:beimen_last, :jiefang_last, :dongcheng_last)"],
    "edit_last_chain": ["UPDATE events SET note = 'x' WHERE id = :dongcheng_last"],
    "delete_newest_of_two": ["DELETE FROM events WHERE id IN (:jiefang_last, :dongcheng_last)"],
    "head_of_one": ["UPDATE audit_heads SET last_hash = :zero WHERE chain = :dongcheng_chain"],
    "head_without_events": ["INSERT INTO audit_heads (chain, length, last_hash) VALUES ('org-0', 1, :zero)"],
    "move_between_chains": ["UPDATE events SET chain = :beimen_chain, position = 99 WHERE id = :dongcheng_last"],
    "payment_state": ["UPDATE payments SET state = 'at_central' WHERE id = :dongcheng_payment"],
    "payment_moved_to_another_committee": [
        "UPDATE payments SET grassroots_org_id = :beimen_org WHERE id = :dongcheng_payment"],
    "payment_moved_back": ["UPDATE payments SET grassroots_org_id = :dongcheng_org WHERE id = :beimen_payment"],
    "payment_amount_in_two": ["UPDATE payments SET amount = 5000 WHERE id IN (:jiefang_payment, :dongcheng_payment)"],
}


@pytest.mark.payment_counts_unchecked("it changes payments behind the service's back, to see verify-audit name it")
@pytest.mark.parametrize("statements", list(TAMPERING.values()), ids=list(TAMPERING))
def test_several_processes_name_the_record_one_pass_names(chains, statements):
    values = {"zero": GENESIS_HASH}
    for name in ("beimen", "jiefang", "dongcheng"):
        values |= {f"{name}_last": chains["last"][name], f"{name}_chain": chains["chains"][name],
                   f"{name}_payment": chains["payments"][name], f"{name}_org": chains["orgs"][name]}
    for statement in statements:
        sql = text(statement)
        db.session.execute(sql, {name: values[name] for name in sql.compile().params})
    db.session.commit()

    single = verify_audit(1)

    assert single is not None
    assert verify_audit(2) == single
    assert verify_audit(3) == single
    db.session.rollback()
    assert db.session.scalar(select(Payment.id).limit(1)) is not None  # this process's session still works

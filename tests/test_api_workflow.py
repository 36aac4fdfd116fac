"""The whole path through the API: record → four levels → confirm → receipt → verification."""

from __future__ import annotations

from conftest import PATH_TO_CENTRAL, advance


def test_payment_travels_level_by_level_to_central_and_is_receipted(api, world):
    payment = api.record(world.members["zhang"], "12345.67")
    assert payment["state"] == "recorded"
    assert payment["available_actions"] == ["submit", "withdraw"]
    expected_holders = ["tiedong", "siping", "jilin", "central"]
    for (action, user), holder in zip(PATH_TO_CENTRAL, expected_holders, strict=True):
        payment = api.act(payment["id"], action, user)
        assert payment["holder_org"]["id"] == world.orgs[holder].id
    assert payment["state"] == "at_central"
    confirmed = api.act(payment["id"], "confirm", "central")
    assert confirmed["state"] == "receipted"
    receipt = confirmed["receipt"]
    assert receipt["number"].endswith("-000001") and receipt["version"] == 1
    assert [e["action"] for e in confirmed["events"]] == [
        "record", "submit", "forward", "forward", "forward", "confirm"]
    verified = api.get(f"/receipts/{receipt['number']}/verify?code={receipt['verification_code'].lower()}")
    assert verified.status_code == 200
    assert verified.json["member_name"] == "张**" and verified.json["amount"] == "12345.67"


def test_reviewer_cannot_skip_a_level(api, world):
    payment = api.record(world.members["zhang"])
    advance(api, payment["id"], 1)
    api.act(payment["id"], "forward", "siping", expect=409)
    api.act(payment["id"], "forward", "jilin", expect=409)

"""Central confirms a received transfer as a whole (SPEC §9): every payment still at central is receipted, with
consecutive receipt numbers in payment-id order, in one transaction; also against concurrent single
confirmations on a real multi-worker server."""

from __future__ import annotations

import uuid

import pytest
import requests
from conftest import advance, payment_row
from live import concurrently, live_api, live_server, read, release_database, run_verify_audit
from sqlalchemy import func, select
from test_transfers import BANK, recorded, send, transfer_to

from duesflow.extensions import db
from duesflow.models import Event, Notification, Receipt, ReceiptSequence
from duesflow.services.audit import verify_audit

__all__ = ["live_api", "live_server"]


def received_at_central(api, world, count: int = 3) -> dict:  # noqa: ANN001
    """``count`` 北门 payments sent to central in one transfer by 吉林, whose money central has received."""
    ids = recorded(api, world, count)
    for payment_id in ids:
        advance(api, payment_id, 3)
    transfer = send(api, ids, "jilin").json
    received = api.post(f"/transfers/{transfer['id']}/receive", "central", json={"amount_received": transfer["total"]})
    assert received.status_code == 200
    return transfer


def receipt_numbers(payment_ids: list[int]) -> list[str]:
    db.session.expire_all()
    return [payment_row(payment_id).receipt.number for payment_id in payment_ids]


def test_central_confirms_a_received_transfer_with_consecutive_numbers_in_id_order(api, world, runner):
    single = recorded(api, world, 1)[0]
    advance(api, single, 4)
    api.act(single, "confirm", "central")  # number 1 is taken before
    transfer = received_at_central(api, world, 4)
    ids = transfer["payment_ids"]

    response = api.post(f"/transfers/{transfer['id']}/confirm", "central")

    assert response.status_code == 200, response.json
    year = receipt_numbers([single])[0][:4]
    assert response.json == {"count": 4, "first_number": f"{year}-000002", "last_number": f"{year}-000005"}
    assert receipt_numbers(sorted(ids)) == [f"{year}-00000{n}" for n in range(2, 6)]
    for payment_id in ids:
        detail = api.get(f"/payments/{payment_id}", "central").json
        assert detail["state"] == "receipted" and detail["events"][-1]["action"] == "confirm"
        assert detail["receipt"]["verification_code"]
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 5
    assert verify_audit() is None
    assert runner.invoke(args=["verify-audit"]).exit_code == 0
    pdf = api.get(f"/payments/{ids[0]}/receipt.pdf", "central")  # built on first download, as ever
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"


def test_only_payments_still_at_central_are_confirmed(api, world):
    transfer = received_at_central(api, world, 3)
    first, second, third = transfer["payment_ids"]
    api.act(first, "confirm", "central")
    api.act(second, "reject", "central", "身份无法核实")

    response = api.post(f"/transfers/{transfer['id']}/confirm", "central")

    assert response.json["count"] == 1 and response.json["first_number"] == response.json["last_number"]
    assert payment_row(third).state == "receipted" and payment_row(second).state == "rejected"
    again = api.post(f"/transfers/{transfer['id']}/confirm", "central")
    assert again.json == {"count": 0, "first_number": None, "last_number": None}
    assert verify_audit() is None


def test_a_payment_back_at_central_in_a_later_unreceived_transfer_waits_for_that_one(api, world):
    transfer = received_at_central(api, world, 2)
    payment_id = transfer["payment_ids"][0]
    api.act(payment_id, "return", "central", "请核对")  # back to 吉林, then up again in a new transfer
    later = send(api, [payment_id], "jilin", bank_reference="LATER").json

    response = api.post(f"/transfers/{transfer['id']}/confirm", "central")

    assert response.json["count"] == 1 and payment_row(payment_id).state == "at_central"
    refused = api.post(f"/transfers/{later['id']}/confirm", "central")
    assert refused.status_code == 409 and refused.json["error"]["code"] == "funds_not_received"


def test_a_transfer_not_yet_received_is_409_and_nothing_is_confirmed(api, world):
    transfer = transfer_to(api, world, "central")

    response = api.post(f"/transfers/{transfer['id']}/confirm", "central")

    assert response.status_code == 409 and response.json["error"]["code"] == "funds_not_received"
    assert {payment_row(i).state for i in transfer["payment_ids"]} == {"at_central"}
    assert db.session.scalar(select(func.count()).select_from(Receipt)) == 0


@pytest.mark.parametrize(("user", "status", "code"), [
    ("beijing", 404, "not_found"),
    ("clerk_dongcheng", 404, "not_found"),
    ("member", 403, "forbidden"),
    ("admin", 403, "forbidden"),
    ("clerk", 404, "not_found"),           # sent from 吉林: outside 北门's subtree
    ("jilin", 403, "forbidden"),
])
def test_order_of_checks_when_confirming(api, world, user, status, code):
    transfer = received_at_central(api, world, 1)

    response = api.post(f"/transfers/{transfer['id']}/confirm", user)

    assert (response.status_code, response.json["error"]["code"]) == (status, code)
    assert payment_row(transfer["payment_ids"][0]).state == "at_central"


def test_a_transfer_below_central_cannot_be_confirmed(api, world):
    transfer = transfer_to(api, world, "tiedong")
    api.post(f"/transfers/{transfer['id']}/receive", "tiedong", json={"amount_received": transfer["total"]})

    response = api.post(f"/transfers/{transfer['id']}/confirm", "central")

    assert response.status_code == 409 and response.json["error"]["code"] == "invalid_transition"
    assert api.post("/transfers/999999/confirm", "central").status_code == 404


def test_central_confirms_on_the_transfer_page(app, api, world):
    from test_transfers import login

    transfer = received_at_central(api, world, 2)
    page = login(app, "central")
    shown = page.get(f"/transfers/{transfer['id']}").get_data(as_text=True)
    assert "全部确认并开具收据" in shown

    response = page.post(f"/transfers/{transfer['id']}/confirm", {})

    assert response.status_code == 302
    assert {payment_row(i).state for i in transfer["payment_ids"]} == {"receipted"}
    assert "全部确认并开具收据" not in page.get(f"/transfers/{transfer['id']}").get_data(as_text=True)
    assert "全部确认并开具收据" not in login(app, "jilin").get(f"/transfers/{transfer['id']}").get_data(as_text=True)


# ---- races against a real multi-worker server ---------------------------------------------------------


def test_a_transfer_confirmation_and_single_confirmations_keep_numbers_gapless(live_server, live_api, world,
                                                                               database_url):
    member = read(lambda: world.members["zhang"].id)
    ids = [live_api.record(member)["id"] for _ in range(8)]
    for payment_id in ids:
        for action, user in (("submit", "clerk"), ("forward", "tiedong"), ("forward", "siping")):
            assert live_api.call("POST", f"/payments/{payment_id}/{action}", user).status_code == 200
    transfer = live_api.call("POST", "/transfers", "jilin", json={"payment_ids": ids[:6], "bank_reference": BANK})
    assert transfer.status_code == 201, transfer.text
    transfer_id = transfer.json()["id"]
    received = live_api.call("POST", f"/transfers/{transfer_id}/receive", "central",
                             json={"amount_received": transfer.json()["total"]})
    assert received.status_code == 200
    for payment_id in ids[6:]:
        assert live_api.call("POST", f"/payments/{payment_id}/forward", "jilin").status_code == 200
    token = live_api.token("central")
    # the whole transfer, and single confirmations of two of its payments and of the two that came by forward
    paths = [f"/transfers/{transfer_id}/confirm"] + [f"/payments/{i}/confirm" for i in (ids[1], ids[4], *ids[6:])]

    def call(path: str) -> requests.Response:
        with requests.Session() as session:
            return live_api.call("POST", path, token=token, probe=uuid.uuid4().hex, session=session)

    answers = concurrently(call, paths)

    assert all(a.status_code in (200, 409) for a in answers), [a.text for a in answers]
    release_database()
    numbers = sorted(db.session.scalars(select(Receipt.sequence)))
    confirms = db.session.scalar(select(func.count()).select_from(Event).where(Event.action == "confirm"))
    last = db.session.scalar(select(ReceiptSequence.last_number))
    release_database()
    assert numbers == list(range(1, 9)) and confirms == 8 and last == 8  # every payment once, no gap
    result = run_verify_audit(database_url)
    assert result.returncode == 0, result.stdout + result.stderr

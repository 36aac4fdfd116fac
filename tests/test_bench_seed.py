"""bench/bench_seed.py (issue 7): N payments over a deep org tree in every state, with a valid audit trail,
gapless receipt numbers, and accounts that can read them through the API."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import parallel
import pytest
from sqlalchemy import func, select

from bench.bench_seed import _beijing_date, _micros, bench_seed
from duesflow.extensions import db
from duesflow.models import Event, Member, Org, Payment, Receipt, ReceiptSequence, Refund, User, utcnow
from duesflow.workflow import State

PAYMENTS = 300
PASSWORD = "bench-password"


@pytest.fixture
def seeded(app, runner):  # noqa: ANN001, ANN201
    """The seeded database: seeded by the command in the process's first test, its rows written back in the next
    ones (tests/parallel.py, ``save``): every test reads what one run of the command wrote."""
    result = parallel.restore_saved(app, "bench_seed")
    if result is None:
        result = runner.invoke(bench_seed, args=["--payments", str(PAYMENTS), "--seed", "7"])
        assert result.exit_code == 0, result.output
        parallel.save(app, "bench_seed", result)
    db.session.commit()
    db.session.expire_all()
    return result


def token(client, username: str) -> dict[str, str]:  # noqa: ANN001
    response = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.json
    return {"Authorization": f"Bearer {response.json['token']}"}


def test_it_creates_exactly_n_payments_in_every_state_most_of_them_receipted(seeded):
    counts = dict(db.session.execute(select(Payment.state, func.count()).group_by(Payment.state)).all())
    assert sum(counts.values()) == PAYMENTS
    assert set(counts) == {state.value for state in State}
    assert counts[State.RECEIPTED] > PAYMENTS * 0.8
    assert "bench-central" in seeded.output and PASSWORD in seeded.output


def test_the_tree_is_deep_and_payments_wait_at_every_level_of_it(seeded):
    depth = max(len(org.ancestor_ids) for org in db.session.scalars(select(Org)))
    assert depth >= 6  # central → province → city → district → street → grassroots
    assert db.session.scalar(select(func.count()).select_from(Org).where(Org.kind == "grassroots")) >= 300
    levels = {payment.path.index(payment.holder_org_id)
              for payment in db.session.scalars(select(Payment).where(Payment.state == State.IN_REVIEW))}
    assert {1, 2, 3, 4} <= levels


def test_verify_audit_passes_after_seeding(seeded, runner):
    result = runner.invoke(args=["verify-audit"])
    assert result.exit_code == 0, result.output


def test_each_payment_carries_the_history_the_services_would_have_written(seeded):
    counts = dict(db.session.execute(select(Event.payment_id, func.count()).group_by(Event.payment_id)).all())
    for payment in db.session.scalars(select(Payment)):
        assert payment.version == counts[payment.id]  # the optimistic lock moved once per change
        submitted = db.session.scalar(select(func.count()).select_from(Event).where(
            Event.payment_id == payment.id, Event.action == "submit"))
        assert (payment.path is not None) == bool(submitted)
        if payment.path:
            assert payment.path == list(reversed(payment.grassroots_org.ancestor_ids))
        assert payment.collected_on <= _beijing_date(_micros(payment.created_at))
        assert payment.created_at <= payment.updated_at <= utcnow()
    refunded = db.session.scalar(select(func.count()).select_from(Payment).where(Payment.state == State.REFUNDED))
    assert db.session.scalar(select(func.count()).select_from(Refund)) == refunded


def test_events_are_numbered_in_the_order_they_happened(seeded):
    moments = db.session.scalars(select(Event.at).order_by(Event.id)).all()
    assert moments == sorted(moments)
    created = db.session.scalars(select(Payment.created_at).order_by(Payment.id)).all()
    assert created == sorted(created)
    a_year_ago = utcnow() - timedelta(days=365)
    last_year = sum(moment > a_year_ago for moment in created)
    assert PAYMENTS / 3 * 0.8 < last_year < PAYMENTS / 3 * 1.2  # spread over three years


def test_receipt_numbers_are_gapless_per_beijing_year_in_issue_order(seeded):
    receipts = db.session.scalars(select(Receipt).order_by(Receipt.issued_at, Receipt.id)).all()
    assert len(receipts) >= PAYMENTS * 0.8
    years = sorted({receipt.year for receipt in receipts})
    assert len(years) >= 3
    for year in years:
        of_year = [receipt for receipt in receipts if receipt.year == year]
        assert [receipt.sequence for receipt in of_year] == list(range(1, len(of_year) + 1))
        assert all(receipt.number == f"{year}-{receipt.sequence:06d}" for receipt in of_year)
        assert all(receipt.issued_on.year == year for receipt in of_year)
        assert db.session.get(ReceiptSequence, year).last_number == len(of_year)
    assert all(earlier.issued_at <= later.issued_at for earlier, later in pairwise(receipts))


def test_members_were_made_through_the_model_with_valid_particulars(seeded):
    members = db.session.scalars(select(Member)).all()
    assert len(members) >= 1000
    with_id = [member for member in members if member.id_number]
    assert len(with_id) > len(members) * 0.8
    from duesflow.identity import validate_resident_id

    assert all(validate_resident_id(member.id_number) == member.id_number for member in with_id[:200])
    assert len({member.id_number for member in with_id}) == len(with_id)


def test_a_second_run_is_refused_and_adds_nothing(seeded, runner):
    result = runner.invoke(bench_seed, args=["--payments", "10"])
    assert result.exit_code == 1
    assert "已有款项" in result.output
    assert db.session.scalar(select(func.count()).select_from(Payment)) == PAYMENTS


def test_seeded_central_and_reviewer_can_list_and_read_payments(seeded, client):
    central = token(client, "bench-central")
    listing = client.get("/api/v1/payments?limit=5", headers=central)
    assert listing.status_code == 200
    assert len(listing.json["items"]) == 5 and listing.json["next_cursor"]
    receipted = db.session.scalars(select(Payment).where(Payment.state == State.RECEIPTED).limit(1)).one()
    detail = client.get(f"/api/v1/payments/{receipted.id}", headers=central)
    assert detail.status_code == 200
    actions = [event["action"] for event in detail.json["events"]]
    assert actions[0] == "record" and actions.index("submit") < actions.index("confirm")  # corrections may come between
    receipt = detail.json["receipt"]
    check = client.get(f"/api/v1/receipts/{receipt['number']}/verify?code={receipt['verification_code'].lower()}")
    assert check.status_code == 200 and check.json["valid"] is not False

    reviewer = db.session.get(User, receipted.path and db.session.scalar(
        select(User.id).where(User.org_id == receipted.path[1], User.role == "reviewer")))
    assert reviewer is not None and reviewer.username.startswith("bench-r-")
    as_reviewer = token(client, reviewer.username)
    assert client.get(f"/api/v1/payments/{receipted.id}", headers=as_reviewer).status_code == 200
    mine = client.get("/api/v1/payments?limit=200", headers=as_reviewer).json["items"]
    assert mine and all(item["grassroots_org"]["id"] in _subtree(reviewer.org_id) for item in mine)
    outsider = db.session.scalars(select(Payment).where(Payment.grassroots_org_id.not_in(
        _subtree(reviewer.org_id))).limit(1)).one()
    assert client.get(f"/api/v1/payments/{outsider.id}", headers=as_reviewer).status_code == 404


def test_seeded_member_sees_only_its_own_payments(seeded, client):
    member = db.session.scalars(select(User).where(User.username == "bench-member-1")).one()
    items = client.get("/api/v1/payments?limit=200", headers=token(client, "bench-member-1")).json["items"]
    own = db.session.scalar(select(func.count()).select_from(Payment).where(Payment.member_id == member.member_id))
    assert own >= 1 and len(items) == own


def _subtree(org_id: int) -> set[int]:
    org = db.session.get(Org, org_id)
    return set(db.session.scalars(select(Org.id).where(Org.tree_path.startswith(org.tree_path))))


def test_per_year_spreads_the_payments_over_as_many_days_as_that_rate_needs(runner):
    result = runner.invoke(bench_seed, args=["--payments", "200", "--per-year", "3650", "--members", "400"])
    assert result.exit_code == 0, result.output
    first, last = db.session.execute(select(func.min(Payment.created_at), func.max(Payment.created_at))).one()
    assert timedelta(days=14) < last - first <= timedelta(days=21)  # 200 payments at ten a day: twenty days
    assert db.session.scalar(select(func.count()).select_from(Member)) == 400


def test_per_year_refuses_a_span_beyond_fifteen_years(runner):
    result = runner.invoke(bench_seed, args=["--payments", "1000", "--per-year", "10"])
    assert result.exit_code != 0 and "fifteen years" in result.output
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0

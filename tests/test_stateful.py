"""The workflow as a state machine (issue 6, point 3): random actions by random users on random payments through
the HTTP API, with the books checked after every step.

After each step: every payment's state and holder are what its events replay to; the receipted amounts add up
to the amounts of the live receipts; a live receipt belongs to a receipted payment (a voided one only to a
payment whose events voided it), and each receipted payment has exactly one; receipt numbers of each year are
1..N without a gap; and ``verify_audit()`` passes. Bounded (seeded, 15 runs of 40 steps) to stay well under a
minute on two cores.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest
from conftest import _clean, make_member, make_org, make_user
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import select

from duesflow.extensions import db
from duesflow.models import Event, Payment, Receipt
from duesflow.services import auth
from duesflow.services.audit import verify_audit
from duesflow.timeutil import beijing_today
from duesflow.workflow import OrgKind

ACTIONS = ["submit", "forward", "return", "reject", "confirm", "withdraw"]
RECEIPT_CHANGES = ["reissue", "void"]
# Statuses a well-behaved service may answer an action with; anything else (a 500 above all) fails the run.
EXPECTED_STATUSES = {200, 403, 404, 409, 422}
AMOUNTS = st.sampled_from(["1000", "1000.00", "1234.56", "2000", "99999.99", "999.99"])


def build_world() -> dict[str, Any]:
    """central → 吉林 → 四平 → 铁东 → {北门, 解放}; central → 北京 → 东城; a user of every role, bearer tokens."""
    central = make_org("中共中央组织部", OrgKind.CENTRAL, None)
    jilin = make_org("中共吉林省委组织部", OrgKind.CHANNEL, central)
    siping = make_org("中共四平市委组织部", OrgKind.INTERMEDIATE, jilin)
    tiedong = make_org("中共四平市铁东区委组织部", OrgKind.INTERMEDIATE, siping)
    beimen = make_org("北门街道党工委", OrgKind.GRASSROOTS, tiedong)
    jiefang = make_org("解放街道党工委", OrgKind.GRASSROOTS, tiedong)
    beijing = make_org("中共北京市委组织部", OrgKind.CHANNEL, central)
    dongcheng = make_org("东城街道党工委", OrgKind.GRASSROOTS, beijing)
    members = {"beimen": [make_member(beimen, "张建国"), make_member(beimen, "李秀兰")],
               "jiefang": [make_member(jiefang, "周海峰")], "dongcheng": [make_member(dongcheng, "王府井")]}
    users = [
        make_user("admin", "admin"), make_user("clerk", "clerk", beimen), make_user("clerk_jiefang", "clerk", jiefang),
        make_user("clerk_dongcheng", "clerk", dongcheng), make_user("tiedong", "reviewer", tiedong),
        make_user("siping", "reviewer", siping), make_user("jilin", "reviewer", jilin),
        make_user("beijing", "reviewer", beijing), make_user("central", "central", central),
        make_user("member", "member", member=members["beimen"][0]),
    ]
    tokens = {user.username: auth.issue_token(user).token for user in users}
    clerks = {"clerk": members["beimen"], "clerk_jiefang": members["jiefang"],
              "clerk_dongcheng": members["dongcheng"]}
    world = {"tokens": tokens, "users_by_org": {user.org_id: user.username for user in users if user.org_id},
             "member_ids": {clerk: [member.id for member in owned] for clerk, owned in clerks.items()}}
    db.session.commit()
    return world


class PaymentWorkflow(RuleBasedStateMachine):
    """One run: a fresh database, then random requests; the invariants are checked after each."""

    def __init__(self, app: Flask, database_url: str) -> None:
        super().__init__()
        db.session.remove()
        _clean(database_url)
        self.world = build_world()
        self.client = app.test_client()
        self.payments: list[int] = []
        self.usernames = sorted(self.world["tokens"])

    # ---- helpers ---------------------------------------------------------------------------------------

    def request(self, method: str, path: str, username: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.world['tokens'][username]}"}
        response = self.client.open(f"/api/v1{path}", method=method, json=body, headers=headers)
        db.session.rollback()  # the test client shares the app context's session: read afresh after each call
        assert response.status_code in EXPECTED_STATUSES | {201}, (method, path, username, response.json)
        return response

    def pick(self, index: int) -> int:
        return self.payments[index % len(self.payments)]

    def holder_user(self, payment_id: int) -> str:
        holder = db.session.scalar(select(Payment.holder_org_id).where(Payment.id == payment_id))
        db.session.rollback()
        return self.world["users_by_org"].get(holder, "admin")

    def check_answer(self, response: Any, payment_id: int) -> None:
        if response.status_code == 200:
            row = db.session.get(Payment, payment_id)
            assert (response.json["state"], response.json["holder_org"]["id"]) == (row.state, row.holder_org_id)
            db.session.rollback()

    # ---- rules -----------------------------------------------------------------------------------------

    @rule(clerk=st.sampled_from(["clerk", "clerk", "clerk_jiefang", "clerk_dongcheng", "tiedong", "member"]),
          which=st.integers(0, 3), amount=AMOUNTS)
    def record(self, clerk: str, which: int, amount: str) -> None:
        own = self.world["member_ids"].get(clerk) or self.world["member_ids"]["clerk"]
        body = {"member_id": own[which % len(own)], "amount": amount, "collected_on": beijing_today().isoformat(),
                "method": "cash", "regular_dues_paid": True}
        response = self.request("POST", "/payments", clerk, body)
        if response.status_code == 201:
            self.payments.append(response.json["id"])
            assert Decimal(amount) >= 1000
        else:
            assert clerk not in self.world["member_ids"] or Decimal(amount) < 1000, response.json

    @precondition(lambda self: self.payments)
    @rule(index=st.integers(0, 5), choices=st.lists(st.integers(0, 5), min_size=1, max_size=6))
    def holders_take_offered_actions(self, index: int, choices: list[int]) -> None:
        """The holder org's user presses one of the buttons the payment offers it, mostly the one onward, and
        so on up the path for a few steps: what moves payments to central and to their receipts."""
        payment_id = self.pick(index)
        for choice in choices:
            username = self.holder_user(payment_id)
            offered = self.request("GET", f"/payments/{payment_id}", username)
            actions = offered.json.get("available_actions", []) if offered.status_code == 200 else []
            if not actions:
                return
            onward = [action for action in actions if action in ("submit", "forward", "confirm")]
            action = onward[0] if onward and choice < 4 else actions[choice % len(actions)]
            response = self.request("POST", f"/payments/{payment_id}/{action}", username, {"reason": "核对后处理"})
            assert response.status_code == 200, (action, response.json)
            self.check_answer(response, payment_id)
            self.books_agree()

    @precondition(lambda self: self.payments)
    @rule(index=st.integers(0, 10**6), action=st.sampled_from(ACTIONS), reason=st.booleans())
    def holder_acts(self, index: int, action: str, reason: bool) -> None:
        """The user of the org holding the payment tries any action, with or without a reason."""
        payment_id = self.pick(index)
        username = self.holder_user(payment_id)
        body = {"reason": "核对后处理"} if reason else None
        self.check_answer(self.request("POST", f"/payments/{payment_id}/{action}", username, body), payment_id)

    @precondition(lambda self: self.payments)
    @rule(index=st.integers(0, 10**6), action=st.sampled_from([*ACTIONS, "explode"]), user=st.integers(0, 99))
    def anyone_acts(self, index: int, action: str, user: int) -> None:
        payment_id = self.pick(index)
        username = self.usernames[user % len(self.usernames)]
        response = self.request("POST", f"/payments/{payment_id}/{action}", username, {"reason": "随机"})
        self.check_answer(response, payment_id)

    @precondition(lambda self: self.payments)
    @rule(index=st.integers(0, 10**6), amount=AMOUNTS, by_holder=st.booleans())
    def correct(self, index: int, amount: str, by_holder: bool) -> None:
        payment_id = self.pick(index)
        username = self.holder_user(payment_id) if by_holder else "tiedong"
        response = self.request("PATCH", f"/payments/{payment_id}", username, {"amount": amount})
        self.check_answer(response, payment_id)

    @precondition(lambda self: self.payments)
    @rule(index=st.integers(0, 5), change=st.sampled_from(RECEIPT_CHANGES),
          username=st.sampled_from(["central", "central", "tiedong", "clerk"]))
    def change_receipt(self, index: int, change: str, username: str) -> None:
        receipted = list(db.session.scalars(
            select(Payment.id).where(Payment.state == "receipted").order_by(Payment.id)))
        db.session.rollback()
        payment_id = receipted[index % len(receipted)] if receipted and index < 4 else self.pick(index)
        response = self.request("POST", f"/payments/{payment_id}/receipt/{change}", username, {"reason": "补发"})
        self.check_answer(response, payment_id)

    # ---- invariants ------------------------------------------------------------------------------------

    @invariant()
    def books_agree(self) -> None:
        try:
            payments = {p.id: p for p in db.session.scalars(select(Payment))}
            events: dict[int, list[Event]] = defaultdict(list)
            for event in db.session.scalars(select(Event).order_by(Event.id)):
                events[event.payment_id].append(event)
            receipts = list(db.session.scalars(select(Receipt).order_by(Receipt.id)))
            self._replay(payments, events)
            self._receipts(payments, events, receipts)
            problem = verify_audit()
            assert problem is None, str(problem)
        finally:
            db.session.rollback()

    @staticmethod
    def _replay(payments: dict[int, Payment], events: dict[int, list[Event]]) -> None:
        assert set(events) == set(payments), "a payment without events, or events without a payment"
        for payment_id, payment in payments.items():
            state, holder = None, None
            for event in events[payment_id]:
                assert event.from_state == state and (event.from_org_id == holder or state is None), event.id
                state, holder = event.to_state, event.to_org_id
            assert (state, holder) == (payment.state, payment.holder_org_id), payment_id

    @staticmethod
    def _receipts(payments: dict[int, Payment], events: dict[int, list[Event]], receipts: list[Receipt]) -> None:
        live = [receipt for receipt in receipts if not receipt.voided]
        for receipt in live:
            assert payments[receipt.payment_id].state == "receipted", receipt.number
        for receipt in receipts:
            if receipt.voided:
                voids = [e for e in events[receipt.payment_id] if e.action == "void"
                         and e.details.get("receipt_number") == receipt.number]
                assert voids, f"receipt {receipt.number} is voided but no event voided it"
        receipted = [payment for payment in payments.values() if payment.state == "receipted"]
        assert sorted(p.id for p in receipted) == sorted(r.payment_id for r in live)  # exactly one live each
        assert sum((p.amount for p in receipted), Decimal(0)) == sum(
            (payments[r.payment_id].amount for r in live), Decimal(0))
        by_year: dict[int, list[int]] = defaultdict(list)
        for receipt in receipts:
            assert receipt.number == f"{receipt.year:04d}-{receipt.sequence:06d}"
            by_year[receipt.year].append(receipt.sequence)
        for year, sequences in by_year.items():
            assert sorted(sequences) == list(range(1, len(sequences) + 1)), f"gap in {year}: {sorted(sequences)}"
            issued_order = [r.sequence for r in sorted(receipts, key=lambda r: r.id) if r.year == year]
            assert issued_order == sorted(issued_order), "numbers not in issue order"


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_random_workflows_keep_the_books(app: Flask, database_url: str):
    run_state_machine_as_test(
        lambda: PaymentWorkflow(app, database_url),
        settings=settings(max_examples=15, stateful_step_count=40, deadline=None, derandomize=True,
                          suppress_health_check=list(HealthCheck), database=None),
    )


def test_the_machine_reaches_receipts_and_voids(app: Flask, database_url: str):
    """The rules can do what the invariants are about: one scripted run issues, reissues and voids receipts."""
    machine = PaymentWorkflow(app, database_url)
    machine.record(clerk="clerk", which=0, amount="1000")
    machine.record(clerk="clerk", which=1, amount="2000")
    for payment in (0, 1):
        for action in ("submit", "forward", "forward", "forward", "confirm"):
            machine.holder_acts(index=payment, action=action, reason=False)
            machine.books_agree()
    machine.change_receipt(index=0, change="reissue", username="central")
    machine.change_receipt(index=0, change="void", username="central")
    machine.holder_acts(index=0, action="confirm", reason=False)
    machine.books_agree()
    numbers = sorted(db.session.scalars(select(Receipt.sequence)))
    voided = db.session.scalar(select(Receipt.number).where(Receipt.voided))
    db.session.rollback()
    assert numbers == [1, 2, 3] and voided is not None

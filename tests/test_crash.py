"""Crash safety (issue 6, point 5): SIGKILL the whole gunicorn process group in the middle of a load of payments
and actions, start it again, and check that every request answered 2xx left its effect, nothing half-done exists,
receipt numbers have no gap and ``flask --app duesflow verify-audit`` passes. Runs on the suite's database:
SQLite (WAL) by default, PostgreSQL when DUESFLOW_TEST_DATABASE_URL is set. Two crashes, a few seconds of load
before each.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import PASSWORD, World
from live import PROBE_HEADER, LiveServer, payment_body, read, release_database, run_verify_audit, start_server
from sqlalchemy import select

from duesflow.extensions import db
from duesflow.models import Event, Payment, Receipt

CRASHES = 2
LOAD_SECONDS = (2.0, 4.0)  # the kill comes at a random moment in this range after the load started
CLIENTS = 4
SEED = 20240607
CLERKS = {"clerk": "zhang", "clerk_jiefang": "zhou"}


@dataclass
class Ledger:
    """What the clients were told: every 2xx answer, kept client-side."""

    created: dict[int, Decimal] = field(default_factory=dict)
    # payment id -> the (action, to_state) events of the latest 2xx answer about it
    acknowledged: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    tried: int = 0
    succeeded: int = 0
    lost: int = 0  # no answer at all: the connection died with the server
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, payment: dict[str, Any]) -> None:
        events = [(event["action"], event["to_state"]) for event in payment.get("events", [])]
        with self.lock:
            if len(events) >= len(self.acknowledged.get(payment["id"], [])):
                self.acknowledged[payment["id"]] = events


class Client(threading.Thread):
    """Records payments and moves them along as the user of whichever org holds each, until stopped."""

    def __init__(self, server: LiveServer, tokens: dict[str, str], users_by_org: dict[int, str],
                 member_ids: dict[str, int], ledger: Ledger, stop: threading.Event, seed: int) -> None:
        super().__init__(daemon=True)
        self.server, self.tokens, self.users_by_org, self.member_ids = server, tokens, users_by_org, member_ids
        self.ledger, self.stop, self.random = ledger, stop, random.Random(seed)
        self.mine: dict[int, dict[str, Any]] = {}

    def call(self, session: requests.Session, method: str, path: str, username: str,
             body: dict[str, Any] | None) -> requests.Response | None:
        with self.ledger.lock:
            self.ledger.tried += 1
        try:
            response = session.request(method, f"{self.server.url}/api/v1{path}", json=body, timeout=10,
                                       headers={"Authorization": f"Bearer {self.tokens[username]}",
                                                PROBE_HEADER: "crash"})
        except requests.RequestException:
            with self.ledger.lock:
                self.ledger.lost += 1
            return None
        if 200 <= response.status_code < 300:
            with self.ledger.lock:
                self.ledger.succeeded += 1
        return response

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                movable = [p for p in self.mine.values() if p["state"] in ("recorded", "in_review", "at_central")]
                if not movable or self.random.random() < 0.3:
                    self.record(session)
                else:
                    self.move(session, self.random.choice(movable))

    def record(self, session: requests.Session) -> None:
        clerk = self.random.choice(sorted(CLERKS))
        amount = f"{self.random.randint(1000, 5000)}.{self.random.randint(0, 99):02d}"
        response = self.call(session, "POST", "/payments", clerk, payment_body(self.member_ids[clerk], amount))
        if response is not None and response.status_code == 201:
            payment = response.json()
            with self.ledger.lock:
                self.ledger.created[payment["id"]] = Decimal(payment["amount"])
            self.ledger.note(payment)
            self.mine[payment["id"]] = payment

    def move(self, session: requests.Session, payment: dict[str, Any]) -> None:
        username = self.users_by_org[payment["holder_org"]["id"]]
        onward = {"recorded": "submit", "in_review": "forward", "at_central": "confirm"}[payment["state"]]
        action = onward if self.random.random() < 0.85 else "return" if payment["state"] != "recorded" else "withdraw"
        body = {"reason": "核对"} if action in ("return", "withdraw") else None
        response = self.call(session, "POST", f"/payments/{payment['id']}/{action}", username, body)
        if response is not None and response.status_code == 200:
            self.ledger.note(response.json())
            self.mine[payment["id"]] = response.json()
        elif response is not None and response.status_code == 409:
            self.mine.pop(payment["id"])  # moved by a request whose answer was lost; leave it be


def kill_process_group(server: LiveServer) -> None:
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)


def check_nothing_lost_or_half_done(ledger: Ledger, database_url: str) -> None:
    release_database()
    # plain rows, not ORM objects: touching an expired object would open a transaction (on SQLite, a writer's)
    payments = {row.id: row for row in db.session.execute(
        select(Payment.id, Payment.amount, Payment.state, Payment.holder_org_id))}
    events: dict[int, list[Any]] = defaultdict(list)
    for event in db.session.execute(
            select(Event.payment_id, Event.action, Event.to_state, Event.to_org_id).order_by(Event.id)):
        events[event.payment_id].append(event)
    receipts = list(db.session.execute(select(Receipt.payment_id, Receipt.sequence, Receipt.voided)))
    release_database()

    for payment_id, amount in ledger.created.items():  # every 201 is there, as it was answered
        assert payment_id in payments, f"payment {payment_id} was acknowledged but is gone"
        assert payments[payment_id].amount == amount
    for payment_id, acknowledged in ledger.acknowledged.items():  # every 200 left its events
        stored = [(event.action, event.to_state) for event in events[payment_id]]
        assert stored[:len(acknowledged)] == acknowledged, (payment_id, stored, acknowledged)
    for payment_id, payment in payments.items():  # nothing half-done
        assert events[payment_id] and events[payment_id][0].action == "record", payment_id
        last = events[payment_id][-1]
        assert (last.to_state, last.to_org_id) == (payment.state, payment.holder_org_id), payment_id
    live = {receipt.payment_id for receipt in receipts if not receipt.voided}
    assert live == {p.id for p in payments.values() if p.state == "receipted"}
    sequences = sorted(receipt.sequence for receipt in receipts)
    assert sequences == list(range(1, len(sequences) + 1)), f"gap in receipt numbers: {sequences}"
    audit = run_verify_audit(database_url)
    assert audit.returncode == 0, audit.stdout + audit.stderr


@pytest.mark.slow
def test_a_sigkilled_server_loses_no_acknowledged_request(world: World, database_url: str, tmp_path: Path):
    users_by_org = read(lambda: {user.org_id: name for name, user in world.users.items() if user.org_id})
    member_ids = read(lambda: {clerk: world.members[member].id for clerk, member in CLERKS.items()})
    ledger = Ledger()
    tokens: dict[str, str] = {}
    chooser = random.Random(SEED)

    for crash in range(CRASHES):
        server = start_server(database_url, tmp_path / f"run{crash}", own_process_group=True)
        try:
            for username in {*users_by_org.values(), *CLERKS}:
                if username not in tokens:  # tokens live in the database: those of before the crash still work
                    answer = requests.post(f"{server.url}/api/v1/auth/token", timeout=30,
                                           json={"username": username, "password": PASSWORD})
                    assert answer.status_code == 200, answer.text
                    tokens[username] = answer.json()["token"]
            stop = threading.Event()
            clients = [Client(server, tokens, users_by_org, member_ids, ledger, stop, SEED + crash * 10 + n)
                       for n in range(CLIENTS)]
            for client in clients:
                client.start()
            time.sleep(chooser.uniform(*LOAD_SECONDS))
            kill_process_group(server)  # mid-flight: the clients are still sending
            stop.set()
            for client in clients:
                client.join(timeout=30)
        finally:
            if server.process.poll() is None:
                kill_process_group(server)
        check_nothing_lost_or_half_done(ledger, database_url)

    server = start_server(database_url, tmp_path / "after")  # and it starts again on what the crashes left
    try:
        answer = requests.get(f"{server.url}/api/v1/payments?limit=1", timeout=30,
                              headers={"Authorization": f"Bearer {tokens['central']}"})
        assert answer.status_code == 200
    finally:
        server.stop()
    print(f"crash test: {ledger.tried} requests tried, {ledger.succeeded} acknowledged, {ledger.lost} cut off by "
          f"{CRASHES} SIGKILLs, {len(ledger.created)} payments created")
    assert ledger.succeeded > 20 and ledger.created, "the load did not get going before the crash"

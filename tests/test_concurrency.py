"""Races against a real gunicorn with several workers: one winner per payment action, gapless receipt numbers,
idempotent payment creation, and an event trail that still verifies afterwards (SPEC §4, §5, §7)."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import pairwise
from typing import Any

import pytest
import requests
from live import (
    LiveApi,
    LiveServer,
    concurrently,
    live_api,
    live_server,
    payment_body,
    read,
    release_database,
    run_verify_audit,
)
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from duesflow.extensions import db
from duesflow.models import Event, IdempotencyKey, Payment, Receipt, ReceiptSequence, utcnow
from duesflow.services.idempotency import canonical_hash
from duesflow.timeutil import beijing_today

__all__ = ["live_api", "live_server"]

RACERS = 8


def fresh(query: Any) -> list[Any]:
    """Rows of ``query`` as they are now in the database, without keeping a transaction open."""
    release_database()
    rows = list(db.session.execute(query))
    release_database()
    return rows


def race(live_server: LiveServer, live_api: LiveApi, method: str, path: str, as_user: str,
         count: int = RACERS, **kwargs: Any) -> list[requests.Response]:
    """``count`` identical requests released together; checks that more than one worker took part."""
    token = live_api.token(as_user)
    probes = [uuid.uuid4().hex for _ in range(count)]

    def send(probe: str) -> requests.Response:
        with requests.Session() as session:
            return live_api.call(method, path, token=token, probe=probe, session=session, **kwargs)

    answers = concurrently(send, probes)
    assert len(set(live_server.workers_of(probes).values())) >= 2, "the racing requests all hit one worker"
    return answers


def one_winner(answers: list[requests.Response], loser_code: str = "invalid_transition") -> requests.Response:
    """The single 200 among ``answers``; every other one is 409 ``loser_code``."""
    winners = [answer for answer in answers if answer.status_code == 200]
    losers = [answer for answer in answers if answer.status_code != 200]
    assert len(winners) == 1, [answer.text for answer in answers]
    assert [(answer.status_code, answer.json()["error"]["code"]) for answer in losers] == (
        [(409, loser_code)] * len(losers)
    )
    return winners[0]


def assert_audit_intact(database_url: str) -> None:
    result = run_verify_audit(database_url)
    assert result.returncode == 0, result.stdout + result.stderr


def test_simultaneous_forwards_move_a_payment_exactly_one_level(live_server, live_api, world, database_url):
    levels = ["tiedong", "siping", "jilin", "central"]
    org_ids = read(lambda: {name: world.orgs[name].id for name in levels})
    payment_id = live_api.record(read(lambda: world.members["zhang"].id))["id"]
    live_api.act(payment_id, "submit", "clerk")
    for reviewer, next_level in pairwise(levels):
        winner = one_winner(race(live_server, live_api, "POST", f"/payments/{payment_id}/forward", reviewer))
        assert winner.json()["holder_org"]["id"] == org_ids[next_level]

    payment = live_api.call("GET", f"/payments/{payment_id}", "central").json()
    assert payment["state"] == "at_central"
    assert [event["action"] for event in payment["events"]] == ["record", "submit", *["forward"] * 3]
    assert [event["to_org"]["id"] for event in payment["events"][1:]] == [org_ids[name] for name in levels]
    assert_audit_intact(database_url)


def test_simultaneous_different_actions_on_one_payment_have_one_winner(
    live_server, live_api, world, database_url
):
    payment_id = live_api.record(read(lambda: world.members["zhang"].id))["id"]
    live_api.act(payment_id, "submit", "clerk")
    token = live_api.token("tiedong")
    actions = ["forward", "return", "reject"] * 3
    probes = [uuid.uuid4().hex for _ in actions]

    def act(index: int) -> requests.Response:
        return live_api.call("POST", f"/payments/{payment_id}/{actions[index]}", token=token,
                             probe=probes[index], json={"reason": "并发测试"})

    answers = concurrently(act, list(range(len(actions))))
    winner = one_winner(answers)
    won = actions[answers.index(winner)]
    assert len(set(live_server.workers_of(probes).values())) >= 2

    payment = live_api.call("GET", f"/payments/{payment_id}", "clerk").json()
    assert [event["action"] for event in payment["events"]] == ["record", "submit", won]
    assert payment["state"] == {"forward": "in_review", "return": "returned", "reject": "rejected"}[won]
    assert_audit_intact(database_url)


def test_simultaneous_confirms_issue_exactly_one_receipt(live_server, live_api, world, database_url):
    payment_id = live_api.record(read(lambda: world.members["zhang"].id), "12345.67")["id"]
    live_api.advance(payment_id, 4)

    answers = race(live_server, live_api, "POST", f"/payments/{payment_id}/confirm", "central")
    winner = one_winner(answers).json()

    assert winner["state"] == "receipted"
    assert winner["receipt"]["number"] == f"{beijing_today().year}-000001"
    assert [event["action"] for event in winner["events"]][-1:] == ["confirm"]
    receipts = fresh(select(Receipt.number).where(Receipt.payment_id == payment_id))
    assert [number for (number,) in receipts] == [winner["receipt"]["number"]]
    confirms = fresh(select(func.count()).select_from(Event).where(Event.action == "confirm"))
    assert confirms == [(1,)]
    assert_audit_intact(database_url)


def test_concurrent_confirmations_number_receipts_without_gap_or_duplicate(
    live_server, live_api, world, database_url
):
    payments, threads = 12, 6
    zhang = read(lambda: world.members["zhang"].id)
    for username in ("clerk", "tiedong", "siping", "jilin", "central"):
        live_api.token(username)

    def at_central(_: int) -> int:
        """Record and move one payment up to central: the arrangement itself runs concurrently."""
        payment_id = live_api.record(zhang)["id"]
        live_api.advance(payment_id, 4)
        return payment_id

    payment_ids = concurrently(at_central, list(range(payments)))
    token = live_api.token("central")

    def confirm_all(thread: int) -> list[tuple[int, requests.Response]]:
        """Every thread confirms every payment, each starting elsewhere: every payment is raced."""
        order = payment_ids[thread * 2:] + payment_ids[:thread * 2]
        with requests.Session() as session:
            return [(payment_id, live_api.call("POST", f"/payments/{payment_id}/confirm", token=token,
                                               session=session)) for payment_id in order]

    per_thread = concurrently(confirm_all, list(range(threads)))
    answers = [answer for thread_answers in per_thread for answer in thread_answers]

    numbers = {}
    for payment_id in payment_ids:
        winner = one_winner([answer for paid, answer in answers if paid == payment_id]).json()
        numbers[payment_id] = winner["receipt"]["number"]
    year = beijing_today().year
    assert sorted(numbers.values()) == [f"{year}-{sequence:06d}" for sequence in range(1, payments + 1)]
    # Gapless in issue order: the order of the confirm events is the order of the numbers.
    confirm_events = fresh(select(Event.payment_id).where(Event.action == "confirm").order_by(Event.id))
    assert [numbers[paid] for (paid,) in confirm_events] == sorted(numbers.values())
    assert fresh(select(func.count()).select_from(Receipt)) == [(payments,)]
    assert fresh(select(ReceiptSequence.year, ReceiptSequence.last_number)) == [(year, payments)]
    assert_audit_intact(database_url)


def test_simultaneous_creations_with_one_idempotency_key_create_one_payment(
    live_server, live_api, world, database_url
):
    body = payment_body(read(lambda: world.members["zhang"].id), "2000.00")
    key = {"Idempotency-Key": f"race-{uuid.uuid4()}"}

    answers = race(live_server, live_api, "POST", "/payments", "clerk", json=body, headers=key)

    # Every replay waited for the first (SPEC §7: at most 10 s, far more than one recording takes) and answers it.
    assert [answer.status_code for answer in answers] == [201] * RACERS, [answer.text for answer in answers]
    created = answers
    assert {answer.content for answer in created} == {created[0].content}
    assert fresh(select(Payment.id)) == [(created[0].json()["id"],)]

    reordered = json.dumps(dict(reversed(body.items())))  # the same body, compared as canonical JSON
    replay = live_api.call("POST", "/payments", "clerk", data=reordered,
                           headers={**key, "Content-Type": "application/json"})
    assert (replay.status_code, replay.content) == (201, created[0].content)
    other = live_api.call("POST", "/payments", "clerk", json={**body, "amount": "2000.01"}, headers=key)
    assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency_conflict")
    assert len(fresh(select(Payment.id))) == 1
    assert_audit_intact(database_url)


# ---- a replay while the first request is in flight (SPEC §7) ---------------------------------------------------
# The test itself plays the first request: its own transaction writes the key row, as a request does, and holds it
# uncommitted while the replay arrives at the live server; it then commits with an answer, or rolls back.

STORED = '{"stored":"the first answer"}'


def _first_in_flight(connection: Connection, user_id: int, key: str, body: dict[str, Any]) -> int:
    connection.begin()  # SQLite: BEGIN IMMEDIATE, the write lock every writer waits for
    return connection.execute(insert(IdempotencyKey).values(
        user_id=user_id, key=key, request_hash=canonical_hash(body), state="in_flight", created_at=utcnow(),
    ).returning(IdempotencyKey.id)).scalar_one()


def _replay(live_api: LiveApi, body: dict[str, Any], key: str) -> Future[requests.Response]:
    token = live_api.token("clerk")
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(live_api.call, "POST", "/payments", token=token, json=body,
                         headers={"Idempotency-Key": key})
    pool.shutdown(wait=False)
    return future


def _waits(future: Future[requests.Response], seconds: float = 1.5) -> bool:
    time.sleep(seconds)
    return not future.done()


def test_a_replay_waits_for_the_first_and_answers_its_response(live_server, live_api, world):
    user_id, member_id = read(lambda: (world.users["clerk"].id, world.members["zhang"].id))
    body, key = payment_body(member_id, "3000.00"), f"wait-{uuid.uuid4()}"
    live_api.token("clerk")
    with db.engine.connect() as connection:
        claim_id = _first_in_flight(connection, user_id, key, body)
        replay = _replay(live_api, body, key)
        assert _waits(replay), replay.result().text
        connection.execute(update(IdempotencyKey).where(IdempotencyKey.id == claim_id).values(
            state="done", response_status=201, response_body=STORED))
        connection.commit()
    answer = replay.result(timeout=30)
    assert (answer.status_code, answer.text) == (201, STORED)
    assert fresh(select(func.count()).select_from(Payment)) == [(0,)]  # the replay created nothing


def test_a_replay_of_a_first_that_failed_is_processed_anew(live_server, live_api, world):
    user_id, member_id = read(lambda: (world.users["clerk"].id, world.members["zhang"].id))
    body, key = payment_body(member_id, "3000.00"), f"fail-{uuid.uuid4()}"
    live_api.token("clerk")
    with db.engine.connect() as connection:
        _first_in_flight(connection, user_id, key, body)
        replay = _replay(live_api, body, key)
        assert _waits(replay), replay.result().text
        connection.rollback()
    answer = replay.result(timeout=30)
    assert answer.status_code == 201, answer.text
    assert fresh(select(Payment.id)) == [(answer.json()["id"],)]
    again = live_api.call("POST", "/payments", "clerk", json=body, headers={"Idempotency-Key": key})
    assert (again.status_code, again.content) == (201, answer.content)


def test_a_replay_still_in_flight_after_ten_seconds_is_a_conflict(live_server, live_api, world, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite: the replay waits for the write lock, like every writer (docs/audit.md)")
    user_id, member_id = read(lambda: (world.users["clerk"].id, world.members["zhang"].id))
    body, key = payment_body(member_id, "3000.00"), f"slow-{uuid.uuid4()}"
    live_api.token("clerk")
    with db.engine.connect() as connection:
        _first_in_flight(connection, user_id, key, body)
        started = time.monotonic()
        answer = _replay(live_api, body, key).result(timeout=30)
        waited = time.monotonic() - started
        connection.rollback()
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "idempotency_conflict")
    assert 9.5 <= waited < 20, waited
    assert fresh(select(func.count()).select_from(Payment)) == [(0,)]

"""Observability (issue 18, SPEC §8): /metrics in Prometheus text, summed over every worker of a real gunicorn and
only for the allowed addresses; one JSON log line per request with its request id; errors with their traceback
in the same stream; no personal data in the log."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from conftest import PASSWORD, World, advance, app_config
from flask import Flask
from live import LiveApi, LiveServer, concurrently, release_database, start_server
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, func, select

from duesflow import create_app, observability
from duesflow.extensions import db
from duesflow.models import Payment
from duesflow.services import metrics as metric_reads
from duesflow.timeutil import beijing_today
from duesflow.workflow import State

T = TypeVar("T")

ID_NUMBER = "110101199003074477"
STATES = [state.value for state in State]
PHONE = "13900001234"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, by name and labels."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(page: dict, name: str, **labels: str) -> float:
    return page.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the app's loggers write, as the JSON lines the deployed service writes to stderr."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(observability.JsonLines())
    logger = logging.getLogger("duesflow")
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


def records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# In process


def test_metrics_answer_loopback_and_no_one_else(client, world):
    assert client.get("/metrics").status_code == 200
    refused = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert refused.status_code == 404
    assert b"duesflow_" not in refused.data


def test_the_allowed_addresses_are_configurable_and_seen_through_the_trusted_proxy(database_url):
    app = create_app({**app_config(database_url), "METRICS_ALLOW": "10.1.0.0/16, 2001:db8::1",
                      "TRUSTED_PROXIES": 1})
    with app.app_context():
        client = app.test_client()
        through_proxy = {"REMOTE_ADDR": "127.0.0.1"}
        assert client.get("/metrics", environ_base=through_proxy,
                          headers={"X-Forwarded-For": "10.1.2.3"}).status_code == 200
        # A loopback peer no longer suffices: the proxy forwards for a client outside the list.
        assert client.get("/metrics", environ_base=through_proxy,
                          headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 404
        # A client cannot slip in its own X-Forwarded-For: the proxy appends the address it saw, which counts.
        assert client.get("/metrics", environ_base=through_proxy,
                          headers={"X-Forwarded-For": "10.1.2.3, 203.0.113.9"}).status_code == 404
        assert client.get("/metrics", environ_base={"REMOTE_ADDR": "2001:db8::1"}).status_code == 200
        db.session.remove()


def test_payments_by_state_match_the_table(client, api, world):
    for _ in range(3):
        api.record(world.members["zhang"])
    submitted = api.record(world.members["li"])
    api.act(submitted["id"], "submit", "clerk")
    page = samples(client.get("/metrics").get_data(as_text=True))
    in_table = {state: count for state, count in
                db.session.execute(select(Payment.state, func.count()).group_by(Payment.state))}
    assert in_table == {"recorded": 3, "in_review": 1}
    for state in ("recorded", "in_review", "at_central", "receipted", "returned", "rejected", "refunded",
                  "withdrawn"):
        assert value(page, "duesflow_payments", state=state) == in_table.get(state, 0)


def test_a_scrape_sums_the_chain_heads_and_never_reads_the_payments(app, api, world):
    api.record(world.members["zhang"])
    api.record(world.members["zhou"], as_user="clerk_jiefang")
    statements: list[str] = []

    def seen(_connection, _cursor, statement, *_args) -> None:  # noqa: ANN001
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        counts = metric_reads.payments_by_state()
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert counts == {**dict.fromkeys(STATES, 0), "recorded": 2}
    queries = [statement for statement in statements if statement.startswith("SELECT")]
    assert len(queries) == 1 and "FROM audit_heads" in queries[0] and "FROM payments" not in queries[0], queries


def scraped_payments(client) -> dict[str, int]:  # noqa: ANN001
    """The payments by state a scrape gives, the states without any left out."""
    page = samples(client.get("/metrics").get_data(as_text=True))
    return {state: int(count) for state in STATES if (count := value(page, "duesflow_payments", state=state))}


def test_the_payments_by_state_follow_every_kind_of_change(client, api, world):
    zhang = world.members["zhang"]
    first, second, third, fourth = (api.record(zhang)["id"] for _ in range(4))
    batch = api.post("/payments/batch", "clerk_jiefang", json={"rows": [
        {"member_id": world.members["zhou"].id, "amount": "1000.00", "collected_on": beijing_today().isoformat(),
         "method": "cash", "regular_dues_paid": True}] * 2})
    assert batch.status_code == 201, batch.json
    assert scraped_payments(client) == {"recorded": 6}

    api.act(first, "withdraw", "clerk", "登记重复")
    advance(api, second, 1)
    assert scraped_payments(client) == {"recorded": 4, "in_review": 1, "withdrawn": 1}
    api.act(second, "return", "tiedong", "金额有误")
    corrected = api.patch(f"/payments/{second}", "clerk", json={"amount": "1200.00"})  # an event that moves nothing
    assert corrected.status_code == 200, corrected.json
    assert scraped_payments(client) == {"recorded": 4, "returned": 1, "withdrawn": 1}

    advance(api, third, 4)
    api.act(third, "confirm", "central")
    assert scraped_payments(client) == {"recorded": 3, "receipted": 1, "returned": 1, "withdrawn": 1}
    assert api.post(f"/payments/{third}/receipt/void", "central", json={"reason": "误确认"}).status_code == 200
    assert scraped_payments(client) == {"recorded": 3, "at_central": 1, "returned": 1, "withdrawn": 1}
    api.act(third, "confirm", "central")
    assert api.post(f"/payments/{third}/receipt/reissue", "central", json={"reason": "遗失"}).status_code == 200
    delivered = api.post(f"/payments/{third}/receipt/delivered", "clerk",
                         json={"delivered_on": beijing_today().isoformat(), "signed_by": "张建国"})
    assert delivered.status_code in (200, 201), delivered.json
    assert scraped_payments(client) == {"recorded": 3, "receipted": 1, "returned": 1, "withdrawn": 1}

    advance(api, fourth, 2)
    api.act(fourth, "reject", "siping", "身份无法核实")
    assert scraped_payments(client) == {"recorded": 2, "rejected": 1, "receipted": 1, "returned": 1, "withdrawn": 1}
    refunded = api.post(f"/payments/{fourth}/refund", "clerk",
                        json={"refunded_on": beijing_today().isoformat(), "method": "cash"})
    assert refunded.status_code == 200, refunded.json
    assert scraped_payments(client) == {"recorded": 2, "refunded": 1, "receipted": 1, "returned": 1, "withdrawn": 1}


def test_the_payments_by_state_follow_transfers_and_their_confirmation(client, api, world):
    ids = [api.record(world.members["zhang"])["id"] for _ in range(3)]
    sent = api.post("/transfers", "clerk", json={"payment_ids": ids, "bank_reference": "ICBC-20261126-0001"})
    assert sent.status_code == 201, sent.json
    assert scraped_payments(client) == {"in_review": 3}
    for reviewer in ("tiedong", "siping"):
        for payment_id in ids:
            api.act(payment_id, "forward", reviewer)
    transfer = api.post("/transfers", "jilin", json={"payment_ids": ids, "bank_reference": "ICBC-20261126-0002"})
    assert transfer.status_code == 201, transfer.json
    assert scraped_payments(client) == {"at_central": 3}
    received = api.post(f"/transfers/{transfer.json['id']}/receive", "central",
                        json={"amount_received": transfer.json["total"]})
    assert received.status_code == 200, received.json

    assert api.post(f"/transfers/{transfer.json['id']}/confirm", "central").json["count"] == 3
    assert scraped_payments(client) == {"receipted": 3}


def test_failed_logins_and_verifications_are_counted(client, api, world):
    before = samples(client.get("/metrics").get_data(as_text=True))
    for address in ("10.0.0.1", "10.0.0.2"):
        answer = client.post("/api/v1/auth/token", json={"username": "clerk", "password": "wrong-password"},
                             environ_base={"REMOTE_ADDR": address})
        assert answer.status_code == 401
    assert client.get("/api/v1/receipts/2026-000001/verify?code=ABCDEFGH").status_code == 404
    after = samples(client.get("/metrics").get_data(as_text=True))
    assert value(after, "duesflow_login_failures_total") - value(before, "duesflow_login_failures_total") == 2
    assert value(after, "duesflow_verification_failures_total") - value(
        before, "duesflow_verification_failures_total") == 1


def test_a_username_under_attack_from_many_addresses_is_shown(client, world):
    for i in range(6):
        client.post("/api/v1/auth/token", json={"username": "central", "password": "wrong-password"},
                    environ_base={"REMOTE_ADDR": f"10.9.0.{i}"})
    page = samples(client.get("/metrics").get_data(as_text=True))
    assert value(page, "duesflow_login_attack_failures", username="central") >= 5
    assert value(page, "duesflow_login_attack_clients", username="central") >= 5
    assert metric_reads.usernames_under_attack()[0][0] == "central"


def test_the_outbox_backlog_is_shown(client, api, world):
    payment = api.record(world.members["zhang"])
    for action, username in [("submit", "clerk"), ("forward", "tiedong"), ("forward", "siping"),
                             ("forward", "jilin"), ("confirm", "central")]:
        api.act(payment["id"], action, username)
    page = samples(client.get("/metrics").get_data(as_text=True))
    assert {state: value(page, "duesflow_outbox_messages", state=state)
            for state in ("pending", "sending", "failed")} == {"pending": 0, "sending": 0, "failed": 0}
    assert ("duesflow_outbox_overdue_seconds", ()) in page


def test_every_request_writes_one_json_line_with_its_request_id(client, api, world, log_lines):
    api.token("clerk")
    member_id = world.members["zhang"].id
    answer = client.get(f"/api/v1/members/{member_id}", headers={
        "Authorization": f"Bearer {api.token('clerk')}", "X-Request-ID": "trace-42.a:b"})
    assert answer.status_code == 200
    assert answer.headers["X-Request-ID"] == "trace-42.a:b"
    made = client.get("/healthz", headers={"X-Request-ID": "<script>no spaces, please"})
    too_long = client.get("/healthz", headers={"X-Request-ID": "a" * 129})
    assert re.fullmatch(r"[0-9a-f]{32}", too_long.headers["X-Request-ID"])
    # An id that would be masked in the log (it looks like a phone number) could not be found there: replaced.
    phone_like = client.get("/healthz", headers={"X-Request-ID": PHONE})
    assert re.fullmatch(r"[0-9a-f]{32}", phone_like.headers["X-Request-ID"])
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])
    lines = [line for line in records(log_lines) if line["logger"] == "duesflow.request"]
    by_id = {line["request_id"]: line for line in lines}
    member_line = by_id["trace-42.a:b"]
    assert member_line["method"] == "GET"
    assert member_line["route"] == "/api/v1/members/<int:member_id>"
    assert member_line["status"] == 200
    assert member_line["user_id"] == world.users["clerk"].id
    assert isinstance(member_line["duration_ms"], float)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", member_line["time"])
    assert by_id[made.headers["X-Request-ID"]]["route"] == "/healthz"


def test_an_error_is_one_line_with_its_traceback_and_no_personal_number(client, world, log_lines, monkeypatch):
    def broken() -> dict[str, int]:
        raise RuntimeError(f"lookup failed for {ID_NUMBER} / {PHONE}")

    monkeypatch.setattr(metric_reads, "payments_by_state", broken)
    answer = client.get("/metrics", headers={"X-Request-ID": "broken-scrape"})
    assert answer.status_code == 500
    error = next(line for line in records(log_lines) if line["level"] == "error")
    assert error["request_id"] == "broken-scrape"
    assert "Traceback (most recent call last)" in error["traceback"]
    assert "RuntimeError: lookup failed for 110101********4477 / 139****1234" in error["traceback"]
    assert ID_NUMBER not in log_lines.getvalue() and PHONE not in log_lines.getvalue()


# A real gunicorn with two workers


@pytest.fixture(scope="module")
def two_workers(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(database_url, tmp_path_factory.mktemp("gunicorn-metrics"), workers=2)
    yield server
    server.stop()


@pytest.fixture
def live(two_workers: LiveServer, world: World) -> LiveApi:
    release_database()
    return LiveApi(two_workers)


def scrape(server: LiveServer, probe: str) -> dict:
    import requests

    answer = requests.get(f"{server.url}/metrics", headers={"X-Live-Probe": probe}, timeout=30)
    assert answer.status_code == 200, answer.text
    return samples(answer.text)


def until_both_workers_answer(server: LiveServer, send: Callable[[str], T]) -> tuple[list[str], list[T]]:
    """``send(probe)`` for new probes, four at once, until both workers of ``server`` have answered some: the probes
    and the answers. One after another, a quiet machine lets the worker that just answered take the next request
    too (200 requests in a row once, twelve scrapes in a row another time)."""
    probes: list[str] = []
    answers: list[T] = []
    while not probes or len(set(server.workers_of(probes).values())) < 2:
        batch = [uuid.uuid4().hex for _ in range(4)]
        answers += concurrently(send, batch)
        probes += batch
        assert len(probes) < 200, "one worker answered every request"
    return probes, answers


def test_every_scrape_sums_the_requests_of_every_worker(two_workers: LiveServer, live: LiveApi):
    # Requests to one route, then scrapes, each until both workers have answered some.
    probes, answers = until_both_workers_answer(
        two_workers, lambda probe: live.call("GET", "/openapi.json", probe=probe))
    assert [answer.status_code for answer in answers] == [200] * len(probes)
    served = two_workers.workers_of(probes)
    scrape_probes, pages = until_both_workers_answer(two_workers, lambda probe: scrape(two_workers, probe))
    # Every scrape, whichever worker answered it, counts every request of both workers.
    for page in pages:
        assert value(page, "duesflow_http_requests_total", method="GET", endpoint="/api/v1/openapi.json",
                     status="200") == len(probes)
        assert value(page, "duesflow_http_request_duration_seconds_count",
                     endpoint="/api/v1/openapi.json") == len(probes)
    assert set(two_workers.workers_of(scrape_probes).values()) == set(served.values()) == two_workers.worker_pids()


def test_a_live_run_logs_no_personal_data(two_workers: LiveServer, live: LiveApi):
    created = live.call("POST", "/members", "clerk", json={
        "name": "赵红", "id_number": ID_NUMBER, "phone": PHONE, "gender": "female"})
    assert created.status_code == 201, created.text
    member_id = created.json()["id"]
    assert live.call("GET", f"/members/{member_id}", "clerk").status_code == 200
    assert live.call("GET", f"/members?id_number={ID_NUMBER}", "clerk").status_code == 200
    assert live.call("PATCH", f"/members/{member_id}", "clerk", json={"phone": "bad " + PHONE}).status_code == 422
    login = live.call("POST", "/auth/token", json={"username": ID_NUMBER, "password": PASSWORD})
    assert login.status_code == 401
    request_ids = [answer.headers["X-Request-ID"] for answer in (created, login)]
    log = wait_for_lines(two_workers.error_log, request_ids)
    assert ID_NUMBER not in log and PHONE not in log
    assert "1101011990" not in log and "0001234" not in log  # nor long parts of them
    lines = {line["request_id"]: line for line in map(json.loads, filter(_is_json, log.splitlines()))}
    assert lines[request_ids[0]]["route"] == "/api/v1/members" and lines[request_ids[0]]["status"] == 201
    assert lines[request_ids[0]]["user_id"] is not None


def _is_json(line: str) -> bool:
    return line.startswith("{")


def wait_for_lines(log: Path, request_ids: list[str], timeout: float = 10.0) -> str:
    import time

    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text()
        if all(request_id in text for request_id in request_ids) or time.monotonic() > deadline:
            assert all(request_id in text for request_id in request_ids), "request lines missing from the log"
            return text
        time.sleep(0.05)


def test_the_metrics_directory_is_one_per_server_start(two_workers: LiveServer, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch, app: Flask):
    # A given directory is used as it is; without one, the app names one after the process that started it.
    monkeypatch.setenv(observability.MULTIPROC_ENV, str(tmp_path / "given"))
    assert observability.metrics_directory() == tmp_path / "given"
    assert (tmp_path / "given").is_dir()
    monkeypatch.delenv(observability.MULTIPROC_ENV)
    made = observability.metrics_directory()
    assert made.name.startswith("duesflow-metrics-") and made.is_dir()
    assert str(made) == observability.os.environ[observability.MULTIPROC_ENV]


def test_the_age_of_the_newest_audit_checkpoint_is_shown(client, runner, world):
    never = samples(client.get("/metrics").get_data(as_text=True))
    assert value(never, "duesflow_audit_checkpoint_age_seconds") == float("inf")  # the alert fires: none was made

    assert runner.invoke(args=["audit-checkpoint", "--out", os.devnull]).exit_code == 0
    page = samples(client.get("/metrics").get_data(as_text=True))

    assert 0 <= value(page, "duesflow_audit_checkpoint_age_seconds") < 60

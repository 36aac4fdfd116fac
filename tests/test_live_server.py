"""State that must hold across gunicorn workers: revoked tokens and login throttles live in the database."""

from __future__ import annotations

import uuid

from conftest import PASSWORD, World
from live import LiveApi, LiveServer, concurrently, live_api, live_server, on_every_worker, payment_body, read

__all__ = ["live_api", "live_server"]


def test_every_worker_of_the_server_answers(live_server: LiveServer, live_api: LiveApi):
    answers = on_every_worker(live_server, lambda probe: live_api.call("GET", "/orgs", "clerk", probe=probe),
                              minimum=6)
    assert len(live_server.worker_pids()) == 3
    assert {answer.status_code for answer in answers} == {200}


def test_a_revoked_token_is_refused_by_every_worker(live_server: LiveServer, live_api: LiveApi):
    token = live_api.token("clerk")

    def list_payments(probe: str):  # noqa: ANN202
        return live_api.call("GET", "/payments", token=token, probe=probe)

    before = on_every_worker(live_server, list_payments, minimum=6)
    assert {answer.status_code for answer in before} == {200}

    assert live_api.call("POST", "/auth/logout", token=token).status_code == 204

    after = on_every_worker(live_server, list_payments, minimum=20)
    assert [answer.status_code for answer in after] == [401] * len(after)
    assert {answer.json()["error"]["code"] for answer in after} == {"unauthenticated"}


def _login(live_api: LiveApi, username: str, password: str, client: str, probe: str | None = None):  # noqa: ANN202
    return live_api.call("POST", "/auth/token", json={"username": username, "password": password},
                         headers={"X-Forwarded-For": client}, probe=probe)


def test_login_throttle_for_a_username_and_client_holds_across_workers(live_server: LiveServer,
                                                                        live_api: LiveApi):
    probes = [uuid.uuid4().hex for _ in range(5)]
    failures = concurrently(
        lambda i: _login(live_api, "clerk", "wrong-password", "10.0.0.1", probes[i]), list(range(5)))
    assert [answer.status_code for answer in failures] == [401] * 5
    assert len(set(live_server.workers_of(probes).values())) >= 2, "the failures all went to one worker"

    sixth = on_every_worker(
        live_server, lambda probe: _login(live_api, "clerk", PASSWORD, "10.0.0.1", probe), minimum=1)
    assert {answer.status_code for answer in sixth} == {429}
    assert all(int(answer.headers["Retry-After"]) > 0 for answer in sixth)
    assert {answer.json()["error"]["code"] for answer in sixth} == {"too_many_requests"}
    # The same username from a client that has not failed gets in (SPEC §7).
    assert _login(live_api, "clerk", PASSWORD, "10.0.1.1").status_code == 200


def test_login_throttle_for_a_client_holds_across_workers(live_server: LiveServer, live_api: LiveApi):
    failures = concurrently(
        lambda i: _login(live_api, f"nobody{i % 5}", "wrong-password", "10.0.3.1"), list(range(20)))
    assert [answer.status_code for answer in failures] == [401] * 20

    sixth = on_every_worker(live_server, lambda probe: _login(live_api, "clerk", PASSWORD, "10.0.3.1", probe),
                            minimum=1)
    assert {answer.status_code for answer in sixth} == {429}
    assert all(int(answer.headers["Retry-After"]) > 0 for answer in sixth)


def test_unmasked_reads_beside_writes_are_each_logged_on_every_worker(live_server: LiveServer, live_api: LiveApi,
                                                                       world: World):
    """A GET that shows a phone writes its access-log row: on SQLite it must wait for the write lock, not fail
    because another worker committed since it began reading (SQLITE_BUSY_SNAPSHOT)."""
    member_id = read(lambda: world.members["zhang"].id)
    live_api.token("clerk")

    def one(index: int):  # noqa: ANN202
        if index % 3 == 0:
            return live_api.call("POST", "/payments", "clerk", json=payment_body(member_id, "1000.00"))
        return live_api.call("GET", f"/members/{member_id}", "clerk")

    answers = concurrently(one, list(range(24)))

    assert sorted({answer.status_code for answer in answers}) == [200, 201]
    reads = [answer for answer in answers if answer.request.method == "GET"]
    assert {answer.json()["phone"] for answer in reads} == {"13843430001"}
    log = live_api.call("GET", "/access-log", "central", params={"member_id": member_id, "limit": 200}).json()
    assert len(log["items"]) == len(reads) == 16

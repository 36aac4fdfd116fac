"""SQLite's writers wait their turn on a file lock (duesflow/sqlite_writers.py), and a request reads its bearer
token before it waits: the turn comes within milliseconds of the last writer's commit, a stranger's token is
refused without waiting for the writers, and a writer that waited the busy timeout answers 503."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import app_config
from test_api_payments import body_for

from duesflow import create_app, sqlite_writers
from duesflow.extensions import db


def _connection(path: Path, timeout: float = 5.0) -> sqlite_writers.Connection:
    connection = sqlite3.connect(path, timeout=timeout, factory=sqlite_writers.Connection, check_same_thread=False)
    connection.isolation_level = None  # as duesflow's engine has it: BEGIN is sent by whoever writes
    return connection


def _begin(connection: sqlite_writers.Connection) -> None:
    connection.take_writer_lock()
    connection.execute("BEGIN IMMEDIATE")


def _lock_is_free(path: Path) -> bool:
    probe = _connection(path, timeout=0)
    try:
        probe.take_writer_lock()
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()
    return True


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "writers.sqlite3"
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE rows (n INTEGER)")
    yield path


def _in_thread(work) -> threading.Thread:  # noqa: ANN001
    thread = threading.Thread(target=work)
    thread.start()
    return thread


# A writer waits in the kernel, ended by an alarm, in the main thread (a gunicorn sync worker's, a command's);
# in another thread it looks again every few milliseconds. Both are tried.
WAITERS = ["main thread", "another thread"]


@pytest.mark.parametrize("waiter", WAITERS)
def test_the_next_writer_goes_as_soon_as_the_first_commits(database: Path, waiter: str) -> None:
    first, second = _connection(database), _connection(database)
    _begin(first)
    first.execute("INSERT INTO rows VALUES (1)")
    entered: list[float] = []
    committed: list[float] = []

    def commit_later() -> None:
        time.sleep(0.3)
        assert not entered, "the second writer went in while the first held the lock"
        committed.append(time.monotonic())
        first.commit()

    def wait_and_enter() -> None:
        _begin(second)
        entered.append(time.monotonic())

    if waiter == "main thread":
        committer = _in_thread(commit_later)
        wait_and_enter()
        committer.join(5)
    else:
        entering = _in_thread(wait_and_enter)
        commit_later()
        entering.join(5)
    assert entered and committed and entered[0] - committed[0] < 0.05  # SQLite's own handler naps up to 100 ms
    second.execute("INSERT INTO rows VALUES (2)")
    second.commit()
    assert [n for (n,) in first.execute("SELECT n FROM rows ORDER BY n")] == [1, 2]
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # no alarm left behind
    first.close(), second.close()


@pytest.mark.parametrize("end", ["commit", "rollback", "close"])
def test_the_lock_is_let_go_when_the_transaction_ends(database: Path, end: str) -> None:
    writer = _connection(database)
    _begin(writer)
    writer.execute("INSERT INTO rows VALUES (1)")
    assert not _lock_is_free(database)
    getattr(writer, end)()
    assert _lock_is_free(database)
    writer.close()


@pytest.mark.parametrize("waiter", WAITERS)
def test_a_writer_that_waited_its_busy_timeout_is_told_the_database_is_locked(database: Path, waiter: str) -> None:
    holder, impatient = _connection(database), _connection(database, timeout=0.2)
    _begin(holder)
    outcome: list[Exception | float] = []

    def try_to_write() -> None:
        started = time.monotonic()
        try:
            impatient.take_writer_lock()
        except sqlite3.OperationalError as error:
            outcome.extend([error, time.monotonic() - started])

    if waiter == "main thread":
        try_to_write()
    else:
        _in_thread(try_to_write).join(5)
    assert len(outcome) == 2 and "database is locked" in str(outcome[0])
    assert 0.2 <= outcome[1] < 2  # type: ignore[operator]
    holder.rollback()
    _begin(impatient)  # its turn, now
    impatient.rollback()
    time.sleep(0.3)  # the alarm of the wait that ended rings no more
    holder.close(), impatient.close()


def test_a_database_in_memory_has_no_lock_file() -> None:
    assert sqlite_writers._lock_path(":memory:", uri=False) is None
    assert sqlite_writers._lock_path("file:x?mode=memory&cache=shared", uri=True) is None
    assert sqlite_writers._lock_path("file:/srv/d.sqlite3?mode=rwc", uri=True) == "/srv/d.sqlite3-writers.lock"
    assert sqlite_writers._lock_path("/srv/d.sqlite3", uri=False) == "/srv/d.sqlite3-writers.lock"
    writer = _connection(":memory:")  # type: ignore[arg-type]
    _begin(writer)
    writer.rollback()
    writer.close()


# ---- through the API ------------------------------------------------------------------------------------------


def _sqlite_file(database_url: str) -> Path:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite only: PostgreSQL has no database-wide write lock")
    return Path(database_url.removeprefix("sqlite:///"))


def test_a_request_reads_its_token_before_it_waits_for_the_writers(app, api, world, database_url) -> None:
    path = _sqlite_file(database_url)
    api.token("clerk")  # logged in before the lock is taken (a login writes its token)
    body = body_for(world)  # and the world's ids read (the test's own session would wait for the writers too)
    db.session.rollback()  # which ends the test's transaction (outside a request, a transaction may write)
    holder = _connection(path)
    _begin(holder)
    try:
        started = time.monotonic()
        refused = api.client.post("/api/v1/payments", json=body,
                                  headers={"Authorization": "Bearer not-a-token"})
        assert refused.status_code == 401
        assert time.monotonic() - started < 5  # not after the 30 s a writer may wait
        answers: list[int] = []
        recording = threading.Thread(target=lambda: answers.append(
            api.post("/payments", "clerk", json=body).status_code))
        recording.start()
        time.sleep(0.3)
        assert recording.is_alive() and not answers, "the recording did not wait for the writer ahead of it"
    finally:
        holder.rollback()
    recording.join(10)
    assert answers == [201]
    holder.close()


def test_a_writer_whose_turn_does_not_come_answers_503(app, api, world, database_url) -> None:
    path = _sqlite_file(database_url)
    token, body = api.token("clerk"), body_for(world)
    db.session.rollback()
    impatient = create_app({**app_config(database_url),
                            "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"timeout": 0.2}}})
    holder = _connection(path)
    _begin(holder)
    try:
        with impatient.app_context():
            response = impatient.test_client().post(
                "/api/v1/payments", json=body,
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k-busy"})
            db.session.remove()
            db.engine.dispose()
    finally:
        holder.rollback()
        holder.close()
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json["error"]["code"] == "service_unavailable"
    assert api.post("/payments", "clerk", json=body, headers={"Idempotency-Key": "k-busy"}).status_code == 201

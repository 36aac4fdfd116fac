"""SQLite's writers wait their turn on a file lock (duesflow/sqlite_writers.py): the turn comes within
milliseconds of the last writer's commit, the lock is let go however the transaction ends, and a writer whose
turn does not come within the busy timeout answers 503, as when SQLite's own wait ended it."""

from __future__ import annotations

import contextlib
import gc
import random
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
# in another thread it looks again every few milliseconds. Both are tried, and each test checks it took its way.
WAITERS = ["main thread", "another thread"]


def _the_other_way_fails(waiter: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The main thread must wait for the alarm (a leftover timer or handler would make it look again); another
    thread must look again."""
    other = "_wait_looking_again" if waiter == "main thread" else "_wait_for_alarm"

    def wrong_way(*_args: object) -> bool:
        raise AssertionError(f"the {waiter} took {other}")
    monkeypatch.setattr(sqlite_writers, other, wrong_way)


@pytest.fixture
def only_the_alarm(monkeypatch: pytest.MonkeyPatch) -> None:
    _the_other_way_fails("main thread", monkeypatch)


@pytest.mark.parametrize("waiter", WAITERS)
def test_the_next_writer_goes_as_soon_as_the_first_commits(database: Path, waiter: str, monkeypatch) -> None:
    _the_other_way_fails(waiter, monkeypatch)
    first, second = _connection(database), _connection(database)
    _begin(first)
    first.execute("INSERT INTO rows VALUES (1)")
    entered: list[float] = []
    committed: list[float] = []
    early: list[bool] = []

    def commit_later() -> None:
        time.sleep(0.3)
        early.append(bool(entered))
        first.commit()
        committed.append(time.monotonic())

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
    assert early == [False], "the second writer went in while the first held the lock"
    assert entered and committed and entered[0] - committed[0] < 0.09  # SQLite's own handler naps up to 100 ms
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
def test_a_writer_that_waited_its_busy_timeout_is_told_the_database_is_locked(database: Path, waiter: str,
                                                                             monkeypatch) -> None:
    _the_other_way_fails(waiter, monkeypatch)
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
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    holder.rollback()
    _begin(impatient)  # its turn, now
    impatient.rollback()
    holder.close(), impatient.close()


def test_an_alarm_that_rings_before_the_wait_blocks_does_not_leave_it_unbounded(database: Path,
                                                                                only_the_alarm) -> None:
    """With a busy second thread, the alarm of a very short wait now and then rings after the timer is set but
    before flock blocks; the C handler takes it and no EINTR ends flock. The timer rings again every 5 ms."""
    holder = _connection(database)
    holder.take_writer_lock()
    stop = threading.Event()
    _in_thread(lambda: [None for _ in iter(stop.is_set, True)])  # keeps the GIL busy
    releasing = threading.Timer(2, holder.close)  # a wait left unbounded ends here, and fails the test
    releasing.start()
    longest = 0.0
    try:
        until = time.monotonic() + 1.5
        while time.monotonic() < until:
            waiter = _connection(database, timeout=random.choice([1e-5, 5e-5, 2e-4, 1e-3]))
            started = time.monotonic()
            with contextlib.suppress(sqlite3.OperationalError):
                waiter.take_writer_lock()
            longest = max(longest, time.monotonic() - started)
            waiter.close()
    finally:
        stop.set()
        releasing.join()
    assert longest < 0.5


def test_a_lock_file_that_cannot_be_opened_leaves_the_wait_to_sqlite(database: Path, caplog) -> None:
    lock = Path(f"{database}{sqlite_writers.LOCK_SUFFIX}")
    lock.mkdir()  # not a file: opening it fails, as a file of another account with mode 600 would for us
    writer = _connection(database)
    _begin(writer)  # no file lock, SQLite's BEGIN IMMEDIATE alone
    writer.execute("INSERT INTO rows VALUES (1)")
    writer.commit()
    assert "cannot be opened" in caplog.text
    writer.close()


def test_a_connection_dropped_without_close_lets_the_lock_go(database: Path) -> None:
    writer = _connection(database)
    writer.take_writer_lock()
    assert not _lock_is_free(database)
    del writer
    gc.collect()
    assert _lock_is_free(database)


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


@pytest.mark.parametrize("holder", ["a duesflow writer", "another program"])
def test_a_writer_whose_turn_does_not_come_answers_503(app, api, world, database_url, holder: str) -> None:
    """Held by one of ours, the file lock's wait ends; held by a program that takes no file lock (the sqlite3
    shell), SQLite's own wait for BEGIN IMMEDIATE ends, and the file lock is let go again."""
    path = _sqlite_file(database_url)
    token, body = api.token("clerk"), body_for(world)
    db.session.rollback()  # the test's own transaction (outside a request, a transaction may write) is over
    impatient = create_app({**app_config(database_url),
                            "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"timeout": 0.2}}})
    if holder == "a duesflow writer":
        holding = _connection(path)
        _begin(holding)
    else:
        holding = sqlite3.connect(path, isolation_level=None)  # type: ignore[assignment]
        holding.execute("BEGIN IMMEDIATE")
    try:
        with impatient.app_context():
            response = impatient.test_client().post(
                "/api/v1/payments", json=body,
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k-busy"})
            db.session.remove()
            db.engine.dispose()
        lock_let_go = _lock_is_free(path)
    finally:
        holding.rollback()
        holding.close()
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json["error"]["code"] == "service_unavailable"
    assert lock_let_go == (holder == "another program")
    assert api.post("/payments", "clerk", json=body, headers={"Idempotency-Key": "k-busy"}).status_code == 201

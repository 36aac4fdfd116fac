"""A real gunicorn server for the tests that need several worker processes (no test client, no mocks).

``live_server`` starts ``gunicorn -w 3 -k sync 'duesflow:create_app()'`` on the suite's test database (the
SQLite file of the ``database_url`` fixture, the one the ``app`` fixture recreates per test, or
DUESFLOW_TEST_DATABASE_URL), listening on a socket bound here and handed over (``--bind fd://N``), waits
until every worker answers /healthz, and stops it (SIGTERM, then SIGKILL) after the module. Schema and data
come from the ``app`` and ``world`` fixtures, committed in-process before the requests; the server reads only
its environment.

Which worker served a request is read from gunicorn's access log: every request carries an
``X-Live-Probe`` header, and the log line names the worker's pid beside it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from conftest import DATA_KEY, PASSWORD, PATH_TO_CENTRAL, World

from duesflow.extensions import db
from duesflow.timeutil import beijing_today

T = TypeVar("T")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORKERS = 3
PROBE_HEADER = "X-Live-Probe"
STARTUP_TIMEOUT = 120.0
REQUEST_TIMEOUT = 60.0
# The same secrets and cheap argon2 parameters as tests.conftest.app_config, given the only way the app
# reads them: its environment.
SERVER_ENV = {
    "DUESFLOW_SECRET_KEY": "test-secret" * 3,
    "DUESFLOW_DATA_KEY": DATA_KEY,
    "DUESFLOW_PUBLIC_URL": "http://testserver",
    "DUESFLOW_ARGON2_TIME_COST": "1",
    "DUESFLOW_ARGON2_MEMORY_COST": "1024",
    "DUESFLOW_ARGON2_PARALLELISM": "1",
    # One trusted proxy: a test may give each request its own client address with X-Forwarded-For.
    "DUESFLOW_TRUSTED_PROXIES": "1",
}


def subprocess_env(database_url: str) -> dict[str, str]:
    """The environment of a server or ``flask`` command on ``database_url``; no DUESFLOW_* of the caller."""
    # Nor the metrics directory an in-process app made: each server start makes its own (duesflow.observability).
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("DUESFLOW_") and name != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(SERVER_ENV, DUESFLOW_DATABASE_URL=database_url)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


def release_database() -> None:
    """End the test's own transaction: on SQLite it holds the write lock the server's workers wait for."""
    db.session.rollback()


@dataclass
class LiveServer:
    """A running gunicorn; ``url`` is its base address."""

    process: subprocess.Popen[bytes]
    url: str
    logs: Path

    @property
    def access_log(self) -> Path:
        return self.logs / "access.log"

    @property
    def error_log(self) -> Path:
        """gunicorn's own messages and, captured from the workers' stderr, the app's JSON log lines."""
        return self.logs / "error.log"

    def workers_of(self, probes: list[str], timeout: float = 10.0) -> dict[str, int]:
        """The pid of the worker that served each probed request (waits: lines are logged after answers)."""
        wanted = set(probes)
        deadline = time.monotonic() + timeout
        while True:
            served: dict[str, int] = {}
            for line in self.access_log.read_text().splitlines():
                pid, _, probe = line.partition(" ")
                if probe in wanted:
                    served[probe] = int(pid.strip("<>"))
            if len(served) == len(wanted) or time.monotonic() > deadline:
                assert len(served) == len(wanted), f"{len(wanted) - len(served)} requests not in the log"
                return served
            time.sleep(0.02)

    def worker_pids(self) -> set[int]:
        """The live worker processes, children of the gunicorn master."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return {int(pid) for pid in children}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def failure(self, message: str) -> str:
        """``message`` with the tail of the server's error log, for an assertion or a startup error."""
        tail = self.error_log.read_text()[-4000:] if self.error_log.exists() else ""
        return f"{message}\n--- gunicorn error log ---\n{tail}"


def start_server(database_url: str, logs: Path, workers: int = WORKERS, *,
                 own_process_group: bool = False) -> LiveServer:
    """Start gunicorn on an already bound socket (no race for a free port) and wait for every worker.

    ``own_process_group``: the master leads a process group of its own, so that a test can kill the whole server
    at once (``os.killpg``) without touching pytest.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    logs.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "sync",
        "--bind", f"fd://{listener.fileno()}", "--timeout", "60", "--graceful-timeout", "5",
        "--access-logfile", str(logs / "access.log"),
        "--access-logformat", f"%(p)s %({{{PROBE_HEADER.lower()}}}i)s",
        "--error-logfile", str(logs / "error.log"), "--log-level", "warning", "--capture-output",
        "duesflow:create_app()",
    ]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=subprocess_env(database_url),
                               pass_fds=[listener.fileno()], start_new_session=own_process_group)
    listener.close()
    server = LiveServer(process, f"http://127.0.0.1:{port}", logs)
    try:
        _wait_until_every_worker_answers(server, workers)
    except BaseException:
        server.stop()
        raise
    return server


def _healthz(server: LiveServer, probe: str, *, timeout: float) -> requests.Response:
    return requests.get(f"{server.url}/healthz", headers={PROBE_HEADER: probe}, timeout=timeout)


def _wait_until_every_worker_answers(server: LiveServer, workers: int) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    seen: set[int] = set()
    while len(seen) < workers:
        if server.process.poll() is not None:
            raise RuntimeError(server.failure(f"gunicorn exited with {server.process.returncode}"))
        if time.monotonic() > deadline:
            raise RuntimeError(server.failure(f"only {len(seen)} of {workers} workers answered /healthz"))
        probes = [uuid.uuid4().hex for _ in range(workers * 2)]
        wait = max(1.0, deadline - time.monotonic())  # a worker still importing leaves its request queued
        try:
            answers = concurrently(partial(_healthz, server, timeout=wait), probes)
        except requests.RequestException:
            time.sleep(0.1)
            continue
        if all(answer.status_code == 200 for answer in answers):
            seen |= set(server.workers_of(probes).values())
        else:
            time.sleep(0.1)


@pytest.fixture(scope="module")
def live_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One gunicorn with several workers for the whole test module, on the suite's test database."""
    server = start_server(database_url, tmp_path_factory.mktemp("gunicorn"))
    yield server
    server.stop()


def concurrently(call: Callable[[Any], Any], arguments: list[Any]) -> list[Any]:
    """Run ``call`` once per argument, each in its own thread, released together by a barrier.

    Results come back in the order of ``arguments``; an exception in any thread is raised here.
    """
    barrier = threading.Barrier(len(arguments))

    def released(argument: Any) -> Any:
        barrier.wait(timeout=30)
        return call(argument)

    with ThreadPoolExecutor(max_workers=len(arguments)) as pool:
        return list(pool.map(released, arguments))


@dataclass
class LiveApi:
    """A JSON client of the live server: logs users in once, sends their bearer tokens and a probe header."""

    server: LiveServer
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, username: str) -> str:
        if username not in self.tokens:
            response = self.call("POST", "/auth/token", json={"username": username, "password": PASSWORD})
            assert response.status_code == 200, response.text
            self.tokens[username] = response.json()["token"]
        return self.tokens[username]

    def call(self, method: str, path: str, as_user: str | None = None, *, token: str | None = None,
             probe: str | None = None, session: requests.Session | None = None,
             **kwargs: Any) -> requests.Response:
        """One request; ``session`` lets each thread use its own connection pool."""
        headers = dict(kwargs.pop("headers", {}))
        token = token or (self.token(as_user) if as_user is not None else None)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        headers[PROBE_HEADER] = probe or uuid.uuid4().hex
        sender = session or requests
        return sender.request(method, f"{self.server.url}/api/v1{path}", headers=headers,
                              timeout=REQUEST_TIMEOUT, **kwargs)

    def record(self, member_id: int, amount: str = "1000.00", as_user: str = "clerk") -> dict[str, Any]:
        response = self.call("POST", "/payments", as_user, json=payment_body(member_id, amount))
        assert response.status_code == 201, response.text
        return response.json()

    def act(self, payment_id: int, action: str, as_user: str, expect: int = 200) -> dict[str, Any]:
        response = self.call("POST", f"/payments/{payment_id}/{action}", as_user)
        assert response.status_code == expect, response.text
        return response.json()

    def advance(self, payment_id: int, steps: int) -> dict[str, Any]:
        """Move a 北门 payment up ``steps`` levels along conftest.PATH_TO_CENTRAL."""
        result: dict[str, Any] = {}
        for action, username in PATH_TO_CENTRAL[:steps]:
            result = self.act(payment_id, action, username)
        return result


def on_every_worker(server: LiveServer, send: Callable[[str], requests.Response], *, minimum: int,
                    batch: int = 6, limit: int = 300) -> list[requests.Response]:
    """Call ``send(probe)`` in concurrent batches until at least ``minimum`` requests were sent and every
    worker has served at least one of them; returns every answer."""
    workers = server.worker_pids()
    answers: list[requests.Response] = []
    served_by: set[int] = set()
    while len(answers) < minimum or not workers <= served_by:
        assert len(answers) < limit, f"after {limit} requests, only workers {served_by} of {workers} served"
        probes = [uuid.uuid4().hex for _ in range(batch)]
        answers += concurrently(send, probes)
        served_by |= set(server.workers_of(probes).values())
    return answers


def payment_body(member_id: int, amount: str = "1000.00") -> dict[str, Any]:
    return {"member_id": member_id, "amount": amount, "collected_on": beijing_today().isoformat(),
            "method": "cash", "regular_dues_paid": True}


@pytest.fixture
def live_api(live_server: LiveServer, world: World) -> LiveApi:
    """A client of the live server over this test's ``world``, committed and released for the workers."""
    release_database()
    return LiveApi(live_server)


def read(getter: Callable[[], T]) -> T:
    """``getter()`` on the in-process session (e.g. ids of ``world``), without leaving a transaction open."""
    value = getter()
    release_database()
    return value


def run_verify_audit(database_url: str) -> subprocess.CompletedProcess[str]:
    """``flask --app duesflow verify-audit`` in a subprocess on ``database_url``."""
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "duesflow", "verify-audit"], cwd=PROJECT_ROOT,
        env=subprocess_env(database_url), capture_output=True, text=True, timeout=120,
    )

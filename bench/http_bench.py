"""duesflow against the floor over HTTP, in one run: real gunicorn servers on loopback, load from wrk.

    python bench/http_bench.py --engine sqlite|postgresql|both [--duration 10s] [--repeats 3] [--workers 4]
        [--connections 8] [--latency-connections 1] [--small-db DB] [--large-db DB] [--reads-on small|large]
        [--only record,detail,receipt,lists,reports] [--json results.json] [--profile DIR]

What it does, per engine:

1. Databases. The seeded databases of ``python bench/bench_seed.py`` (10,000 and 1,000,000 payments) are
   brought to the current schema (``init-db``) and then read, never written to (only the bench users' login tokens
   are added, and the document the first download of each receipt stores). Recording payments writes, so it runs
   on a scratch copy of the small database (SQLite: an online backup to a new file; PostgreSQL: ``CREATE DATABASE
   ... TEMPLATE``), and the floor app (``bench/floor_app.py``) gets a fresh database of its own on the same
   engine, filled with ``--floor-rows`` rows for its reads.
2. Servers. One gunicorn per app and database: the floor, duesflow on the scratch copy, duesflow on the small and
   on the large seeded database. All are started by the same function with the same settings (``--workers``,
   worker class ``sync``, a free port on 127.0.0.1, no access log) and run side by side; an idle one costs
   nothing, and wrk drives one at a time.
3. Throughput, as ratios to the floor, runs interleaved floor / duesflow (their order alternating) ``--repeats``
   times, each after a warm-up; the median requests per second of each side gives the ratio:
   - record: ``POST /api/v1/payments`` as a clerk, a valid body and a unique ``Idempotency-Key`` on every
     request, against the floor's ``POST /insert`` of the same body (target ≥ 0.6); afterwards the rows written
     on each side are counted against the POSTs answered, so a replay or a lost write cannot pass for speed;
   - detail: ``GET /api/v1/payments/{id}`` as a reviewer who may see them, rotating over ``--rotate`` payments
     of its subtree, against the floor's ``GET /read/{id}`` rotating over as many rows (target ≥ 0.5);
   - receipt: ``GET /api/v1/payments/{id}/receipt.pdf`` of receipted payments on the reviewer's path, against the
     same floor read (target ≥ 0.5).
   Both reads use the small database unless ``--reads-on large``. Each run also counts the CPU time its
   requests took, per request: the gunicorn's (master and workers) and, on PostgreSQL, the server's (every
   ``postgres`` process): on a machine whose cores are the limit, the ratio of the sums is the ratio of
   throughputs, and the two parts say on which side of the socket the difference lies.
4. Flatness: each list endpoint (inbox, list, list by state, the second page by cursor, members) is timed on the
   small and the large database, interleaved, with ``--latency-connections`` connections (one by default, so the
   figure is a request's own time, not time spent queueing behind others); median and p95 of the large database
   over the small must stay ≤ 1.5. Both sides ask for the same page size, the rows the small database's first
   page holds (at most the default 50), so that a full page is never compared with a short one; ``--lists``
   picks rows by name.
5. Reports: ``GET /api/v1/reports/summary`` for the year with the most payments, by channel, org, state and
   month, as central on the large database, ``--report-requests`` times each, one request at a time (the target,
   p95 < 1 s, is one request's time and PostgreSQL's; SQLite's figures are for information).

The scenarios act as bench-seed's accounts down its deepest path (``--clerk``, ``--reviewer`` for a district,
``--channel-reviewer`` for a province, ``--central``, ``--password``), each logged in once per server: argon2 and
the login throttle are not part of any measurement.

Every request is checked once before it is measured (status and content type), and a run in which wrk counted
any error (a status ≥ 400, a connect, read or write error, a timeout) is reported as such and fails its row.
``--profile DIR`` then samples the duesflow workers with py-spy during one more run of each throughput scenario
and prints where the time goes. The tables are Markdown, ready for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
LUA_SCRIPT = ROOT / "bench" / "wrk_requests.lua"
FLOOR_APP = "bench.floor_app:create_app()"
DUESFLOW_APP = "duesflow:create_app()"
SECRET_KEY = "duesflow-http-bench-secret-of-32-chars"  # fixed, so every worker and every run signs alike
BEIJING = ZoneInfo("Asia/Shanghai")

SQLITE_DEFAULTS = {"small": "/tmp/duesflow-bench-10k.sqlite", "large": "/tmp/duesflow-bench-1m.sqlite"}
PG_DEFAULTS = {"small": "duesflow_bench_10k", "large": "duesflow_bench_1m"}
PG_BASE_URL = "postgresql+psycopg://postgres@127.0.0.1"
# The databases the bench makes and drops; DUESFLOW_BENCH_PREFIX keeps those of several people on one machine apart.
PREFIX = os.environ.get("DUESFLOW_BENCH_PREFIX", "duesflow_bench")
SQLITE_FLOOR = Path(f"/tmp/{PREFIX.replace('_', '-')}-floor.sqlite3")
SQLITE_SCRATCH = Path(f"/tmp/{PREFIX.replace('_', '-')}-scratch.sqlite3")
PG_FLOOR, PG_SCRATCH = f"{PREFIX}_floor", f"{PREFIX}_scratch"

THROUGHPUT_TARGETS = {"record": 0.6, "detail": 0.5, "receipt": 0.5}
FLATNESS_TARGET = 1.5
REPORT_TARGET_MS = 1000.0
REPORT_GIVE_UP_S = 20.0  # a report slower than this is timed once, not repeated (SQLite over a million rows)
ALL_SCENARIOS = ("record", "detail", "receipt", "lists", "reports")
RECORD_NOTE = "http bench"  # the note of every recorded payment (and floor row), to count what was written


# ---- measurement with wrk -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestSpec:
    """What wrk sends: one method, a cycle of paths, fixed headers, an optional body and per-request keys."""

    paths: tuple[str, ...]
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    idempotent: bool = False
    variants: tuple[tuple[str, str], ...] = ()  # (Authorization, body) taken in turn: many clerks, not one
    expect_status: int = 200
    expect_type: str = "application/json"


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: the counts and latency percentiles printed by the Lua script's ``done()``."""

    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    app_cpu_ms: float = 0.0  # CPU of the gunicorn serving it (master and workers) per answered request
    database_cpu_ms: float = 0.0  # CPU of PostgreSQL's processes per answered request (0 on SQLite)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(base_url: str, spec: RequestSpec, *, duration: str, connections: int, nonce: str) -> WrkResult:
    """Run wrk once against ``base_url`` (one thread: the generator must leave the CPU to the servers)."""
    env = {
        **os.environ,
        "WRK_METHOD": spec.method,
        "WRK_PATHS": "\n".join(spec.paths),
        "WRK_HEADERS": "\n".join(f"{name}: {value}" for name, value in spec.headers),
        "WRK_IDEMPOTENCY": "1" if spec.idempotent else "0",
        "WRK_NONCE": nonce,
    }
    if spec.body is not None:
        env["WRK_BODY"] = spec.body
    if spec.variants:
        env["WRK_VARIANTS"] = "\n".join(f"{authorization}\t{body}" for authorization, body in spec.variants)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}", "--timeout", "30s", "-s", str(LUA_SCRIPT),
               base_url]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    match = re.search(r"^WRK_JSON (\{.*\})$", completed.stdout, re.MULTILINE)
    if completed.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stdout}\n{completed.stderr}")
    data = json.loads(match.group(1))
    errors = sum(data[key] for key in ("connect_errors", "read_errors", "write_errors", "status_errors",
                                       "timeouts"))
    if data["requests"] == 0:
        errors += 1  # nothing answered within the run: no figure to report, and no pass
    return WrkResult(
        requests=data["requests"], seconds=data["duration_us"] / 1e6, errors=errors,
        p50_ms=data["p50_us"] / 1000, p90_ms=data["p90_us"] / 1000, p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000, max_ms=data["max_us"] / 1000,
    )


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Iterable[int]) -> float:
    """The CPU time (user and system) the processes ``pids`` have used so far; a process gone meanwhile counts 0."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            # comm, field 2, may hold spaces and parentheses: the fields after it follow the last ')'
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / CLOCK_TICKS


def process_tree(root: int) -> list[int]:
    """``root`` and its children (a gunicorn master and its workers)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == root:
                children.append(int(stat.parent.name))
    return [root, *children]


def postgres_processes() -> list[int]:
    """Every process of the PostgreSQL server (its backends and its background writers)."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == "postgres":
                pids.append(int(comm.parent.name))
    return pids


def seconds_of(duration: str) -> float:
    """wrk's duration syntax (``10``, ``10s``, ``2m``) in seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", duration.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {duration!r}")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


# ---- HTTP calls for setup and checks ----------------------------------------------------------------------------


def http(base_url: str, method: str, path: str, *, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """One request with the standard library: (status, content type, body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def api_json(base_url: str, method: str, path: str, *, token: str | None = None, body: Any = None) -> Any:
    """A JSON API call that must succeed."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, _type, content = http(base_url, method, path, body=body, headers=headers)
    if status >= 300:
        raise RuntimeError(f"{method} {path} answered {status}: {content[:300]!r}")
    return json.loads(content)


def check_request(base_url: str, spec: RequestSpec, label: str) -> int:
    """Send each distinct request of ``spec`` once and insist on the expected status and content type; how many
    requests that was."""
    headers = dict(spec.headers)
    variants = spec.variants or ((headers.get("Authorization", ""), spec.body),)
    requests = list(itertools.product(dict.fromkeys(spec.paths), variants))
    for number, (path, (authorization, text)) in enumerate(requests):
        if authorization:
            headers["Authorization"] = authorization
        if spec.idempotent:
            headers["Idempotency-Key"] = f"bench-check-{time.time_ns()}-{number}"
        body = None if text is None else json.loads(text)
        status, content_type, content = http(base_url, spec.method, path, body=body, headers=headers)
        if status != spec.expect_status or not content_type.startswith(spec.expect_type):
            raise RuntimeError(f"{label}: {spec.method} {path} answered {status} {content_type}: {content[:300]!r}")
    return len(requests)


# ---- gunicorn ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def gunicorn_command(app_spec: str, port: int, workers: int) -> list[str]:
    """The one gunicorn command line of every server in the run; only the app differs."""
    import gunicorn.config

    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "sync",
               "--bind", f"127.0.0.1:{port}", "--timeout", "600", "--log-level", "warning"]
    # gunicorn 23+ opens a control socket at one fixed path per user: several servers at once would fight for it.
    if any(setting.name == "control_socket_disable" for setting in gunicorn.config.KNOWN_SETTINGS):
        command.append("--no-control-socket")
    # No --access-logfile: gunicorn writes no access log unless given one.
    return [*command, app_spec]


class Server:
    """A gunicorn serving ``app_spec`` on a free loopback port, in its own process group."""

    def __init__(self, label: str, app_spec: str, database_url: str, workers: int, log_dir: Path) -> None:
        self.label = label
        self.app_spec = app_spec
        self.database_url = database_url
        self.workers = workers
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"gunicorn-{label}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        env = {**os.environ, "DUESFLOW_DATABASE_URL": self.database_url, "DUESFLOW_SECRET_KEY": SECRET_KEY}
        # The project root, so that ``bench.floor_app`` and ``duesflow`` import the same way.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        return env

    def start(self, ready_path: str) -> None:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            gunicorn_command(self.app_spec, self.port, self.workers), cwd=ROOT, env=self.environment(),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label}: gunicorn exited; see {self.log_path}")
            with contextlib.suppress(OSError):
                if http(self.base_url, "GET", ready_path)[0] == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.label}: not ready after 120 s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # the master stops its workers gracefully
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own group (start_new_session), nothing else
            self.process.wait()


@contextlib.contextmanager
def serving(label: str, app_spec: str, database_url: str, workers: int, log_dir: Path,
            ready_path: str) -> Iterator[Server]:
    server = Server(label, app_spec, database_url, workers, log_dir)
    try:
        server.start(ready_path)
        yield server
    finally:
        server.stop()


# ---- databases ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    engine: str
    url: str
    name: str  # file path or database name, for people


def resolve_database(value: str) -> Database:
    """A SQLite file path or ``sqlite:///`` URL, or a PostgreSQL database name or ``postgresql`` URL."""
    if value.startswith("sqlite:"):
        path = value.removeprefix("sqlite:///")
        return Database("sqlite", value, path)
    if value.startswith("postgresql"):
        return Database("postgresql", value, value.rsplit("/", 1)[-1])
    if "/" in value or value.endswith((".sqlite", ".sqlite3", ".db")):
        return Database("sqlite", f"sqlite:///{Path(value).resolve()}", value)
    return Database("postgresql", f"{PG_BASE_URL}/{value}", value)


def pg_admin_conninfo(url: str) -> str:
    """A libpq connection string for the ``postgres`` database of the server ``url`` points at."""
    from sqlalchemy.engine import make_url

    target = make_url(url).set(drivername="postgresql", database="postgres")
    return target.render_as_string(hide_password=False)


def pg_execute(url: str, *statements: str) -> list[Any]:
    import psycopg

    results = []
    with psycopg.connect(pg_admin_conninfo(url), autocommit=True) as connection:
        for statement in statements:
            cursor = connection.execute(statement)
            results.append(cursor.fetchall() if cursor.description else None)
    return results


def exists(database: Database) -> bool:
    if database.engine == "sqlite":
        return Path(database.name).is_file()
    rows = pg_execute(database.url, f"SELECT 1 FROM pg_database WHERE datname = '{database.name}'")[0]
    return bool(rows)


def with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


def fresh_floor_database(small: Database, rows: int) -> Database:
    """An empty database for the floor on the same engine (and server) as ``small``, filled for its reads."""
    if small.engine == "sqlite":
        for path in (SQLITE_FLOOR, Path(f"{SQLITE_FLOOR}-wal"), Path(f"{SQLITE_FLOOR}-shm")):
            path.unlink(missing_ok=True)
        floor = Database("sqlite", f"sqlite:///{SQLITE_FLOOR}", str(SQLITE_FLOOR))
    else:
        pg_execute(small.url, f"DROP DATABASE IF EXISTS {PG_FLOOR} WITH (FORCE)", f"CREATE DATABASE {PG_FLOOR}")
        floor = Database("postgresql", with_database(small.url, PG_FLOOR), PG_FLOOR)
    subprocess.run([sys.executable, str(ROOT / "bench" / "floor_app.py"), "--rows", str(rows)], check=True,
                   env={**os.environ, "DUESFLOW_DATABASE_URL": floor.url}, stdout=subprocess.DEVNULL)
    return floor


def upgrade_schema(database: Database) -> None:
    """Apply the migrations a seeded database may be missing (init-db is idempotent)."""
    subprocess.run([sys.executable, "-m", "flask", "--app", "duesflow", "init-db"], check=True, cwd=ROOT,
                   env={**os.environ, "DUESFLOW_DATABASE_URL": database.url}, stdout=subprocess.DEVNULL)


def scratch_copy(small: Database) -> Database:
    """A copy of the small seeded database that the recording scenario may write to."""
    if small.engine == "sqlite":
        for path in (SQLITE_SCRATCH, Path(f"{SQLITE_SCRATCH}-wal"), Path(f"{SQLITE_SCRATCH}-shm")):
            path.unlink(missing_ok=True)
        # The online backup API copies a consistent state, WAL contents included.
        with contextlib.closing(sqlite3.connect(small.name)) as source, \
                contextlib.closing(sqlite3.connect(SQLITE_SCRATCH)) as target:
            source.backup(target)
        return Database("sqlite", f"sqlite:///{SQLITE_SCRATCH}", str(SQLITE_SCRATCH))
    pg_execute(small.url, f"DROP DATABASE IF EXISTS {PG_SCRATCH} WITH (FORCE)",
               f"CREATE DATABASE {PG_SCRATCH} TEMPLATE {small.name}")
    return Database("postgresql", with_database(small.url, PG_SCRATCH), PG_SCRATCH)


def drop_database(database: Database) -> None:
    """Remove a database this bench made (the scratch copy, the floor's)."""
    assert database.name in (str(SQLITE_SCRATCH), str(SQLITE_FLOOR), PG_SCRATCH, PG_FLOOR), database.name
    if database.engine == "sqlite":
        for path in (Path(database.name), Path(f"{database.name}-wal"), Path(f"{database.name}-shm")):
            path.unlink(missing_ok=True)
    else:
        pg_execute(database.url, f"DROP DATABASE IF EXISTS {database.name} WITH (FORCE)")


def list_column(database: Database, query: str) -> list[Any]:
    """The first column of ``query``'s rows."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database.url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(query)).scalars())
    finally:
        engine.dispose()


def count_rows(database: Database, query: str) -> int:
    return int(list_column(database, query)[0])


# ---- the bench's view of a seeded database ---------------------------------------------------------------------


@dataclass
class Users:
    """The bench-seed accounts the scenarios act as (one password for all)."""

    clerk: str
    reviewer: str
    channel_reviewer: str
    central: str
    password: str


class Session:
    """Tokens of the bench users on one server, logged in once each (argon2 is not what is being measured)."""

    def __init__(self, server: Server, users: Users) -> None:
        self.server = server
        self.users = users
        self.tokens: dict[str, str] = {}

    def log_in(self, username: str) -> str:
        """A new token of the bench user ``username``."""
        return api_json(self.server.base_url, "POST", "/api/v1/auth/token",
                        body={"username": username, "password": self.users.password})["token"]

    def token(self, role: str) -> str:
        if role not in self.tokens:
            self.tokens[role] = self.log_in(getattr(self.users, role))
        return self.tokens[role]

    def get(self, role: str, path: str) -> Any:
        return api_json(self.server.base_url, "GET", path, token=self.token(role))

    def spec(self, role: str, paths: list[str], **extra: Any) -> RequestSpec:
        return RequestSpec(paths=tuple(paths), headers=(("Authorization", f"Bearer {self.token(role)}"),), **extra)


def beijing_today() -> str:
    return datetime.now(BEIJING).date().isoformat()


def record_body(session: Session, token: str | None = None) -> str | None:
    """A valid body for the clerk (``token``'s, or the bench clerk's): one of its members, an amount above the
    minimum, collected today; None when that clerk's committee has no members."""
    members = api_json(session.server.base_url, "GET", "/api/v1/members?limit=1",
                       token=token or session.token("clerk"))["items"]
    if not members:
        return None
    body = {"member_id": members[0]["id"], "amount": "1234.56", "collected_on": beijing_today(), "method": "cash",
            "regular_dues_paid": True, "note": RECORD_NOTE}
    return json.dumps(body, separators=(",", ":"))


def clerk_variants(session: Session, database: Database, committees: int) -> tuple[tuple[str, str], ...]:
    """(Authorization, body) of the clerks of ``committees`` grassroots orgs with members, the bench clerk first:
    a campaign records in many committees at once, each on its own audit chain (SPEC §8)."""
    usernames = [session.users.clerk] + [name for name in list_column(
        database, "SELECT username FROM users WHERE role = 'clerk' AND username LIKE 'bench-c-%' ORDER BY id")
        if name != session.users.clerk]
    variants: list[tuple[str, str]] = []
    for username in usernames:
        if len(variants) == committees:
            break
        token = session.log_in(username)
        body = record_body(session, token)
        if body is not None:
            variants.append((f"Bearer {token}", body))
    if len(variants) < committees:
        raise RuntimeError(f"only {len(variants)} of {committees} committees have a clerk and members")
    return tuple(variants)


def payment_ids(session: Session, role: str, query: str, count: int,
                keep: Callable[[dict[str, Any]], bool] = lambda _item: True) -> list[int]:
    """Up to ``count`` payments ``role`` sees (newest first) that ``keep`` admits, following cursors."""
    ids: list[int] = []
    cursor: str | None = None
    while len(ids) < count:
        suffix = f"&cursor={cursor}" if cursor else ""
        page = session.get(role, f"/api/v1/payments?limit=200{query}{suffix}")
        ids += [item["id"] for item in page["items"] if keep(item)]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return ids[:count]


def receipt_paths(session: Session, count: int) -> list[str]:
    """Receipt downloads the reviewer may make: receipted payments of its subtree whose path includes its org."""
    paths = []
    candidates = payment_ids(session, "reviewer", "&state=receipted", count * 4,
                             keep=lambda item: item["receipt"] is not None)
    headers = {"Authorization": f"Bearer {session.token('reviewer')}"}
    for payment_id in candidates:
        path = f"/api/v1/payments/{payment_id}/receipt.pdf"
        if http(session.server.base_url, "GET", path, headers=headers)[0] == 200:
            paths.append(path)
        if len(paths) == count:
            break
    if not paths:
        raise RuntimeError(f"reviewer {session.users.reviewer} may download no receipt")
    return paths


def list_paths(session: Session) -> dict[str, tuple[str, str]]:
    """The list endpoints whose latency must not grow with the table: name → (role, path)."""
    first = session.get("reviewer", "/api/v1/payments")
    cursor = first["next_cursor"]
    paths = {
        "inbox (district reviewer)": ("reviewer", "/api/v1/payments?holder=me"),
        "inbox (province reviewer)": ("channel_reviewer", "/api/v1/payments?holder=me"),
        "inbox (central)": ("central", "/api/v1/payments?holder=me"),
        "inbox (clerk)": ("clerk", "/api/v1/payments?holder=me"),
        "list (district reviewer)": ("reviewer", "/api/v1/payments"),
        "list (province reviewer)": ("channel_reviewer", "/api/v1/payments"),
        "list (central)": ("central", "/api/v1/payments"),
        "list (clerk)": ("clerk", "/api/v1/payments"),
        "list state=receipted (district reviewer)": ("reviewer", "/api/v1/payments?state=receipted"),
        "members (district reviewer)": ("reviewer", "/api/v1/members"),
        "members (clerk)": ("clerk", "/api/v1/members"),
    }
    if cursor:
        paths["list page 2 (district reviewer)"] = ("reviewer", f"/api/v1/payments?cursor={cursor}")
    return paths


DEFAULT_PAGE = 50  # the API's default limit


def filled_page_size(session: Session, role: str, path: str) -> int:
    """The rows the first page of ``path`` holds on ``session``'s database (at most the default page, at least 1)."""
    return max(1, len(session.get(role, path)["items"]))


def with_limit(path: str, size: int) -> str:
    """``path`` asking for pages of ``size`` rows (the default page needs no parameter)."""
    if size >= DEFAULT_PAGE:
        return path
    return f"{path}{'&' if '?' in path else '?'}limit={size}"


def busiest_year(session: Session) -> int:
    """The Beijing year of collection with the most payments central sees (the seed spreads them over years)."""
    this_year = datetime.now(BEIJING).year
    counts = {year: session.get("central", f"/api/v1/reports/summary?year={year}&group_by=state")["total"]["count"]
              for year in range(this_year - 3, this_year + 1)}
    return max(counts, key=lambda year: counts[year])


# ---- results --------------------------------------------------------------------------------------------------


@dataclass
class ThroughputRow:
    engine: str
    scenario: str
    target: float
    floor: list[WrkResult] = field(default_factory=list)
    duesflow: list[WrkResult] = field(default_factory=list)
    write_mismatches: int = 0  # sides whose rows written did not match their answered POSTs

    def median_rps(self, side: str) -> float:
        return statistics.median(run.rps for run in getattr(self, side))

    @property
    def ratio(self) -> float:
        return self.median_rps("duesflow") / self.median_rps("floor")

    def cpu(self, side: str) -> str:
        """The median CPU a request of ``side`` took, its app's and the database server's."""
        app = statistics.median(run.app_cpu_ms for run in getattr(self, side))
        database = statistics.median(run.database_cpu_ms for run in getattr(self, side))
        return f"{app:.2f} + {database:.2f}"

    @property
    def errors(self) -> int:
        return sum(run.errors for run in [*self.floor, *self.duesflow]) + self.write_mismatches

    @property
    def passed(self) -> bool:
        return self.errors == 0 and self.ratio >= self.target


@dataclass
class FlatnessRow:
    engine: str
    endpoint: str
    small: list[WrkResult] = field(default_factory=list)
    large: list[WrkResult] = field(default_factory=list)

    def median_of(self, side: str, measure: str) -> float:
        return statistics.median(getattr(run, measure) for run in getattr(self, side))

    def ratio(self, measure: str) -> float:
        return self.median_of("large", measure) / self.median_of("small", measure)

    @property
    def errors(self) -> int:
        return sum(run.errors for run in [*self.small, *self.large])

    @property
    def passed(self) -> bool:
        return self.errors == 0 and max(self.ratio("p50_ms"), self.ratio("p95_ms")) <= FLATNESS_TARGET


@dataclass
class ReportRow:
    engine: str
    database: str
    group_by: str
    year: int
    times_ms: list[float] = field(default_factory=list)
    errors: int = 0

    def percentile(self, share: float) -> float:
        """The ``share`` quantile of the request times (nearest rank: with few requests p95 is the slowest)."""
        ordered = sorted(self.times_ms)
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else 0.0

    @property
    def passed(self) -> bool:
        return self.errors == 0 and bool(self.times_ms) and self.percentile(0.95) < REPORT_TARGET_MS


@dataclass
class Results:
    throughput: list[ThroughputRow] = field(default_factory=list)
    flatness: list[FlatnessRow] = field(default_factory=list)
    reports: list[ReportRow] = field(default_factory=list)
    profiles: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def verdict(passed: bool, errors: int) -> str:
    if errors:
        return f"**INVALID** ({errors} errors)"
    return "pass" if passed else "**FAIL**"


def throughput_table(rows: list[ThroughputRow]) -> str:
    lines = ["| engine | scenario | floor req/s | duesflow req/s | ratio | target | result "
             "| floor p50 / p95 ms | duesflow p50 / p95 ms | CPU ms a request, floor / duesflow (app + database) |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    for row in rows:
        floor_p50 = statistics.median(run.p50_ms for run in row.floor)
        floor_p95 = statistics.median(run.p95_ms for run in row.floor)
        ours_p50 = statistics.median(run.p50_ms for run in row.duesflow)
        ours_p95 = statistics.median(run.p95_ms for run in row.duesflow)
        lines.append(
            f"| {row.engine} | {row.scenario} | {row.median_rps('floor'):.0f} | {row.median_rps('duesflow'):.0f} "
            f"| {row.ratio:.2f} | ≥ {row.target} | {verdict(row.passed, row.errors)} "
            f"| {floor_p50:.1f} / {floor_p95:.1f} | {ours_p50:.1f} / {ours_p95:.1f} "
            f"| {row.cpu('floor')} / {row.cpu('duesflow')} |"
        )
    return "\n".join(lines)


def flatness_table(rows: list[FlatnessRow]) -> str:
    lines = ["| engine | endpoint | small p50 / p95 ms | large p50 / p95 ms | ratio p50 | ratio p95 | target "
             "| result |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in rows:
        lines.append(
            f"| {row.engine} | {row.endpoint} "
            f"| {row.median_of('small', 'p50_ms'):.1f} / {row.median_of('small', 'p95_ms'):.1f} "
            f"| {row.median_of('large', 'p50_ms'):.1f} / {row.median_of('large', 'p95_ms'):.1f} "
            f"| {row.ratio('p50_ms'):.2f} | {row.ratio('p95_ms'):.2f} | ≤ {FLATNESS_TARGET} "
            f"| {verdict(row.passed, row.errors)} |"
        )
    return "\n".join(lines)


def report_table(rows: list[ReportRow]) -> str:
    lines = ["| engine | database | report | requests | p50 ms | p95 ms | max ms | target | result |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in rows:
        target = f"p95 < {REPORT_TARGET_MS:.0f} ms" if row.engine == "postgresql" else "(PostgreSQL's)"
        result = verdict(row.passed, row.errors) if row.engine == "postgresql" else (
            "info" if not row.errors else verdict(False, row.errors))
        lines.append(
            f"| {row.engine} | {row.database} | year={row.year} group_by={row.group_by} "
            f"| {len(row.times_ms)} | {row.percentile(0.5):.0f} | {row.percentile(0.95):.0f} "
            f"| {max(row.times_ms, default=0):.0f} | {target} | {result} |"
        )
    return "\n".join(lines)


# ---- the run --------------------------------------------------------------------------------------------------


@dataclass
class Options:
    duration: str
    warmup: str
    repeats: int
    workers: int
    connections: int
    latency_connections: int
    rotate: int
    committees: int
    report_requests: int
    reads_on: str
    floor_rows: int
    users: Users
    only: tuple[str, ...]
    lists: list[str]
    log_dir: Path
    profile_dir: Path | None


class Bench:
    """One engine's run."""

    def __init__(self, options: Options, results: Results) -> None:
        self.options = options
        self.results = results
        self.nonce = f"{os.getpid()}-{int(time.time())}"
        self.runs = 0
        # Responses and wrk runs per (server, method), warm-ups included: what the rows written must add up to.
        self.answered: Counter[tuple[str, str]] = Counter()
        self.wrk_runs: Counter[tuple[str, str]] = Counter()

    def measure(self, server: Server, spec: RequestSpec, *, connections: int, duration: str | None = None) -> WrkResult:
        self.runs += 1
        assert server.process is not None
        app = process_tree(server.process.pid)
        database = postgres_processes() if server.database_url.startswith("postgresql") else []
        app_before, database_before = cpu_seconds(app), cpu_seconds(database)
        result = run_wrk(server.base_url, spec, duration=duration or self.options.duration, connections=connections,
                         nonce=f"{self.nonce}-{self.runs}")
        if result.requests:
            result = replace(
                result, app_cpu_ms=(cpu_seconds(app) - app_before) * 1000 / result.requests,
                database_cpu_ms=(cpu_seconds(database) - database_before) * 1000 / result.requests)
        self.answered[server.label, spec.method] += result.requests
        self.wrk_runs[server.label, spec.method] += 1
        return result

    def check_writes(self, row: ThroughputRow, server: Server, database: Database, table: str) -> None:
        """Every answered POST wrote its own row (no replay, no lost write); else the row counts an error.

        Up to one row per connection and run more than answers is fine: wrk stops with requests in flight.
        """
        rows = count_rows(database, f"SELECT count(*) FROM {table} WHERE note = '{RECORD_NOTE}'")
        answered = self.answered[server.label, "POST"]  # check_request's requests included
        in_flight = self.options.connections * self.wrk_runs[server.label, "POST"]
        matches = answered <= rows <= answered + in_flight
        self.results.notes.append(f"{server.label}: {rows} rows written for {answered} answered POSTs "
                                  f"({'ok' if matches else 'MISMATCH'})")
        if not matches:
            row.write_mismatches += 1

    def warm(self, server: Server, spec: RequestSpec, connections: int) -> None:
        if seconds_of(self.options.warmup) > 0:
            self.measure(server, spec, connections=connections, duration=self.options.warmup)

    def alternate(self, row: Any, label: str, sides: list[tuple[str, Server, RequestSpec]], connections: int,
                  describe: Callable[[Any], str]) -> None:
        """``repeats`` measurements of each side into ``row.<side>``, the order alternating to cancel any drift."""
        for repeat in range(self.options.repeats):
            for side, server, spec in sides if repeat % 2 == 0 else reversed(sides):
                result = self.measure(server, spec, connections=connections)
                getattr(row, side).append(result)
                log(f"  {label} {side}: {describe(result)}")

    def throughput(self, engine: str, scenario: str, floor: Server, floor_spec: RequestSpec, ours: Server,
                   our_spec: RequestSpec) -> ThroughputRow:
        """Floor and duesflow back to back, ``repeats`` times, the order alternating to cancel any drift."""
        for server, spec, side in ((floor, floor_spec, "floor"), (ours, our_spec, "duesflow")):
            self.answered[server.label, spec.method] += check_request(server.base_url, spec, f"{side} {scenario}")
        connections = self.options.connections
        row = ThroughputRow(engine, scenario, THROUGHPUT_TARGETS[scenario])
        self.warm(floor, floor_spec, connections)
        self.warm(ours, our_spec, connections)
        self.alternate(row, f"{engine} {scenario}", [("floor", floor, floor_spec), ("duesflow", ours, our_spec)],
                       connections, lambda result: f"{result.rps:.0f} req/s, p50 {result.p50_ms:.1f} ms, "
                                                   f"p95 {result.p95_ms:.1f} ms, errors {result.errors}")
        self.results.throughput.append(row)
        if self.options.profile_dir is not None:
            self.profile(engine, scenario, ours, our_spec)
        return row

    def flatness(self, engine: str, endpoint: str, small: Server, small_spec: RequestSpec, large: Server,
                 large_spec: RequestSpec) -> FlatnessRow:
        check_request(small.base_url, small_spec, f"small {endpoint}")
        check_request(large.base_url, large_spec, f"large {endpoint}")
        connections = self.options.latency_connections
        row = FlatnessRow(engine, endpoint)
        self.warm(small, small_spec, connections)
        self.warm(large, large_spec, connections)
        self.alternate(row, f"{engine} {endpoint}", [("small", small, small_spec), ("large", large, large_spec)],
                       connections, lambda result: f"p50 {result.p50_ms:.1f} ms, p95 {result.p95_ms:.1f} ms, "
                                                   f"{result.requests} requests, errors {result.errors}")
        self.results.flatness.append(row)
        return row

    def report(self, engine: str, database: str, server: Server, session: Session, year: int) -> None:
        """Each summary ``--report-requests`` times, one after another, after one unmeasured request.

        A report's target is one request's time, not a rate, and a report over a million rows may take longer than
        a wrk run lasts (wrk then counts nothing); so these are timed here, one request at a time, over the same
        loopback HTTP. A report slower than REPORT_GIVE_UP_S is timed once and not repeated.
        """
        headers = {"Authorization": f"Bearer {session.token('central')}"}
        for group_by in ("channel", "org", "state", "month"):
            path = f"/api/v1/reports/summary?year={year}&group_by={group_by}"
            row = ReportRow(engine, database, group_by, year)
            for attempt in range(self.options.report_requests + 1):
                started = time.perf_counter()
                status, _type, _body = http(server.base_url, "GET", path, headers=headers)
                elapsed_ms = (time.perf_counter() - started) * 1000
                if status != 200:
                    row.errors += 1
                if attempt > 0 or elapsed_ms > REPORT_GIVE_UP_S * 1000:
                    row.times_ms.append(elapsed_ms)
                if elapsed_ms > REPORT_GIVE_UP_S * 1000:
                    break
            log(f"  {engine} report {group_by}: p50 {row.percentile(0.5):.0f} ms, max {max(row.times_ms):.0f} ms, "
                f"{len(row.times_ms)} requests, errors {row.errors}")
            self.results.reports.append(row)

    def profile(self, engine: str, scenario: str, server: Server, spec: RequestSpec) -> None:
        """One more run of the scenario with py-spy sampling every worker; where the time went, by phase."""
        assert self.options.profile_dir is not None and server.process is not None
        output = self.options.profile_dir / f"{engine}-{scenario}.folded"
        seconds = seconds_of(self.options.duration)
        sampler = subprocess.Popen(
            ["py-spy", "record", "--pid", str(server.process.pid), "--subprocesses", "--format", "raw",
             "--nolineno", "--rate", "250", "--duration", str(int(seconds) + 1), "--output", str(output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        time.sleep(1.0)  # py-spy attaches to the workers before the load starts
        self.measure(server, spec, connections=self.options.connections)
        _out, err = sampler.communicate(timeout=seconds + 60)
        if sampler.returncode != 0 or not output.exists():
            self.results.notes.append(f"py-spy failed for {engine} {scenario}: {err.decode()[-300:]}")
            return
        phases, top = summarize_profile(output.read_text())
        self.results.profiles[f"{engine} {scenario}"] = phases
        self.results.profiles[f"{engine} {scenario} (top self)"] = top

    def run_engine(self, small: Database, large: Database | None) -> None:
        engine, options = small.engine, self.options
        wanted = set(options.only)
        log(f"== {engine}: small {small.name}, large {large.name if large else '(none)'}")
        # The floor is only needed by the throughput scenarios.
        floor_db = fresh_floor_database(small, options.floor_rows) if wanted & set(THROUGHPUT_TARGETS) else None
        scratch = scratch_copy(small) if "record" in wanted else None
        try:
            with contextlib.ExitStack() as stack:
                def start(label: str, app: str, database: Database, ready: str) -> Server:
                    return stack.enter_context(
                        serving(f"{engine}-{label}", app, database.url, options.workers, options.log_dir, ready))

                floor = start("floor", FLOOR_APP, floor_db, "/read/1") if floor_db is not None else None
                for database in (small, large) if large is not None else (small,):
                    upgrade_schema(database)
                ours_small = start("duesflow-small", DUESFLOW_APP, small, "/healthz")
                ours_large = None
                if large is not None and (wanted & {"lists", "reports"} or options.reads_on == "large"):
                    ours_large = start("duesflow-large", DUESFLOW_APP, large, "/healthz")
                small_session = Session(ours_small, options.users)
                large_session = Session(ours_large, options.users) if ours_large is not None else None
                floor_reads = [f"/read/{1 + n * options.floor_rows // options.rotate}" for n in range(options.rotate)]
                floor_read = RequestSpec(paths=tuple(floor_reads))

                if "record" in wanted and scratch is not None and floor is not None and floor_db is not None:
                    ours_scratch = start("duesflow-scratch", DUESFLOW_APP, scratch, "/healthz")
                    scratch_session = Session(ours_scratch, options.users)
                    variants = clerk_variants(scratch_session, scratch, options.committees)
                    body = variants[0][1]
                    floor_insert = RequestSpec(paths=("/insert",), method="POST", body=body, expect_status=201)
                    our_insert = scratch_session.spec("clerk", ["/api/v1/payments"], method="POST", body=body,
                                                      idempotent=True, expect_status=201,
                                                      variants=variants if len(variants) > 1 else ())
                    row = self.throughput(engine, "record", floor, floor_insert, ours_scratch, our_insert)
                    self.check_writes(row, floor, floor_db, "floor_rows")
                    self.check_writes(row, ours_scratch, scratch, "payments")

                reader = large_session if options.reads_on == "large" and large_session else small_session
                if "detail" in wanted and floor is not None:
                    ids = payment_ids(reader, "reviewer", "", options.rotate)
                    spec = reader.spec("reviewer", [f"/api/v1/payments/{i}" for i in ids])
                    self.throughput(engine, "detail", floor, floor_read, reader.server, spec)
                if "receipt" in wanted and floor is not None:
                    spec = reader.spec("reviewer", receipt_paths(reader, options.rotate), expect_type="application/pdf")
                    self.throughput(engine, "receipt", floor, floor_read, reader.server, spec)

                if "lists" in wanted:
                    if ours_large is None or large_session is None:
                        self.results.notes.append(f"{engine}: no large database, flatness not measured")
                    else:
                        small_paths, large_paths = list_paths(small_session), list_paths(large_session)
                        for endpoint, (role, path) in small_paths.items():
                            if endpoint not in large_paths or not any(part in endpoint for part in options.lists):
                                continue
                            # Both sides answer the same page size, one the small database fills: a page of 6
                            # rows against one of 50 would measure the page, not the table.
                            size = filled_page_size(small_session, role, path)
                            self.flatness(engine, f"{endpoint}, {size} a page", ours_small,
                                          small_session.spec(role, [with_limit(path, size)]), ours_large,
                                          large_session.spec(role, [with_limit(large_paths[endpoint][1], size)]))
                if "reports" in wanted:
                    session = large_session or small_session
                    database = large if large_session is not None and large is not None else small
                    self.report(engine, database.name, session.server, session, busiest_year(session))
        finally:
            if scratch is not None:
                drop_database(scratch)
            if floor_db is not None:
                drop_database(floor_db)


# ---- profiles -------------------------------------------------------------------------------------------------

# Phases of a request, matched against py-spy's frames ("Class.function (path)"). A sample belongs to the innermost
# frame that matches a specific phase; failing that, to the innermost generic one; failing that, to the server.
def _frame(function: str, path: str) -> str:
    return rf"^(\w+\.)*({function}) \((.*/)?{path}"


SPECIFIC_PHASES = [
    ("auth: bearer token → user (SQL)", _frame("user_for_token", r"duesflow/services/auth\.py")),
    ("idempotency: claim, in its own commit", _frame("claim", r"duesflow/services/idempotency\.py")),
    ("idempotency: store the response", _frame("complete", r"duesflow/services/idempotency\.py")),
    ("body: JSON parse + marshmallow load", _frame("read_body|parse_json_body|read_query|load", r"duesflow/api/")),
    ("record_payment (insert, event, audit chain)", _frame("record_payment", r"duesflow/services/payments\.py")),
    ("payment look-up: its row with member, orgs, receipt, and the events or stored document (SQL)",
     _frame("_rows_or_404", r"duesflow/services/payment_reads\.py")),
    ("render_receipt_pdf", _frame("render_receipt_pdf", r"duesflow/receipts/")),
    ("receipt document: fingerprint, then stored bytes or a rendering",
     _frame("receipt_pdf", r"duesflow/services/receipt_documents\.py")),
    ("receipt document: stored after the answer (SQL)", _frame("store", r"duesflow/services/receipt_documents\.py")),
    ("payment_view (presenter)", _frame("payment_view", r"duesflow/api/presenters\.py")),
    ("response: dump by the compiled schema", _frame("dump", r"duesflow/api/framework\.py")),
    ("access log of unmasked views", _frame("write_pending", r"duesflow/services/access_log\.py")),
]
GENERIC_PHASES = [
    ("commit", _frame("commit", r"sqlalchemy/orm/")),
    ("response: marshmallow dump", _frame("dump", r"marshmallow/")),
    ("response: marshmallow Schema() construction", _frame("__init__", r"marshmallow/schema\.py")),
    ("response: json.dumps", _frame("dumps", r"json/")),
    ("session teardown (rollback, close)", _frame("_teardown_session|remove", r"(flask_sqlalchemy|sqlalchemy/orm)/")),
    ("other view code, Flask and werkzeug request handling", r"\((.*/)?(duesflow|flask|flask_sqlalchemy|werkzeug)/"),
]
# Time inside the database driver: SQLAlchemy's calls into it, or psycopg's own frames.
DRIVER_FRAMES = re.compile(_frame("do_execute|do_executemany|do_commit|do_rollback|do_ping", r"sqlalchemy/")
                           + r"|\((.*/)?psycopg/")


SERVER_PHASE = "gunicorn worker: accept, parse, write, close"
# A worker waiting for the next connection is idle, not serving: py-spy still samples it, so it is left out.
IDLE_LEAF = re.compile(r"^(SyncWorker\.wait|select|BaseSelector\.select|EpollSelector\.select) \(")


def summarize_profile(folded: str) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Shares of a worker's busy samples by phase (plus the share inside the database driver, waiting for the
    server included), and the frames with the most samples of their own. The master process is left out."""
    phases: Counter[str] = Counter()
    own: Counter[str] = Counter()
    driver = total = 0
    specific = [(label, re.compile(pattern)) for label, pattern in SPECIFIC_PHASES]
    generic = [(label, re.compile(pattern)) for label, pattern in GENERIC_PHASES]
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        parts = stack.split(";")
        frames = [frame for frame in parts if not frame.startswith("process ")]
        # py-spy prefixes a worker's stacks with the master's "process" frame and its own: one alone is the master.
        if len(parts) - len(frames) < 2 or (frames and IDLE_LEAF.match(frames[-1])):
            continue
        total += count
        if frames:
            own[frames[-1]] += count
        if any(DRIVER_FRAMES.search(frame) for frame in frames):
            driver += count
        phases[_phase(frames, specific) or _phase(frames, generic) or SERVER_PHASE] += count
    if not total:
        return [], []
    shares = [(label, 100.0 * count / total) for label, count in phases.most_common()]
    shares.append(("(across all phases: inside the database driver, waiting for the server included)",
                   100.0 * driver / total))
    top = [(frame, 100.0 * count / total) for frame, count in own.most_common(12)]
    return shares, top


def _phase(frames: list[str], phases: list[tuple[str, re.Pattern[str]]]) -> str | None:
    for frame in reversed(frames):
        for label, pattern in phases:
            if pattern.search(frame):
                return label
    return None


# ---- the command ----------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine_description(databases: list[Database]) -> list[str]:
    """Machine, date, versions and load: what a reader needs to weigh the figures."""
    from importlib.metadata import version

    cpu = "unknown"
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), cpu)
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False).stdout
    lines = [
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average before the run: "
        f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}",
        f"- machine: {platform.node()}, {os.cpu_count()} CPUs ({cpu}), "
        f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB, {platform.platform()}",
        f"- Python {platform.python_version()}, gunicorn {version('gunicorn')}, Flask {version('flask')}, "
        f"Flask-SQLAlchemy {version('flask-sqlalchemy')}, SQLAlchemy {version('sqlalchemy')}, "
        f"psycopg {version('psycopg')}, SQLite {sqlite3.sqlite_version}, "
        f"{(wrk_version.splitlines() or ['wrk'])[0].split(' Copyright')[0]}",
    ]
    for database in databases:
        if database.engine == "postgresql":
            server_version = pg_execute(database.url, "SHOW server_version")[0][0][0]
            lines.append(f"- PostgreSQL {server_version} on 127.0.0.1")
            break
    others = sorted(name for name in os.environ if name.startswith("DUESFLOW_"))
    if others:
        lines.append(f"- DUESFLOW_* variables inherited by the servers: {', '.join(others)}")
    lines.append(f"- command: `python bench/{Path(sys.argv[0]).name} {shlex.join(sys.argv[1:])}`")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--duration", default="10s", help="of each measured wrk run (wrk syntax; default 10s)")
    parser.add_argument("--warmup", default="2s", help="a wrk run before the first measurement on each server")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per side; the median is kept")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers of every server (README)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections for the throughput runs")
    parser.add_argument("--latency-connections", type=int, default=1,
                        help="wrk connections for the list latency runs (1: a request's own time)")
    parser.add_argument("--rotate", type=int, default=50, help="payments (and floor rows) a read run cycles over")
    parser.add_argument("--committees", type=int, default=1,
                        help="record as the clerks of this many grassroots orgs in turn (default 1: the bench clerk)")
    parser.add_argument("--report-requests", type=int, default=10,
                        help="timed requests of each report, one at a time, after an unmeasured one (default 10)")
    parser.add_argument("--reads-on", choices=("small", "large"), default="small",
                        help="the seeded database the detail and receipt scenarios read (default small)")
    parser.add_argument("--floor-rows", type=int, default=10_000, help="rows in the floor's table")
    parser.add_argument("--small-db", action="append", default=[],
                        help="a SQLite file or PostgreSQL database name (or URL) with ~10,000 payments; once per "
                             f"engine (default {SQLITE_DEFAULTS['small']} and {PG_DEFAULTS['small']})")
    parser.add_argument("--large-db", action="append", default=[],
                        help="the same with ~1,000,000 payments "
                             f"(default {SQLITE_DEFAULTS['large']} and {PG_DEFAULTS['large']})")
    # bench-seed's accounts down its deepest path: 吉林 → 长春 → 河西区 → 长青街道 → 春光社区 (README, bench-seed).
    parser.add_argument("--clerk", default="bench-c-jilin.1.1.1.1", help="a clerk of a grassroots org with members")
    parser.add_argument("--reviewer", default="bench-r-jilin.1.1",
                        help="a reviewer above that org (detail, receipt, lists; default: the district's)")
    parser.add_argument("--channel-reviewer", default="bench-r-jilin",
                        help="a reviewer of a whole channel, for the lists (default: the province's)")
    parser.add_argument("--central", default="bench-central", help="a central user")
    parser.add_argument("--password", default="bench-password", help="the bench users' password")
    parser.add_argument("--only", default=",".join(ALL_SCENARIOS),
                        help=f"comma-separated subset of {', '.join(ALL_SCENARIOS)}")
    parser.add_argument("--lists", default=[""], type=lambda text: [part for part in text.split(",") if part] or [""],
                        help="only the list rows whose name contains one of these comma-separated words")
    parser.add_argument("--json", type=Path, help="also write every run's figures to this file")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample duesflow with py-spy during one more run of each throughput scenario")
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp/duesflow-http-bench"),
                        help="gunicorn logs (default /tmp/duesflow-http-bench)")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(ALL_SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    seconds_of(args.duration)
    return args


def database_for(engine: str, given: list[str], kind: str) -> Database:
    """The ``--small-db``/``--large-db`` value of this engine, else the bench-seed default."""
    for value in given:
        database = resolve_database(value)
        if database.engine == engine:
            return database
    return resolve_database((SQLITE_DEFAULTS if engine == "sqlite" else PG_DEFAULTS)[kind])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    args.log_dir.mkdir(parents=True, exist_ok=True)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    options = Options(
        duration=args.duration, warmup=args.warmup, repeats=args.repeats, workers=args.workers,
        connections=args.connections, latency_connections=args.latency_connections, rotate=args.rotate,
        committees=args.committees,
        reads_on=args.reads_on, report_requests=args.report_requests,
        floor_rows=args.floor_rows,
        users=Users(args.clerk, args.reviewer, args.channel_reviewer, args.central, args.password),
        only=tuple(args.only.split(",")), lists=args.lists, log_dir=args.log_dir, profile_dir=args.profile,
    )
    plan: list[tuple[Database, Database | None]] = []
    for engine in engines:
        small = database_for(engine, args.small_db, "small")
        large: Database | None = database_for(engine, args.large_db, "large")
        if not exists(small):
            sys.exit(f"{engine}: the small database {small.name} does not exist "
                     "(python bench/bench_seed.py, or --small-db)")
        if large is not None and not exists(large):
            log(f"{engine}: the large database {large.name} does not exist; flatness is skipped")
            large = None
        plan.append((small, large))
    header = machine_description([database for pair in plan for database in pair if database is not None])
    results = Results()
    bench = Bench(options, results)
    for small, large in plan:
        bench.run_engine(small, large)

    print("\n".join(header))
    print(f"- settings: gunicorn --workers {args.workers} --worker-class sync --timeout 600 on 127.0.0.1, no access "
          f"log; wrk -t1 -c{args.connections} (lists: -c{args.latency_connections}) -d{args.duration} after a "
          f"{args.warmup} warm-up, {args.repeats} runs per side, interleaved, medians; reports: "
          f"{args.report_requests} requests each, one at a time; users {args.clerk}, {args.reviewer}, "
          f"{args.channel_reviewer}, {args.central}; load average after: "
          f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    for title, rows, table in (("Throughput against the floor", results.throughput, throughput_table),
                               ("Lists: large database over small", results.flatness, flatness_table),
                               ("Reports", results.reports, report_table)):
        if rows:
            print(f"\n### {title}\n\n{table(rows)}")  # type: ignore[arg-type]
    for name, shares in results.profiles.items():
        print(f"\n#### Profile: {name}\n")
        print("\n".join(f"- {share:5.1f} % {label}" for label, share in shares))
    for note in results.notes:
        print(f"\nNote: {note}")
    if args.json:
        args.json.write_text(json.dumps(
            {"header": header, "throughput": [asdict(row) for row in results.throughput],
             "flatness": [asdict(row) for row in results.flatness], "reports": [asdict(row) for row in results.reports],
             "profiles": results.profiles, "notes": results.notes}, ensure_ascii=False, indent=1))
    rows_ok = [row.passed for row in results.throughput] + [row.passed for row in results.flatness] + [
        row.passed for row in results.reports if row.engine == "postgresql"]
    return 0 if all(rows_ok) else 1


if __name__ == "__main__":
    sys.exit(main())

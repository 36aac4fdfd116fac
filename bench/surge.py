"""The campaign surge (issue 15): N payments from batch entry to receipted, through the public HTTP API.

    python bench/surge.py --engine sqlite|postgresql --payments N [--workers 4] [--clients 4]
        [--batch 500] [--verify-jobs N] [--database URL] [--keep] [--json FILE]

A million on a quiet machine (2,000 collecting committees of 500 among the tree's 2,160):

    python bench/surge.py --engine postgresql --payments 1000000 --json surge-pg-1m.json
    python bench/surge.py --engine sqlite --payments 1000000 --json surge-sqlite-1m.json

What it does, in one run on one engine:

1. Setup (a fast path, not measured): an empty database (SQLite: a new file; PostgreSQL: a new database
   ``duesflow_batch_surge``, dropped afterwards unless ``--keep``; or ``--database`` given, whose schema is created
   when missing), the schema, and a realistic tree written straight into it: central, ``--channels`` channels
   (provinces), ``--cities`` cities under each, ``--districts`` districts under each city, ``--committees``
   grassroots committees under each district (6 × 5 × 6 × 12 = 2160 committees by default: four levels under
   central), one reviewer for every org above the committees and one clerk for each committee (all with one
   password hashed once, with cheap argon2 parameters: logins are not what is measured), and the members who pay,
   ``--batch`` of them in each committee that collects (every tenth named by resident ID number in the upload).
2. The surge, timed stage by stage, under gunicorn (``--workers`` sync workers) with ``--clients`` client threads:
   - batch entry: each collecting committee's clerk posts its members' payments, ``POST /api/v1/payments/batch``
     (JSON rows, at most 10,000 a request);
   - up every level: each clerk sends its committee's payments in one transfer (``POST /api/v1/transfers``), then
     at every level up to the channels the reviewer records the money of each incoming transfer as received
     (``POST /transfers/{id}/receive``) and forwards everything it holds in transfers of at most 10,000;
   - at central: central receives each incoming transfer and confirms it as a whole
     (``POST /api/v1/transfers/{id}/confirm``).
3. Checks: ``flask --app duesflow verify-audit`` (timed), every payment receipted, the receipt numbers of the year
   1..N without a gap.
4. The floor, on the same engine in the same run: a bare table of the same columns, N rows inserted with
   executemany in chunks of 10,000, each chunk committed, through the same SQLAlchemy engine setup as duesflow.

It prints a timeline per stage (seconds, payments per second, requests) and the rate beside the floor's, as
Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import requests

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]
from http_bench import PG_BASE_URL, ROOT, SECRET_KEY, pg_execute, serving  # noqa: E402

PASSWORD = "surge-password-2026"
BENCH_DATA_KEY = "c3VyZ2UtYmVuY2gtZGF0YS1rZXktMzItYnl0ZXMhISE="  # fixed: the setup and every worker agree
PG_SURGE = "duesflow_batch_surge"
MAX_ROWS = 10_000
RETRIES = 20  # a 503 (SQLite's write lock not had in 30 s) is tried again; at a million, queues are long
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "建国秀兰海峰志强丽华明德春梅文静国庆玉兰永红"


# ---- setup (fast path) ----------------------------------------------------------------------------------------


@dataclass
class Tree:
    central: int = 0
    parent: dict[int, int] = field(default_factory=dict)
    committees: list[int] = field(default_factory=list)
    reviewers: dict[int, str] = field(default_factory=dict)  # org id -> username, every org above committees
    clerks: dict[int, str] = field(default_factory=dict)  # committee id -> username
    members: dict[int, list[tuple[int, str | None]]] = field(default_factory=dict)  # committee -> (id, id_number)


def resident_id(serial: int) -> str:
    from duesflow.identity import resident_id_check_character

    born = date(1950, 1, 1).toordinal() + serial % 18000
    first17 = f"220302{date.fromordinal(born):%Y%m%d}{serial % 1000:03d}"
    return first17 + resident_id_check_character(first17)


def build_tree(app: Any, options: argparse.Namespace, collecting: int) -> Tree:
    """The orgs, accounts and paying members, written with executemany (ids chosen here, sequences set after)."""
    from argon2 import PasswordHasher
    from sqlalchemy import insert, text

    from duesflow.extensions import db
    from duesflow.identity import fold_username
    from duesflow.models import Member, Org, User, utcnow
    from duesflow.personal_data import data_keys

    tree = Tree()
    now = utcnow()
    orgs: list[dict[str, Any]] = []
    next_id = iter(range(1, 10**9))

    def add(name: str, kind: str, parent: int | None, path: str) -> tuple[int, str]:
        org_id = next(next_id)
        tree_path = f"{path}{org_id}/"
        orgs.append({"id": org_id, "name": name, "kind": kind, "parent_id": parent, "tree_path": tree_path,
                     "code": f"surge.{org_id}", "active": True, "created_at": now})
        if parent is not None:
            tree.parent[org_id] = parent
        return org_id, tree_path

    tree.central, central_path = add("中共中央组织部", "central", None, "/")
    for c in range(options.channels):
        channel, channel_path = add(f"第{c + 1}省委组织部", "channel", tree.central, central_path)
        tree.reviewers[channel] = f"r{channel}"
        for p in range(options.cities):
            city, city_path = add(f"第{c + 1}省第{p + 1}市委组织部", "intermediate", channel, channel_path)
            tree.reviewers[city] = f"r{city}"
            for d in range(options.districts):
                district, district_path = add(f"第{c + 1}省第{p + 1}市第{d + 1}区委组织部", "intermediate", city,
                                              city_path)
                tree.reviewers[district] = f"r{district}"
                for g in range(options.committees):
                    committee, _ = add(f"第{c + 1}-{p + 1}-{d + 1}-{g + 1}基层党委", "grassroots", district,
                                       district_path)
                    tree.committees.append(committee)
                    tree.clerks[committee] = f"c{committee}"
    password_hash = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    users = [{"username": "central", "password_hash": password_hash, "role": "central", "org_id": tree.central}]
    users += [{"username": name, "password_hash": password_hash, "role": "reviewer", "org_id": org}
              for org, name in tree.reviewers.items()]
    users += [{"username": name, "password_hash": password_hash, "role": "clerk", "org_id": org}
              for org, name in tree.clerks.items()]
    for user in users:
        user.update(username_folded=fold_username(user["username"]), active=True, auth_version=1, created_at=now,
                    member_id=None)
    with app.app_context():
        keys = data_keys()
    rng = random.Random(15)
    members: list[dict[str, Any]] = []
    member_id = 0
    chosen = rng.sample(tree.committees, collecting) if collecting < len(tree.committees) else tree.committees
    for committee in sorted(chosen):
        tree.members[committee] = []
        for n in range(options.batch):
            member_id += 1
            id_number = resident_id(member_id) if n % 10 == 0 else None
            members.append({"id": member_id, "org_id": committee, "created_at": now, "updated_at": now,
                            "name": rng.choice(SURNAMES) + rng.choice(GIVEN[::2]) + rng.choice(GIVEN[1::2]),
                            "id_number": id_number,
                            "id_number_hash": keys.blind_index("id_number", id_number) if id_number else None})
            tree.members[committee].append((member_id, id_number))
    with app.app_context():
        db.session.execute(insert(Org), orgs)
        db.session.execute(insert(User), users)
        for start in range(0, len(members), 20_000):
            db.session.execute(insert(Member), members[start:start + 20_000])
        if db.engine.dialect.name == "postgresql":
            for table in ("orgs", "members"):
                db.session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                        f"(SELECT max(id) FROM {table}))"))
        db.session.commit()
    return tree


def prepare_database(options: argparse.Namespace, workdir: Path) -> str:
    if options.database:
        return options.database
    if options.engine == "sqlite":
        return f"sqlite:///{workdir / 'surge.sqlite3'}"
    url = f"{PG_BASE_URL}:5432/{PG_SURGE}"
    pg_execute(url, f"DROP DATABASE IF EXISTS {PG_SURGE}", f"CREATE DATABASE {PG_SURGE}")
    return url


def app_for(url: str) -> Any:
    from duesflow import create_app
    from duesflow.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET_KEY})
    with app.app_context():
        db.create_all()
    return app


# ---- the surge over HTTP --------------------------------------------------------------------------------------


class Client:
    """Logged-in API calls from several threads (one connection pool per thread)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.tokens: dict[str, str] = {}
        self.local = threading.local()
        self.requests = 0
        self.retries = 0  # answers 503 (busy) that were tried again
        self.lock = threading.Lock()

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def call(self, username: str, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        token = self.tokens.get(username)
        if token is None:
            answer = self.session().post(f"{self.base_url}/api/v1/auth/token",
                                         json={"username": username, "password": PASSWORD}, timeout=600)
            assert answer.status_code == 200, answer.text
            token = self.tokens[username] = answer.json()["token"]
        for _attempt in range(RETRIES):
            answer = self.session().request(method, f"{self.base_url}/api/v1{path}", json=body, timeout=600,
                                            headers={"Authorization": f"Bearer {token}"})
            with self.lock:
                self.requests += 1
            if answer.status_code != 503:
                break
            # busy (SQLite's write lock not had within its timeout): nothing was done; a client tries again
            with self.lock:
                self.retries += 1
            time.sleep(float(answer.headers.get("Retry-After", "1")))
        if answer.status_code != expect:
            raise RuntimeError(f"{method} {path} as {username}: {answer.status_code} {answer.text[:500]}")
        return answer.json()


@dataclass
class Stage:
    name: str
    seconds: float
    payments: int
    requests: int
    retries: int = 0


def in_parallel(clients: int, work: Iterable[Callable[[], Any]]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=clients) as pool:
        return [future.result() for future in [pool.submit(job) for job in work]]


def chunks(values: list[int], size: int = MAX_ROWS) -> list[list[int]]:
    return [values[start:start + size] for start in range(0, len(values), size)]


def surge(client: Client, tree: Tree, options: argparse.Namespace) -> list[Stage]:
    stages: list[Stage] = []
    today = date.today().isoformat()  # Beijing's "today" can be ahead of the machine's, never behind

    def timed(name: str, payments: int, work: list[Callable[[], Any]]) -> list[Any]:
        before, retried, started = client.requests, client.retries, time.perf_counter()
        results = in_parallel(options.clients, work)
        stages.append(Stage(name, time.perf_counter() - started, payments, client.requests - before,
                            client.retries - retried))
        log(f"{name}: {stages[-1].seconds:.1f} s")
        return results

    def enter(committee: int) -> tuple[int, list[int]]:
        rows = [{"amount": f"{1000 + (member_id % 97) * 10}.{member_id % 100:02d}", "collected_on": today,
                 "method": "cash" if member_id % 3 else "wechat", "regular_dues_paid": True,
                 **({"id_number": id_number} if id_number else {"member_id": member_id})}
                for member_id, id_number in tree.members[committee]]
        ids: list[int] = []
        for start in range(0, len(rows), MAX_ROWS):
            batch = {"rows": rows[start:start + MAX_ROWS]}
            ids += client.call(tree.clerks[committee], "POST", "/payments/batch", batch, expect=201)["payment_ids"]
        return committee, ids

    total = sum(len(members) for members in tree.members.values())
    entered = dict(timed("batch entry", total, [lambda c=c: enter(c) for c in tree.members]))
    # held: org id -> (payment ids it holds, transfers sent to it)
    held: dict[int, list[int]] = {org: ids for org, ids in entered.items()}
    incoming: dict[int, list[dict[str, Any]]] = {}
    level_orgs = list(entered)
    level = 1
    while True:
        def send(org: int, ids: list[int]) -> list[dict[str, Any]]:
            user = tree.clerks.get(org) or tree.reviewers[org]
            return [client.call(user, "POST", "/transfers", {"payment_ids": part, "bank_reference": f"S{org}-{n}"},
                                expect=201) for n, part in enumerate(chunks(ids))]

        sent = timed(f"transfers, level {level} up", total, [lambda o=o, i=held[o]: send(o, i) for o in level_orgs])
        incoming = {}
        for transfers in sent:
            for transfer in transfers:
                incoming.setdefault(transfer["to_org"]["id"], []).append(transfer)
        if tree.central in incoming:
            break

        def receive(org: int, transfers: list[dict[str, Any]]) -> None:
            for transfer in transfers:
                client.call(tree.reviewers[org], "POST", f"/transfers/{transfer['id']}/receive",
                            {"amount_received": transfer["total"]})

        timed(f"money received, level {level + 1}", total,
              [lambda o=o, t=t: receive(o, t) for o, t in incoming.items()])
        held = {org: sorted(pid for transfer in transfers for pid in transfer["payment_ids"])
                for org, transfers in incoming.items()}
        level_orgs = list(incoming)
        level += 1
    into_central = incoming[tree.central]

    def receive_and_confirm(transfer: dict[str, Any]) -> int:
        client.call("central", "POST", f"/transfers/{transfer['id']}/receive", {"amount_received": transfer["total"]})
        return client.call("central", "POST", f"/transfers/{transfer['id']}/confirm")["count"]

    confirmed = timed("central: received and confirmed", total, [lambda t=t: receive_and_confirm(t)
                                                                 for t in into_central])
    assert sum(confirmed) == total, (sum(confirmed), total)
    return stages


# ---- checks and the floor -------------------------------------------------------------------------------------


def verify(url: str, jobs: int | None) -> tuple[float, str]:
    env = {**os.environ, "DUESFLOW_DATABASE_URL": url, "DUESFLOW_SECRET_KEY": SECRET_KEY,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    command = [sys.executable, "-m", "flask", "--app", "duesflow", "verify-audit"]
    command += ["--jobs", str(jobs)] if jobs else []
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"verify-audit failed: {result.stdout}{result.stderr}")
    return seconds, result.stdout.strip()


def check_receipts(app: Any, total: int) -> int:
    """Every payment receipted, the numbers 1..N without a gap; the number of events (for verify-audit's rate)."""
    from sqlalchemy import func, select

    from duesflow.extensions import db
    from duesflow.models import Event, Payment, Receipt

    with app.app_context():
        states = dict(db.session.execute(select(Payment.state, func.count()).group_by(Payment.state)).all())
        low, high, count, distinct = db.session.execute(select(
            func.min(Receipt.sequence), func.max(Receipt.sequence), func.count(),
            func.count(func.distinct(Receipt.sequence)))).one()
        events = db.session.scalar(select(func.count()).select_from(Event))
        db.session.rollback()
    assert states == {"receipted": total}, states
    assert (low, high, count, distinct) == (1, total, total, total), (low, high, count, distinct)
    return events


def floor_insert(app: Any, total: int) -> float:
    """N rows of the payment's columns into a bare table, executemany in chunks of 10,000, each committed."""
    from sqlalchemy import Column, Date, Integer, MetaData, Numeric, String, Table, insert

    from duesflow.extensions import db

    table = Table("surge_floor", MetaData(), Column("id", Integer, primary_key=True), Column("member_id", Integer),
                  Column("amount", Numeric(14, 2)), Column("collected_on", Date), Column("method", String(16)),
                  Column("note", String(500)))
    rows = [{"member_id": n, "amount": f"{1000 + n % 97}.50", "collected_on": date.today(), "method": "cash",
             "note": None} for n in range(total)]
    with app.app_context():
        table.drop(db.engine, checkfirst=True)
        table.create(db.engine)
        started = time.perf_counter()
        for start in range(0, total, MAX_ROWS):
            with db.engine.begin() as connection:
                connection.execute(insert(table), rows[start:start + MAX_ROWS])
        seconds = time.perf_counter() - started
        table.drop(db.engine)
    return seconds


# ---- report ---------------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def report(options: argparse.Namespace, tree: Tree, stages: list[Stage], audit_seconds: float,
           floor_seconds: float, total: int, setup_seconds: float, events: int) -> str:
    surge_seconds = sum(stage.seconds for stage in stages)
    lines = [
        f"**{options.engine}**, {total:,} payments, {len(tree.committees):,} committees "
        f"({len(tree.members):,} collecting, {options.batch} payments each), {len(tree.reviewers) + 1:,} orgs above "
        f"them; gunicorn {options.workers} workers, {options.clients} client threads; "
        f"{platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}. "
        f"Setup (fast path, not timed below): {setup_seconds:.0f} s.",
        "",
        "| stage | seconds | payments/s | requests (503 busy, retried) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for stage in stages:
        lines.append(f"| {stage.name} | {stage.seconds:.1f} | {stage.payments / stage.seconds:,.0f} | "
                     f"{stage.requests:,}" + (f" ({stage.retries})" if stage.retries else "") + " |")
    lines += [
        f"| **batch entry → receipted** | **{surge_seconds:.1f}** ({surge_seconds / 60:.1f} min) | "
        f"**{total / surge_seconds:,.0f}** | {sum(s.requests for s in stages):,} |",
        f"| verify-audit ({events:,} events: {events / audit_seconds:,.0f} events/s"
        f"{f', --jobs {options.verify_jobs}' if options.verify_jobs else ''}) | {audit_seconds:.1f} | "
        f"{total / audit_seconds:,.0f} | – |",
        f"| floor: bare executemany insert of {total:,} rows | {floor_seconds:.1f} | "
        f"{total / floor_seconds:,.0f} | – |",
        "",
        f"The whole surge took {surge_seconds / floor_seconds:.1f}× the floor's bare insert of as many rows; every "
        f"payment receipted, receipt numbers 1..{total:,} without a gap, verify-audit passed.",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), required=True)
    parser.add_argument("--payments", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500, help="payments per collecting committee")
    parser.add_argument("--channels", type=int, default=6)
    parser.add_argument("--cities", type=int, default=5)
    parser.add_argument("--districts", type=int, default=6)
    parser.add_argument("--committees", type=int, default=12, help="committees under each district")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--verify-jobs", type=int, help="verify-audit --jobs (default: its own, one per CPU for "
                                                         "100,000 events or more)")
    parser.add_argument("--database", help="an existing database URL to use instead of a new one")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--json", type=Path, help="write the figures to this file too")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    os.environ.setdefault("DUESFLOW_DATA_KEY", BENCH_DATA_KEY)
    os.environ.setdefault("DUESFLOW_SECRET_KEY", SECRET_KEY)
    workdir = Path(tempfile.mkdtemp(prefix="duesflow-surge-"))
    url = prepare_database(options, workdir)
    try:
        started = time.perf_counter()
        app = app_for(url)
        committees = options.channels * options.cities * options.districts * options.committees
        collecting = min(committees, -(-options.payments // options.batch))
        if collecting * options.batch != options.payments:
            options.batch = -(-options.payments // collecting)
        tree = build_tree(app, options, collecting)
        total = sum(len(members) for members in tree.members.values())
        setup_seconds = time.perf_counter() - started
        log(f"setup: {len(tree.committees)} committees, {total} members in {setup_seconds:.1f} s")
        with serving("surge", "duesflow:create_app()", url, options.workers, workdir, "/healthz") as server:
            stages = surge(Client(server.base_url), tree, options)
        audit_seconds, _ = verify(url, options.verify_jobs)
        log(f"verify-audit: {audit_seconds:.1f} s")
        events = check_receipts(app, total)
        floor_seconds = floor_insert(app, total)
        log(f"floor: {floor_seconds:.1f} s")
        text = report(options, tree, stages, audit_seconds, floor_seconds, total, setup_seconds, events)
        print(text)
        if options.json:
            options.json.write_text(json.dumps({
                "engine": options.engine, "payments": total, "audit_seconds": audit_seconds, "events": events,
                "floor_seconds": floor_seconds,
                "stages": [{"name": s.name, "seconds": s.seconds, "requests": s.requests} for s in stages]},
                ensure_ascii=False, indent=2))
        from duesflow.extensions import db

        with app.app_context():
            db.engine.dispose()
    finally:
        if options.engine == "postgresql" and not options.database and not options.keep:
            pg_execute(url, f"DROP DATABASE IF EXISTS {PG_SURGE} WITH (FORCE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

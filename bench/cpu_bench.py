"""CPU per request in one process, duesflow against the floor: disk- and network-independent (issue 15, point 6).

    python bench/cpu_bench.py --engine sqlite|postgresql|both [--requests 300] [--warmup 50]
        [--postgresql-url URL] [--profile [record|detail]]

Each engine gets two fresh scratch databases (SQLite: files in a temporary folder; PostgreSQL: databases
``<name>_cpu`` and ``<name>_cpu_floor`` made next to ``--postgresql-url``'s, dropped afterwards), one for duesflow
with a small tree (central → a province → a district → a committee with members, its clerk and the district's
reviewer), one for the floor (``bench/floor_app.py``). Requests go through Flask's test client, so no server,
socket or HTTP parsing is measured, only the app, its driver and (SQLite) the engine's own work:

- record: ``POST /api/v1/payments`` as the clerk, a valid body and a unique ``Idempotency-Key`` each time, against
  the floor's ``POST /insert`` of the same body (target: ≤ 2.5×);
- detail: ``GET /api/v1/payments/{id}`` as the district reviewer, rotating over 50 submitted payments with their
  events, against the floor's ``GET /read/{id}`` rotating over as many rows (target: ≤ 2×).

Each request's CPU time (``time.process_time``, this process only: PostgreSQL's server work is not counted, nor
any wait for the disk) is taken after ``--warmup`` requests of each kind; duesflow and floor requests alternate one
by one, so that a busy moment of the shared machine falls on both sides alike. The medians and their ratio are
printed as a Markdown table. ``--profile [record|detail]`` samples that scenario's requests with cProfile and
prints the top.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import floor_app  # noqa: E402
from duesflow import create_app  # noqa: E402
from duesflow.extensions import db  # noqa: E402
from duesflow.models import Member  # noqa: E402
from duesflow.services import orgs as org_service  # noqa: E402
from duesflow.services import users as user_service  # noqa: E402
from duesflow.timeutil import beijing_today  # noqa: E402
from duesflow.workflow import OrgKind  # noqa: E402

PASSWORD = "cpu-bench-password"
TARGETS = {"record": 2.5, "detail": 2.0}


@dataclass
class Side:
    """One app's test client and the request it repeats (``call(n)`` sends the n-th)."""

    client: FlaskClient
    call: Callable[[int], Any]


def _body(member_id: int) -> dict[str, Any]:
    return {"member_id": member_id, "amount": "1000.00", "collected_on": beijing_today().isoformat(),
            "method": "cash", "regular_dues_paid": True}


def _checked(response: Any, status: int) -> None:
    if response.status_code != status:
        raise SystemExit(f"unexpected answer {response.status_code}: {response.get_data(as_text=True)[:300]}")


def _duesflow(url: str) -> tuple[Flask, dict[str, Side]]:
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "cpu-bench-secret-of-at-least-32-characters",
                      "ARGON2_TIME_COST": 1,
                      "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1})
    with app.app_context():
        db.create_all()
        central = org_service.create_org("中共中央组织部", OrgKind.CENTRAL, None)
        province = org_service.create_org("中共吉林省委组织部", OrgKind.CHANNEL, central.id)
        district = org_service.create_org("中共四平市委组织部", OrgKind.INTERMEDIATE, province.id)
        committee = org_service.create_org("北门街道党工委", OrgKind.GRASSROOTS, district.id)
        members = [Member(org_id=committee.id, name=f"党员{n}") for n in range(20)]
        db.session.add_all(members)
        for username, role, org in (("clerk", "clerk", committee), ("reviewer", "reviewer", district)):
            user_service.create_user(None, {"username": username, "password": PASSWORD, "role": role,
                                            "org_id": org.id})
        db.session.commit()
        member_ids = [member.id for member in members]
    client = app.test_client()

    def token(username: str) -> dict[str, str]:
        response = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
        _checked(response, 200)
        return {"Authorization": f"Bearer {response.json['token']}"}

    clerk, reviewer = token("clerk"), token("reviewer")
    submitted = []
    for n in range(50):
        response = client.post("/api/v1/payments", json=_body(member_ids[n % 20]), headers=clerk)
        _checked(response, 201)
        _checked(client.post(f"/api/v1/payments/{response.json['id']}/submit", headers=clerk), 200)
        submitted.append(response.json["id"])

    def record(n: int) -> Any:
        headers = {**clerk, "Idempotency-Key": uuid.uuid4().hex}
        return client.post("/api/v1/payments", json=_body(member_ids[n % 20]), headers=headers)

    def detail(n: int) -> Any:
        return client.get(f"/api/v1/payments/{submitted[n % 50]}", headers=reviewer)

    _checked(record(0), 201)
    _checked(detail(0), 200)
    return app, {"record": Side(client, record), "detail": Side(client, detail)}


def _floor(url: str) -> tuple[Flask, dict[str, Side]]:
    os.environ["DUESFLOW_DATABASE_URL"] = url
    floor_app.prepare(50)
    app = floor_app.create_app()
    client = app.test_client()

    def insert(n: int) -> Any:
        return client.post("/insert", json=_body(1 + n % 20))

    def read(n: int) -> Any:
        return client.get(f"/read/{1 + n % 50}")

    _checked(insert(0), 201)
    _checked(read(0), 200)
    return app, {"record": Side(client, insert), "detail": Side(client, read)}


def _cpu(call: Callable[[int], Any], n: int) -> float:
    start = time.process_time()
    call(n)
    return time.process_time() - start


def measure(sides: dict[str, dict[str, Side]], scenario: str, requests: int, warmup: int) -> dict[str, float]:
    """Median CPU seconds per request of each side, the sides alternating request by request."""
    for side in sides.values():
        for n in range(warmup):
            side[scenario].call(n)
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for n in range(requests):
        order = list(sides) if n % 2 == 0 else list(reversed(sides))
        for name in order:
            samples[name].append(_cpu(sides[name][scenario].call, warmup + n))
    return {name: statistics.median(values) for name, values in samples.items()}


@contextmanager
def _databases(engine: str, postgresql_url: str) -> Iterator[tuple[str, str]]:
    """Two empty scratch databases (duesflow's, the floor's) on ``engine``, removed afterwards."""
    if engine == "sqlite":
        with tempfile.TemporaryDirectory(prefix="duesflow-cpu-bench-") as folder:
            yield f"sqlite:///{folder}/duesflow.sqlite3", f"sqlite:///{folder}/floor.sqlite3"
        return
    base = make_url(postgresql_url)
    names = [f"{base.database}_cpu", f"{base.database}_cpu_floor"]
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield tuple(base.set(database=name).render_as_string(hide_password=False) for name in names)  # type: ignore[misc]
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run_engine(engine: str, args: argparse.Namespace) -> list[str]:
    with _databases(engine, args.postgresql_url) as (duesflow_url, floor_url):
        duesflow, duesflow_sides = _duesflow(duesflow_url)
        floor, floor_sides = _floor(floor_url)
        rows = []
        sides = {"duesflow": duesflow_sides, "floor": floor_sides}
        for scenario in ("record", "detail"):
            medians = measure(sides, scenario, args.requests, args.warmup)
            ratio = medians["duesflow"] / medians["floor"]
            verdict = "pass" if ratio <= TARGETS[scenario] else "**missed**"
            rows.append(f"| {engine} | {scenario} | {medians['floor'] * 1000:.2f} | {medians['duesflow'] * 1000:.2f} "
                        f"| {ratio:.2f} | ≤ {TARGETS[scenario]} | {verdict} |")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for n in range(args.requests):
                duesflow_sides[args.profile].call(10_000 + n)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        with duesflow.app_context():
            db.session.remove()
            db.engine.dispose()
        with floor.app_context():
            floor_app.db.session.remove()
            floor_app.db.engine.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--requests", type=int, default=300, help="measured requests per side and scenario")
    parser.add_argument("--warmup", type=int, default=50, help="requests per side and scenario before measuring")
    parser.add_argument("--postgresql-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/duesflow_bench",
                        help="scratch databases are made beside this one's name")
    parser.add_argument("--profile", nargs="?", const="record", choices=("record", "detail"),
                        help="cProfile of duesflow's requests of this scenario afterwards (default record)")
    args = parser.parse_args()
    engines = ("sqlite", "postgresql") if args.engine == "both" else (args.engine,)
    rows = ["| engine | scenario | floor CPU ms | duesflow CPU ms | ratio | target | result |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for engine in engines:
        rows += run_engine(engine, args)
    print(f"CPU per request, medians of {args.requests} after {args.warmup} warm-up requests each, "
          f"sides alternating ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}):")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

"""Fixtures: an app on a clean database per test (SQLite by default, PostgreSQL when
DUESFLOW_TEST_DATABASE_URL is set), factory fixtures, and a small org tree with users of every role."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import parallel
import pytest
from flask import Flask, Response, g, request, request_finished
from flask.testing import FlaskClient
from marshmallow import Schema
from sqlalchemy import select

from duesflow import create_app
from duesflow.api import framework
from duesflow.api import payments as payments_api
from duesflow.extensions import db
from duesflow.models import Member, Org, Payment, User
from duesflow.services import audit
from duesflow.services import orgs as org_service
from duesflow.services import users as user_service
from duesflow.timeutil import beijing_today
from duesflow.workflow import OrgKind

parallel.cache_url_builders()  # an app per test: werkzeug compiles each shape of URL rule once (tests/parallel.py)
parallel.share_engines()  # PostgreSQL: one engine per database and process, its connections kept (tests/parallel.py)

PG_URL = os.environ.get("DUESFLOW_TEST_DATABASE_URL")
PASSWORD = "correct-horse-battery"
FAST_HASH = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1}
# The data key of every test app and live server (personal data at rest); made with generate-data-key.
DATA_KEY = "dGVzdC1kYXRhLWtleS1kdWVzZmxvdy0zMi1ieXRlcyE="


def app_config(database_url: str) -> dict[str, Any]:
    """The configuration every test app (and live test server) runs with."""
    return {"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": "test-secret" * 3,
            "DATA_KEY": DATA_KEY, "DATA_OLD_KEYS": [], "PUBLIC_URL": "http://testserver", **FAST_HASH}


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This process's test database: under pytest-xdist each worker has its own (tests/parallel.py)."""
    if not PG_URL:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
        return
    url = parallel.worker_database_url(PG_URL)
    parallel.create_worker_database(PG_URL, url)
    yield url
    parallel.drop_worker_database(PG_URL, url)


def _clean(database_url: str) -> None:
    """Empty the database the app is on, ``database_url`` (tests/parallel.py, clean_database)."""
    parallel.clean_database()


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    app = create_app(app_config(database_url))
    with app.app_context():
        _clean(database_url)
        yield app
        db.session.remove()
        if not parallel.shares_engines(database_url):
            db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):  # noqa: ANN201
    return app.test_cli_runner()


@dataclass
class World:
    """A small tree: central → 吉林 → 四平 → 铁东 → {北门, 解放}; central → 北京 → 东城街道 (outsiders)."""

    orgs: dict[str, Org] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)


def make_org(name: str, kind: OrgKind, parent: Org | None) -> Org:
    return org_service.create_org(name, kind, parent.id if parent else None)


def make_user(username: str, role: str, org: Org | None = None, member: Member | None = None) -> User:
    return user_service.create_user(None, {"username": username, "password": PASSWORD, "role": role,
                                           "org_id": org.id if org else None,
                                           "member_id": member.id if member else None})


def make_member(org: Org, name: str = "张三", **extra: Any) -> Member:
    member = Member(org_id=org.id, name=name, **extra)
    db.session.add(member)
    db.session.flush()
    return member


def build_world() -> World:
    """The tree, its members and users, made by the services as an admin would make them, and committed."""
    w = World()
    central = w.orgs["central"] = make_org("中共中央组织部", OrgKind.CENTRAL, None)
    jilin = w.orgs["jilin"] = make_org("中共吉林省委组织部", OrgKind.CHANNEL, central)
    siping = w.orgs["siping"] = make_org("中共四平市委组织部", OrgKind.INTERMEDIATE, jilin)
    tiedong = w.orgs["tiedong"] = make_org("中共四平市铁东区委组织部", OrgKind.INTERMEDIATE, siping)
    beimen = w.orgs["beimen"] = make_org("北门街道党工委", OrgKind.GRASSROOTS, tiedong)
    jiefang = w.orgs["jiefang"] = make_org("解放街道党工委", OrgKind.GRASSROOTS, tiedong)
    beijing = w.orgs["beijing"] = make_org("中共北京市委组织部", OrgKind.CHANNEL, central)
    dongcheng = w.orgs["dongcheng"] = make_org("东城街道党工委", OrgKind.GRASSROOTS, beijing)
    w.members["zhang"] = make_member(beimen, "张建国", phone="13843430001", id_number="220302199001051231")
    w.members["li"] = make_member(beimen, "李秀兰")
    w.members["zhou"] = make_member(jiefang, "周海峰")
    w.members["wang"] = make_member(dongcheng, "王府井")
    for username, role, org in [
        ("admin", "admin", None), ("clerk", "clerk", beimen), ("clerk_jiefang", "clerk", jiefang),
        ("clerk_dongcheng", "clerk", dongcheng), ("tiedong", "reviewer", tiedong),
        ("siping", "reviewer", siping), ("jilin", "reviewer", jilin), ("beijing", "reviewer", beijing),
        ("central", "central", central),
    ]:
        w.users[username] = make_user(username, role, org)
    w.users["member"] = make_user("member", "member", member=w.members["zhang"])
    w.users["member_li"] = make_user("member_li", "member", member=w.members["li"])
    db.session.commit()
    return w


WORLD_MODELS = {"orgs": Org, "members": Member, "users": User}


def load_world(ids: dict[str, dict[str, int]]) -> World:
    """The world's named objects, by id, as build_world leaves them: committed, expired, no transaction open."""
    w = World()
    for part, model in WORLD_MODELS.items():
        by_id = {row.id: row for row in db.session.scalars(select(model).where(model.id.in_(ids[part].values())))}
        getattr(w, part).update({name: by_id[row_id] for name, row_id in ids[part].items()})
    db.session.commit()
    return w


@pytest.fixture
def world(app: Flask) -> World:
    """build_world's rows. The first test of a process (and of a configuration) builds them with the services; the
    next ones get the same rows written back into their emptied database (tests/parallel.py, ``save``), a few
    statements instead of about sixty (docs/testing.md)."""
    ids = parallel.restore_saved(app, "world")
    if ids is not None:
        return load_world(ids)
    w = build_world()
    parallel.save(app, "world", {part: {name: obj.id for name, obj in getattr(w, part).items()}
                                 for part in WORLD_MODELS})
    db.session.commit()
    return w


class Api:
    """A JSON client that logs users in once and sends their bearer token."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.tokens: dict[str, str] = {}

    def token(self, username: str) -> str:
        if username not in self.tokens:
            response = self.client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
            assert response.status_code == 200, response.json
            self.tokens[username] = response.json["token"]
        return self.tokens[username]

    def call(self, method: str, path: str, as_user: str | None = None, **kwargs: Any):  # noqa: ANN201
        headers = dict(kwargs.pop("headers", {}))
        if as_user is not None:
            headers["Authorization"] = f"Bearer {self.token(as_user)}"
        return self.client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    def get(self, path: str, as_user: str | None = None, **kwargs: Any):  # noqa: ANN201
        return self.call("GET", path, as_user, **kwargs)

    def post(self, path: str, as_user: str | None = None, **kwargs: Any):  # noqa: ANN201
        return self.call("POST", path, as_user, **kwargs)

    def patch(self, path: str, as_user: str | None = None, **kwargs: Any):  # noqa: ANN201
        return self.call("PATCH", path, as_user, **kwargs)

    def record(self, member: Member, amount: str = "1000.00", as_user: str = "clerk", **extra: Any) -> dict:
        body = {"member_id": member.id, "amount": amount, "collected_on": beijing_today().isoformat(),
                "method": "cash", "regular_dues_paid": True, **extra}
        response = self.post("/payments", as_user, json=body)
        assert response.status_code == 201, response.json
        return response.json

    def act(self, payment_id: int, action: str, as_user: str, reason: str | None = None,
            expect: int = 200) -> dict:
        response = self.post(f"/payments/{payment_id}/{action}", as_user,
                             json={"reason": reason} if reason else None)
        assert response.status_code == expect, response.json
        return response.json


@pytest.fixture
def api(client: FlaskClient) -> Api:
    return Api(client)


# The route to central for a payment of 北门: who forwards at each level.
PATH_TO_CENTRAL = [("submit", "clerk"), ("forward", "tiedong"), ("forward", "siping"), ("forward", "jilin")]


def advance(api: Api, payment_id: int, steps: int) -> dict:
    """Move a 北门 payment up ``steps`` levels along PATH_TO_CENTRAL."""
    result: dict = {}
    for action, user in PATH_TO_CENTRAL[:steps]:
        result = api.act(payment_id, action, user)
    return result


def yesterday() -> date:
    return beijing_today() - timedelta(days=1)


def payment_row(payment_id: int) -> Payment:
    db.session.expire_all()
    return db.session.get(Payment, payment_id)


__all__ = ["Decimal", "PASSWORD", "advance", "payment_row", "yesterday"]


# ---- every answer's compiled dump (api.framework.dumper) is what marshmallow's own dump gives ---------------


@pytest.fixture(autouse=True)
def _dumps_checked_against_marshmallow(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = framework.dumper

    def checked(schema: type[Schema]) -> Callable[[Any], Any]:
        fast = compiled(schema)

        def dump(obj: Any) -> Any:
            result, expected = fast(obj), framework.shared(schema).dump(obj)
            assert result == expected and list(result) == list(expected), (schema.__name__, result, expected)
            return result

        return dump

    monkeypatch.setattr(framework, "dumper", checked)
    monkeypatch.setattr(payments_api, "dumper", checked)


# ---- after every test on a database: the audit heads count the payments by state as they are -------------


@pytest.fixture(autouse=True)
def _payment_counts_checked(request: pytest.FixtureRequest) -> Iterator[None]:
    """What /metrics sums, each chain head's count of its payments in each state, equals the payments' own grouped
    count once the test is done, whatever it did: so the whole suite proves that every path that records, moves or
    removes a payment keeps the counts (services/audit.py). Tests that change the database behind the service's
    back on purpose say so with the ``payment_counts_unchecked`` mark."""
    if "app" not in request.fixturenames or request.node.get_closest_marker("payment_counts_unchecked"):
        yield
        return
    app = request.getfixturevalue("app")
    yield
    with app.app_context():  # a session of its own: what the test committed, whatever its session holds
        g.read_only = True  # SQLite: a plain BEGIN, which does not wait for a write transaction the test left open
        problem = audit.check_payment_counts(audit.counted_payments())
    assert problem is None, f"the payment counts drifted: {problem}"


# ---- every (route, method, status) the app answered in this session, read by tests/test_openapi.py ------

OBSERVED_STATUSES: set[tuple[str, str, int]] = set()


def _observe_status(_app: Flask, response: Response, **_extra: Any) -> None:
    if request.url_rule is not None:
        OBSERVED_STATUSES.add((request.url_rule.rule, request.method, response.status_code))


request_finished.connect(_observe_status)


def observed_statuses(config: pytest.Config) -> set[tuple[str, str, int]]:
    """OBSERVED_STATUSES of this run: under pytest-xdist, of every worker (waits until the others are done)."""
    return parallel.gathered(config, OBSERVED_STATUSES)


def pytest_sessionfinish(session: pytest.Session) -> None:
    parallel.publish(session.config, OBSERVED_STATUSES)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "last: run after every other test (it reads what the session observed)")
    config.addinivalue_line("markers", "payment_counts_unchecked(why): the test changes payments or chain heads behind "
                                       "the service's back on purpose; the counts are not checked after it")
    config.addinivalue_line("markers", "slow: a browser, live-server, crash, fuzz, wheel or deployment-rehearsal test "
                                       "(deselect: -m 'not slow')")
    config.addinivalue_line("markers", "engine_independent: proves the same on every database engine, so it runs on "
                                       "the SQLite run only (deselected when DUESFLOW_TEST_DATABASE_URL is set); "
                                       "every test that uses no database fixture has it (docs/testing.md)")


def engine_independent(item: pytest.Item) -> bool:
    """A test that uses no database fixture (``database_url``, directly or through ``app``, ``world`` …), does not
    read the PostgreSQL URL itself (its module has no ``PG_URL``: the wheel, the deployment rehearsals) and does not
    read what the other tests of its run did (``last``); or one marked so by hand."""
    if item.get_closest_marker("engine_independent") is not None:
        return True
    module = getattr(item, "module", None)
    return ("database_url" not in getattr(item, "fixturenames", ("database_url",))
            and not hasattr(module, "PG_URL") and item.get_closest_marker("last") is None)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``last`` run after all the others, whatever their file is called; tests on a live server are
    ``slow``; tests sharing a module-scoped fixture form one xdist group; on PostgreSQL the engine-independent
    tests are deselected (they ran on SQLite)."""
    for item in items:
        if {"live_server", "live_api"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        if engine_independent(item):
            item.add_marker(pytest.mark.engine_independent)
    if PG_URL:
        once = [item for item in items if item.get_closest_marker("engine_independent") is not None]
        if once:
            config.hook.pytest_deselected(items=once)
            items[:] = [item for item in items if item.get_closest_marker("engine_independent") is None]
    parallel.group_by_module(items)
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)

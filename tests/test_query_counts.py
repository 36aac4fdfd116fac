"""SQL statements per request: a small constant, whatever the number of rows (no N+1), and no COUNT over payments.

Each endpoint is asked once with a few payments and members, then again after thirty more of each (in several
states, with receipts and longer event trails); the statements it sends must be the same number both times. The
statements are counted with a ``before_cursor_execute`` listener on the engine, so everything the request sends
counts, ``BEGIN`` on SQLite included; logging in happens before counting starts, and every counted request begins
with an empty session, as a request in a fresh worker does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Api, World, advance, make_member, yesterday
from sqlalchemy import event

from duesflow.extensions import db
from duesflow.models import Member, Org

# The most statements any of these reads may send (auth, the rows, their eager loads, a transaction or two).
MAX_STATEMENTS = 12
BATCH = 30


@pytest.fixture
def statements(app: Any) -> Iterator[list[str]]:
    """Every statement the engine sends while the test runs, in order."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    yield sent
    event.remove(db.engine, "before_cursor_execute", record)


def counted(api: Api, statements: list[str], username: str, path: str,
            expect_type: str = "application/json") -> list[str]:
    """The statements of one GET of ``path`` by ``username``, which must answer 200."""
    api.token(username)  # log in (argon2, a token row) outside the counted request
    db.session.remove()  # an empty identity map, as in a fresh request: nothing loaded earlier can hide a query
    statements.clear()
    response = api.get(path, username)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.content_type.startswith(expect_type)
    return list(statements)


def add_payments(api: Api, member_ids: list[int], count: int) -> dict[str, list[int]]:
    """``count`` payments of 北门 members, spread over recorded, in review at 铁东, at central and receipted."""
    made: dict[str, list[int]] = {"recorded": [], "in_review": [], "at_central": [], "receipted": []}
    for n in range(count):
        payment = api.record(_member(member_ids[n % len(member_ids)]), amount=f"{1000 + n}.50")
        state = list(made)[n % len(made)]
        if state == "in_review":
            advance(api, payment["id"], 1)
        elif state in ("at_central", "receipted"):
            advance(api, payment["id"], 4)
        if state == "receipted":
            api.act(payment["id"], "confirm", "central")
        made[state].append(payment["id"])
    return made


def _member(member_id: int) -> Member:
    member = db.session.get(Member, member_id)
    assert member is not None
    return member


def add_members(org_id: int, count: int) -> list[int]:
    """``count`` more members of the org, each with a phone (shown unmasked to their clerk, which is logged)."""
    org = db.session.get(Org, org_id)
    assert org is not None
    ids = [make_member(org, f"党员{n}", phone=f"1384343{n:04d}").id for n in range(count)]
    db.session.commit()
    return ids


def first_cursor(api: Api, username: str, path: str) -> str:
    response = api.get(path, username)
    assert response.status_code == 200
    cursor = response.json["next_cursor"]
    assert cursor, "the first page must not be the last"
    return cursor


# name → (user, path); "{cursor}" is the next_cursor of the same path's first page. Payments are made in a cycle
# of four states, so any page of four holds one of each (a receipt among them) with few rows and with many.
LISTS: dict[str, tuple[str, str]] = {
    "inbox of a reviewer": ("tiedong", "/payments?holder=me"),
    "inbox of central": ("central", "/payments?holder=me"),
    "inbox of a clerk": ("clerk", "/payments?holder=me"),
    "list of a clerk": ("clerk", "/payments"),
    "list of a reviewer": ("tiedong", "/payments"),
    "list of central": ("central", "/payments"),
    "list by state": ("tiedong", "/payments?state=receipted"),
    "second page by cursor": ("tiedong", "/payments?limit=4&cursor={cursor}"),
    "members of a clerk": ("clerk", "/members"),
    "members of a reviewer": ("tiedong", "/members"),
}


def _resolve(api: Api, user: str, path: str) -> str:
    if "{cursor}" not in path:
        return path
    return path.format(cursor=first_cursor(api, user, path.replace("&cursor={cursor}", "")))


# Filled by the tests below and printed at the end of the session with -s: the counts docs/speed.md quotes.
OBSERVED: dict[str, tuple[int, int]] = {}




@pytest.mark.parametrize("name", LISTS)
def test_list_statements_do_not_grow_with_rows(app: Any, world: World, api: Api, statements: list[str],
                                               name: str) -> None:
    user, path = LISTS[name]
    member_ids = [world.members["zhang"].id, world.members["li"].id]
    beimen = world.orgs["beimen"].id
    add_payments(api, member_ids, 8)
    few = counted(api, statements, user, _resolve(api, user, path))

    more_members = add_members(beimen, BATCH)
    add_payments(api, member_ids + more_members, BATCH)
    many = counted(api, statements, user, _resolve(api, user, path))

    OBSERVED[name] = (len(few), len(many))
    assert len(many) == len(few), _difference(few, many)
    assert len(many) <= MAX_STATEMENTS, many
    counts = [statement for statement in many if "count(" in statement.lower()]
    assert not counts, f"a COUNT in a list request: {counts}"


DETAILS: dict[str, tuple[str, str, str]] = {
    # name → (user, path with {id}, content type); the payment is receipted, so it has the longest trail.
    "payment detail (reviewer)": ("tiedong", "/payments/{id}", "application/json"),
    "payment detail (central)": ("central", "/payments/{id}", "application/json"),
    "receipt.pdf (reviewer)": ("tiedong", "/payments/{id}/receipt.pdf", "application/pdf"),
    "receipt.pdf (member)": ("member", "/payments/{id}/receipt.pdf", "application/pdf"),
}


@pytest.mark.parametrize("name", list(DETAILS))
def test_detail_statements_do_not_grow_with_rows_or_events(app: Any, world: World, api: Api,
                                                           statements: list[str], name: str) -> None:
    user, path, content_type = DETAILS[name]
    zhang = world.members["zhang"].id
    first = add_payments(api, [zhang], 4)["receipted"][0]
    few = counted(api, statements, user, path.format(id=first), content_type)

    add_payments(api, [zhang], BATCH)
    longer = api.record(_member(zhang))["id"]
    advance(api, longer, 4)
    api.act(longer, "return", "central", reason="金额待核")  # back to 吉林: two more events than `first`
    api.act(longer, "forward", "jilin")
    api.act(longer, "confirm", "central")
    many = counted(api, statements, user, path.format(id=longer), content_type)

    OBSERVED[name] = (len(few), len(many))
    assert len(many) == len(few), _difference(few, many)
    assert len(many) <= MAX_STATEMENTS, many


def _difference(few: list[str], many: list[str]) -> str:
    """Which statements the request with more rows sent more often: the repeated query of an N+1."""
    def tally(statements: list[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for statement in statements:
            key = " ".join(statement.split())[:200]
            counts[key] = counts.get(key, 0) + 1
        return counts

    before, after = tally(few), tally(many)
    grown = {key: (before.get(key, 0), n) for key, n in after.items() if n != before.get(key, 0)}
    return f"{len(few)} statements with few rows, {len(many)} with more; changed: {grown}"


@pytest.fixture(scope="module", autouse=True)
def _print_counts() -> Iterator[None]:
    yield
    if OBSERVED:
        print("\nSQL statements per request (few rows → 30 more):")
        width = max(map(len, OBSERVED))
        for name, (few, many) in OBSERVED.items():
            print(f"  {name:<{width}}  {few} → {many}")



def test_reads_run_without_begin_and_commit(app: Any, world: World, api: Api) -> None:
    """A read-only request's statements run outside any transaction (PostgreSQL: autocommit mode, where psycopg
    would send BEGIN and COMMIT as two round trips more; SQLite: no BEGIN, each statement its own implicit
    transaction), while a request that may write keeps one transaction around its work."""
    postgresql = db.engine.dialect.name == "postgresql"
    payment = api.record(_member(world.members["zhang"].id))
    modes: list[tuple[str, bool]] = []

    def note(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        dbapi_connection = conn.connection.dbapi_connection
        outside = dbapi_connection.autocommit if postgresql else not dbapi_connection.in_transaction
        modes.append((statement.split(None, 1)[0].upper(), outside))

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        api.token("tiedong")
        db.session.remove()
        modes.clear()
        assert api.get(f"/payments/{payment['id']}", "tiedong").status_code == 200
        assert api.get("/payments?holder=me", "tiedong").status_code == 200
        reads = list(modes)
        modes.clear()
        assert api.post(f"/payments/{payment['id']}/submit", "clerk").status_code == 200
        writes = list(modes)
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    assert reads and all(outside for _verb, outside in reads), reads
    assert not any(verb in ("BEGIN", "COMMIT") for verb, _ in reads), reads
    assert any(verb in ("INSERT", "UPDATE") for verb, _ in writes), writes
    assert not any(outside for verb, outside in writes if verb != "BEGIN"), writes


def test_recording_sends_few_statements_and_answers_what_a_read_shows(app: Any, world: World, api: Api,
                                                                       statements: list[str]) -> None:
    """Recording with an Idempotency-Key (issue 15): the token, the key, the payment (one INSERT ... SELECT that is
    also the member check, so no SELECT of the member of its own), the chain's lock, the event, the chain's head and
    the stored answer; nothing read back. On PostgreSQL the chain's lock rides with the payment's INSERT, and the
    event, the head and the stored answer go in one statement. Its answer is the detail without events."""
    member_id = world.members["zhang"].id
    api.token("clerk")
    db.session.remove()
    statements.clear()
    body = {"member_id": member_id, "amount": "1000.5", "collected_on": yesterday().isoformat(),
            "method": "cash", "regular_dues_paid": True, "note": "党费"}
    response = api.post("/payments", "clerk", json=body, headers={"Idempotency-Key": "counted"})
    assert response.status_code == 201, response.json
    sent = [" ".join(statement.split()).split(None, 1)[0].upper() for statement in statements]
    if db.engine.dialect.name == "postgresql":
        # the payment's INSERT and the chain's lock-and-reserve as CTEs of one SELECT; the event's INSERT and the
        # stored answer's UPDATE as CTEs of the head's UPDATE: one round trip each
        expected = ["SELECT", "WITH", "WITH", "WITH"]
    else:
        expected = ["SELECT", "INSERT", "INSERT", "INSERT", "INSERT", "UPDATE", "UPDATE"]
    assert [verb for verb in sent if verb not in ("BEGIN", "COMMIT")] == expected, statements
    detail = api.get(f"/payments/{response.json['id']}", "clerk").json
    assert response.json == {key: value for key, value in detail.items() if key != "events"}

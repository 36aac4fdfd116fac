"""SQL statements of the bulk requests (SPEC §9): batch entry, a transfer and a transfer's confirmation send the
same statements for 3 payments and for 300; for more than one page of the driver's batching (SQLAlchemy's
insertmanyvalues, 1000 rows a statement) only their executemany INSERTs are sent again, once per page.

Statements are counted as in test_query_counts.py: a ``before_cursor_execute`` listener on the engine sees every
statement, a page of an executemany INSERT included; logging in happens before counting starts."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest
from conftest import Api, World
from test_query_counts import statements  # noqa: F401 - the fixture

from duesflow.extensions import db
from duesflow.timeutil import beijing_today

PAGE = 1000  # insertmanyvalues_page_size, SQLAlchemy's default
MAX_STATEMENTS = 30


def counted_post(api: Api, sent: list[str], username: str, path: str, body: Any = None) -> list[str]:
    api.token(username)
    db.session.remove()
    sent.clear()
    response = api.post(path, username, json=body)
    assert response.status_code in (200, 201), response.get_data(as_text=True)[:300]
    api.last = response.json  # type: ignore[attr-defined]
    return list(sent)


def bulk_requests(api: Api, world: World, sent: list[str], count: int) -> dict[str, list[str]]:
    """The statements of batch entry, of a clerk's transfer, of 吉林's transfer into central and of central's
    confirmation of it, for ``count`` payments."""
    rows = [{"member_id": world.zhang_id, "amount": "1000.00",  # type: ignore[attr-defined]
             "collected_on": beijing_today().isoformat(), "method": "cash", "regular_dues_paid": True}] * count
    seen: dict[str, list[str]] = {"batch entry": counted_post(api, sent, "clerk", "/payments/batch", {"rows": rows})}
    ids = api.last["payment_ids"]  # type: ignore[attr-defined]
    assert len(ids) == count
    seen["transfer (clerk)"] = counted_post(api, sent, "clerk", "/transfers",
                                            {"payment_ids": ids, "bank_reference": "A"})
    for reviewer in ("tiedong", "siping"):
        assert api.post("/transfers", reviewer, json={"payment_ids": ids, "bank_reference": "B"}).status_code == 201
    seen["transfer into central"] = counted_post(api, sent, "jilin", "/transfers",
                                                 {"payment_ids": ids, "bank_reference": "C"})
    transfer = api.get("/transfers?direction=in&limit=1", "central").json["items"][0]
    received = api.post(f"/transfers/{transfer['id']}/receive", "central",
                        json={"amount_received": transfer["total"]})
    assert received.status_code == 200
    seen["confirmation"] = counted_post(api, sent, "central", f"/transfers/{transfer['id']}/confirm")
    return seen


@pytest.mark.parametrize("count", [300, 2500])
def test_bulk_statements_grow_only_by_the_drivers_batching(app: Any, world: World, api: Api,
                                                           statements: list[str], count: int) -> None:  # noqa: F811
    world.zhang_id = world.members["zhang"].id  # type: ignore[attr-defined] # before the session is removed
    api.record(world.members["zhang"])  # the audit chain's head row exists from here on, as in any database
    few = bulk_requests(api, world, statements, 3)
    db.session.remove()
    many = bulk_requests(api, world, statements, count)

    for name in few:
        before, after = Counter(_shape(s) for s in few[name]), Counter(_shape(s) for s in many[name])
        grown = {shape: (before[shape], n) for shape, n in after.items() if n != before[shape]}
        assert set(before) == set(after), (name, grown)
        pages = math.ceil(count / PAGE)
        assert all(shape.startswith("INSERT") and n - before[shape] <= pages - 1 for shape, (_, n) in
                   ((shape, (before[shape], after[shape])) for shape in grown)), (name, grown)
        assert len(few[name]) <= MAX_STATEMENTS, (name, few[name])


def _shape(statement: str) -> str:
    """A statement without its parameter list (an IN list or a VALUES list is longer with more rows)."""
    words = " ".join(statement.split())
    for cut in (" VALUES ", " IN (", " IN (__"):
        words = words.split(cut)[0]
    return words[:160]

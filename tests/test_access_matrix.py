"""The object-level access matrix (SPEC §2): every route of ``app.url_map`` × every role × a user inside and
outside the object's subtree (and a member who is not the owner), answered exactly as the table says.

How to read a row: ``method, rule, variant, object, then one column per role``. A role column holds one
expectation, or ``inside/outside`` when they differ: for ``clerk`` and ``reviewer`` the user inside the
object's subtree (北门 clerk, 铁东 reviewer) and one outside it (东城 clerk, 北京 reviewer); for ``member`` the
member who owns the object and one of the same org who does not. ``reviewer_up`` (吉林, inside but not holding
the payment) answers like the inside reviewer unless the row says otherwise.

Expectations: a status (``404``), ``2xx`` / ``3xx`` (a success; for pages ``3xx`` is a redirect elsewhere than
the login page), ``login`` (a page redirecting to /login). SPEC §2: unauthenticated 401 → not visible or
unknown 404 → the role can never 403 → not held here or wrong state 409 → body 400/422. A role that can never
use a whole endpoint (admin on payments, a member on the register) gets 403 without the object being looked up,
which leaks nothing.

A route that is in ``app.url_map`` but not in the table fails ``test_every_route_is_in_the_matrix``: add it.
Every row runs once per actor on a fresh object, so a request that wrongly succeeds cannot spoil the next one.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from conftest import PASSWORD, PATH_TO_CENTRAL, World, make_member, make_user
from flask import Flask
from flask.testing import FlaskClient

from duesflow.extensions import db
from duesflow.models import Member, Payment
from duesflow.services.payments import PaymentInput, act, record_payment
from duesflow.services.remittances import record_direct_remittance
from duesflow.services.transfers import TransferInput, create_transfer, receive_transfer
from duesflow.timeutil import beijing_today
from duesflow.workflow import Action

# actor -> username in conftest's world (None: no login)
ACTORS: dict[str, str | None] = {
    "anonymous": None,
    "admin": "admin",
    "clerk": "clerk",                      # 北门, the grassroots org of every object
    "clerk_outside": "clerk_dongcheng",    # 东城, under 北京
    "reviewer": "tiedong",                 # 铁东, the first level above 北门
    "reviewer_up": "jilin",                # 吉林, inside, above 铁东
    "reviewer_outside": "beijing",         # 北京
    "central": "central",
    "member": "member",                    # 张建国, owner of every payment
    "member_other": "member_li",           # 李秀兰, same org, owns nothing here
}
# Who finds a 北门 object in a list (GET /payments, GET /members).
LISTS_IT = {"clerk", "reviewer", "reviewer_up", "central", "member"}

# Objects a row acts on, made fresh for every actor.
NONE, RECORDED, IN_REVIEW, AT_CENTRAL, RECEIPTED = "none", "recorded", "in_review", "at_central", "receipted"
REJECTED = "rejected"  # rejected by 铁东
MEMBER, NEW_MEMBER, ORG, TIEDONG, ACCOUNT = "member", "new_member", "org", "tiedong", "account"
TRANSFER, REMITTANCE = "transfer", "remittance"  # a batch 北门 → 铁东 of one payment; a refused direct remittance
CENTRAL_TRANSFER = "central_transfer"  # a batch 吉林 → central of one 北门 payment, whose money central received


@dataclass(frozen=True)
class Row:
    method: str
    rule: str
    variant: str
    obj: str
    expected: dict[str, str]
    body: Callable[[Ctx], dict[str, Any]] | dict[str, Any] | None = None
    query: Callable[[Ctx], dict[str, Any]] | dict[str, Any] | None = None
    lists: bool = False  # the answer's "items" hold the object exactly for LISTS_IT

    @property
    def id(self) -> str:
        return f"{self.method} {self.rule}" + (f" [{self.variant}]" if self.variant else "")

    @property
    def page(self) -> bool:
        return not (self.rule.startswith("/api/") or self.rule in ("/healthz", "/metrics"))


def _pair(value: str | int) -> tuple[str, str]:
    inside, _, outside = str(value).partition("/")
    return inside, outside or inside


def row(method: str, rule: str, variant: str, obj: str, anonymous: str | int, admin: str | int,
        clerk: str | int, reviewer: str | int, central: str | int, member: str | int, *,
        reviewer_up: str | int | None = None, body: Any = None, query: Any = None, lists: bool = False) -> Row:
    clerk_in, clerk_out = _pair(clerk)
    reviewer_in, reviewer_out = _pair(reviewer)
    member_own, member_other = _pair(member)
    expected = {
        "anonymous": str(anonymous), "admin": str(admin), "clerk": clerk_in, "clerk_outside": clerk_out,
        "reviewer": reviewer_in, "reviewer_up": str(reviewer_up) if reviewer_up is not None else reviewer_in,
        "reviewer_outside": reviewer_out, "central": str(central), "member": member_own,
        "member_other": member_other,
    }
    return Row(method, rule, variant, obj, expected, body, query, lists)


@dataclass
class Ctx:
    """What a body or query may refer to: the world, the actor, the object, and a unique suffix."""

    world: World
    actor: str
    username: str | None
    obj: Any
    unique: str


_counter = itertools.count(1)
REASON = {"reason": "核对后处理"}
PAYMENT_BODY = lambda c: {"member_id": c.world.members["zhang"].id, "amount": "1000.00",  # noqa: E731
                          "collected_on": beijing_today().isoformat(), "method": "cash", "regular_dues_paid": True}
PAYMENT_FORM = lambda c: {**PAYMENT_BODY(c), "regular_dues_paid": "on"}  # noqa: E731
ACCOUNT_BODY = lambda c: {"username": f"acct{c.unique}", "password": PASSWORD, "role": "member",  # noqa: E731
                          "member_id": c.obj}
LOGIN_BODY = lambda c: {"username": c.username or "clerk", "password": PASSWORD}  # noqa: E731
NEW_PASSWORD = {"old_password": PASSWORD, "new_password": "another-long-password"}
REPORT_QUERY = lambda c: {"year": beijing_today().year, "group_by": "state"}  # noqa: E731
VERIFY_QUERY = lambda c: {"code": c.obj[2]}  # noqa: E731
TODAY = {"on": beijing_today().isoformat()}
REFUND_BODY = {"refunded_on": TODAY["on"], "method": "cash"}
DELIVERY_BODY = {"delivered_on": TODAY["on"], "signed_by": "张建国"}
TRANSFER_BODY = lambda c: {"payment_ids": [c.obj], "bank_reference": f"BANK{c.unique}"}  # noqa: E731
TRANSFER_FORM = lambda c: {"payment_id": str(c.obj), "bank_reference": f"BANK{c.unique}"}  # noqa: E731
RECEIVE_BODY = {"amount_received": "1000.00"}
BATCH_BODY = lambda c: {"rows": [PAYMENT_BODY(c)]}  # noqa: E731

# ---- the API -----------------------------------------------------------------------------------------
# method, rule, variant, object,      anonymous, admin, clerk, reviewer, central, member
API = "/api/v1"
API_ROWS = [
    row("POST", f"{API}/auth/token", "", NONE, "2xx", "2xx", "2xx", "2xx", "2xx", "2xx", body=LOGIN_BODY),
    row("POST", f"{API}/auth/logout", "", NONE, 401, "2xx", "2xx", "2xx", "2xx", "2xx"),
    row("POST", f"{API}/auth/password", "", NONE, 401, "2xx", "2xx", "2xx", "2xx", "2xx", body=NEW_PASSWORD),
    row("GET", f"{API}/orgs", "", NONE, 401, "2xx", "2xx", "2xx", "2xx", "2xx"),
    row("POST", f"{API}/orgs", "", NONE, 401, "2xx", 403, 403, 403, 403,
        body=lambda c: {"name": f"新街道{c.unique}", "kind": "grassroots", "parent_id": c.world.orgs["tiedong"].id}),
    row("PATCH", f"{API}/orgs/<int:org_id>", "", ORG, 401, "2xx", "403/404", "403/404", 403, 403,
        body=lambda c: {"name": f"北门街道党工委{c.unique}"}),
    row("GET", f"{API}/users", "", NONE, 401, "2xx", "2xx", 403, 403, 403),
    row("POST", f"{API}/users", "", NEW_MEMBER, 401, "2xx", "2xx/422", 403, 403, 403, body=ACCOUNT_BODY),
    row("PATCH", f"{API}/users/<int:user_id>", "", ACCOUNT, 401, "2xx", "403/404", 404, 404, 404,
        body={"active": False}),
    row("GET", f"{API}/members", "", MEMBER, 401, 403, "2xx", "2xx", "2xx", "2xx", lists=True),
    row("POST", f"{API}/members", "", NONE, 401, 403, "2xx", 403, 403, 403, body={"name": "新党员"}),
    row("GET", f"{API}/members/<int:member_id>", "", MEMBER, 401, 403, "2xx/404", "2xx/404", "2xx", "2xx/404"),
    row("PATCH", f"{API}/members/<int:member_id>", "", NEW_MEMBER, 401, 403, "2xx/404", "403/404", 403, "403/404",
        body={"work_unit": "四平市铁东区"}),
    row("POST", f"{API}/members/<int:member_id>/transfer", "", NEW_MEMBER, 401, 403, "2xx/404", "403/404", 403,
        "403/404", body=lambda c: {"to_org_id": c.world.orgs["jiefang"].id}),
    row("POST", f"{API}/payments", "", NONE, 401, 403, "2xx/422", 403, 403, 403, body=PAYMENT_BODY),
    row("GET", f"{API}/payments", "", RECORDED, 401, 403, "2xx", "2xx", "2xx", "2xx", lists=True),
    row("GET", f"{API}/payments/<int:payment_id>", "", RECORDED, 401, 403, "2xx/404", "2xx/404", "2xx", "2xx/404"),
    row("PATCH", f"{API}/payments/<int:payment_id>", "", RECORDED, 401, 403, "2xx/404", "403/404", 403, "403/404",
        body={"amount": "1200.00"}),
    row("POST", f"{API}/payments/<int:payment_id>/<action>", "submit", RECORDED,
        401, 403, "2xx/404", "403/404", 403, "403/404"),
    row("POST", f"{API}/payments/<int:payment_id>/<action>", "withdraw", RECORDED,
        401, 403, "2xx/404", "403/404", 403, "403/404", body=REASON),
    row("POST", f"{API}/payments/<int:payment_id>/<action>", "forward", IN_REVIEW,
        401, 403, "403/404", "2xx/404", 403, "403/404", reviewer_up=409),
    row("POST", f"{API}/payments/<int:payment_id>/<action>", "return", IN_REVIEW,
        401, 403, "403/404", "2xx/404", 409, "403/404", reviewer_up=409, body=REASON),
    row("POST", f"{API}/payments/<int:payment_id>/<action>", "reject", IN_REVIEW,
        401, 403, "403/404", "2xx/404", 409, "403/404", reviewer_up=409, body=REASON),
    row("POST", f"{API}/payments/<int:payment_id>/<action>", "confirm", AT_CENTRAL,
        401, 403, "403/404", "403/404", "2xx", "403/404"),
    row("POST", f"{API}/payments/<int:payment_id>/<action>", "explode", RECORDED, 401, 403, 404, 404, 404, 404),
    row("GET", f"{API}/payments/<int:payment_id>/receipt.pdf", "", RECEIPTED,
        401, 403, "2xx/404", "2xx/404", "2xx", "2xx/404"),
    row("POST", f"{API}/payments/<int:payment_id>/receipt/reissue", "", RECEIPTED,
        401, 403, "403/404", "403/404", "2xx", "403/404", body=REASON),
    row("POST", f"{API}/payments/<int:payment_id>/receipt/void", "", RECEIPTED,
        401, 403, "403/404", "403/404", "2xx", "403/404", body=REASON),
    row("GET", f"{API}/payments/<int:payment_id>/slip.pdf", "", RECORDED, 401, 403, "2xx/404", "403/404", 403,
        "403/404"),
    row("GET", f"{API}/receipts/<number>/verify", "", RECEIPTED, "2xx", "2xx", "2xx", "2xx", "2xx", "2xx",
        query=VERIFY_QUERY),
    row("GET", f"{API}/receipts/signing-certificate", "", NONE, "2xx", "2xx", "2xx", "2xx", "2xx", "2xx"),
    # a JSON body is no PDF: 422 for everyone, logged in or not (tests/test_receipt_signing.py checks real ones)
    row("POST", f"{API}/receipts/verify-document", "", NONE, 422, 422, 422, 422, 422, 422),
    row("GET", f"{API}/openapi.json", "", NONE, "2xx", "2xx", "2xx", "2xx", "2xx", "2xx"),
    row("GET", "/healthz", "", NONE, "2xx", "2xx", "2xx", "2xx", "2xx", "2xx"),
    # by address, not by account (DUESFLOW_METRICS_ALLOW, loopback here; tests/test_observability.py refuses others)
    row("GET", "/metrics", "", NONE, "2xx", "2xx", "2xx", "2xx", "2xx", "2xx"),
    row("POST", f"{API}/direct-remittances", "", NONE, 401, 403, 403, 403, "2xx", 403,
        body={"remitter_name": "赵六", "amount": "500", "received_on": beijing_today().isoformat()}),
    row("GET", f"{API}/direct-remittances", "", NONE, 401, 403, 403, 403, "2xx", 403),
    row("GET", f"{API}/access-log", "", NONE, 401, 403, 403, 403, "2xx", 403),
    row("GET", f"{API}/security/login-attacks", "", NONE, 401, "2xx", 403, 403, 403, 403),
    row("GET", f"{API}/security/verification-failures", "", NONE, 401, 403, 403, 403, "2xx", 403),
    row("GET", f"{API}/dues/regular", "", NONE, 401, 403, "2xx", "2xx", "2xx", 403, query={"category": "student"}),
    row("GET", f"{API}/reports/summary", "", NONE, 401, 403, "2xx", "2xx", "2xx", 403, query=REPORT_QUERY),
    # ---- operations (SPEC §9)
    row("POST", f"{API}/payments/<int:payment_id>/refund", "", REJECTED, 401, 403, "2xx/404", "403/404", 403,
        "403/404", body=REFUND_BODY),
    row("POST", f"{API}/payments/<int:payment_id>/receipt/delivered", "", RECEIPTED, 401, 403, "2xx/404", "403/404",
        403, "403/404", body=DELIVERY_BODY),
    row("GET", f"{API}/orgs/<int:org_id>/collection-register.pdf", "", ORG, 401, 403, "2xx/404", "2xx/404", "2xx",
        403),
    row("GET", f"{API}/reports/undelivered-receipts", "", NONE, 401, 403, "2xx", "2xx", "2xx", 403),
    row("GET", f"{API}/reports/owed", "", NONE, 401, 403, "2xx", "2xx", "2xx", 403),
    row("POST", f"{API}/direct-remittances/<int:remittance_id>/return", "", REMITTANCE, 401, 403, 403, 403, "2xx",
        403, body={"returned_on": TODAY["on"]}),
    row("POST", f"{API}/transfers", "", RECORDED, 401, 403, "2xx/409", 409, 403, 403, body=TRANSFER_BODY),
    row("GET", f"{API}/transfers", "", TRANSFER, 401, 403, "2xx", "2xx", "2xx", 403, lists=True),
    row("GET", f"{API}/transfers/<int:transfer_id>", "", TRANSFER, 401, 403, "2xx/404", "2xx/404", "2xx", 403),
    row("POST", f"{API}/transfers/<int:transfer_id>/receive", "", TRANSFER, 401, 403, "403/404", "2xx/404", 409,
        403, reviewer_up=409, body=RECEIVE_BODY),
    row("GET", f"{API}/transfers/<int:transfer_id>/list.pdf", "", TRANSFER, 401, 403, "2xx/404", "2xx/404", "2xx",
        403),
    row("POST", f"{API}/transfers/<int:transfer_id>/confirm", "", CENTRAL_TRANSFER, 401, 403, 404, 404, "2xx", 403,
        reviewer_up=403),
    row("POST", f"{API}/payments/batch", "", NONE, 401, 403, "2xx/422", 403, 403, 403, body=BATCH_BODY),
]

# ---- the pages ---------------------------------------------------------------------------------------
# method, rule, variant, object,      anonymous, admin, clerk, reviewer, central, member
PAGE_ROWS = [
    row("GET", "/", "", NONE, "login", "2xx", "2xx", "2xx", "2xx", "2xx"),
    row("GET", "/login", "", NONE, "2xx", "2xx", "2xx", "2xx", "2xx", "2xx"),
    row("POST", "/login", "", NONE, "3xx", "3xx", "3xx", "3xx", "3xx", "3xx", body=LOGIN_BODY),
    row("POST", "/logout", "", NONE, "login", "login", "login", "login", "login", "login"),
    row("GET", "/password", "", NONE, "login", "2xx", "2xx", "2xx", "2xx", "2xx"),
    row("POST", "/password", "", NONE, "login", "3xx", "3xx", "3xx", "3xx", "3xx",
        body={**NEW_PASSWORD, "new_password_again": NEW_PASSWORD["new_password"]}),
    row("GET", "/static/<path:filename>", "style.css", NONE, "2xx", "2xx", "2xx", "2xx", "2xx", "2xx"),
    row("GET", "/verify/<number>", "", RECEIPTED, "2xx", "2xx", "2xx", "2xx", "2xx", "2xx", query=VERIFY_QUERY),
    row("GET", "/verify", "", NONE, "2xx", "2xx", "2xx", "2xx", "2xx", "2xx"),
    row("POST", "/verify", "", NONE, 422, 422, 422, 422, 422, 422),  # no file uploaded
    row("GET", "/admin/orgs", "", NONE, "login", "2xx", 403, 403, 403, 403),
    row("GET", "/admin/orgs/<int:org_id>", "", ORG, "login", "2xx", 403, 403, 403, 403),
    row("POST", "/admin/orgs/<int:org_id>", "", ORG, "login", "3xx", 403, 403, 403, 403,
        body=lambda c: {"name": f"北门街道党工委{c.unique}"}),
    row("POST", "/admin/orgs/<int:org_id>/children", "", TIEDONG, "login", "3xx", 403, 403, 403, 403,
        body=lambda c: {"child_name": f"新街道{c.unique}", "kind": "grassroots", "parent_id": c.obj}),
    row("GET", "/admin/users", "", NONE, "login", "2xx", 403, 403, 403, 403),
    row("POST", "/admin/users", "", NEW_MEMBER, "login", "3xx", 403, 403, 403, 403, body=ACCOUNT_BODY),
    row("GET", "/admin/users/<int:user_id>", "", ACCOUNT, "login", "2xx", 403, 403, 403, 403),
    row("POST", "/admin/users/<int:user_id>", "", ACCOUNT, "login", "3xx", 403, 403, 403, 403, body={"active": "0"}),
    row("GET", "/direct-remittances", "", NONE, "login", 403, 403, 403, "2xx", 403),
    row("POST", "/direct-remittances", "", NONE, "login", 403, 403, 403, "3xx", 403,
        body={"remitter_name": "赵六", "amount": "500", "received_on": beijing_today().isoformat()}),
    row("GET", "/inbox", "", NONE, "login", 403, "2xx", "2xx", "2xx", 403),
    row("GET", "/members", "", NONE, "login", 403, "2xx", "2xx", "2xx", 403),
    row("POST", "/members", "", NONE, "login", 403, "2xx", "2xx", "2xx", 403, body={"q": "张"}),
    row("GET", "/access-log", "", NONE, "login", 403, 403, 403, "2xx", 403),
    row("GET", "/admin/login-attacks", "", NONE, "login", "2xx", 403, 403, 403, 403),
    row("GET", "/verification-failures", "", NONE, "login", 403, 403, 403, "2xx", 403),
    row("GET", "/members/new", "", NONE, "login", 403, "2xx", 403, 403, 403),
    row("POST", "/members/new", "", NONE, "login", 403, "3xx", 403, 403, 403, body={"name": "新党员"}),
    row("GET", "/members/<int:member_id>", "", MEMBER, "login", 403, "2xx/404", "2xx/404", "2xx", 403),
    row("GET", "/members/<int:member_id>/edit", "", MEMBER, "login", 404, "2xx/404", "403/404", 403, "403/404"),
    row("POST", "/members/<int:member_id>/edit", "", NEW_MEMBER, "login", 404, "3xx/404", "403/404", 403,
        "403/404", body={"work_unit": "四平市铁东区"}),
    row("POST", "/members/<int:member_id>/account", "", NEW_MEMBER, "login", 404, "3xx/404", "403/404", 403,
        "403/404", body=lambda c: {"username": f"acct{c.unique}", "password": PASSWORD}),
    row("POST", "/members/<int:member_id>/transfer", "", NEW_MEMBER, "login", 404, "3xx/404", "403/404", 403,
        "403/404", body=lambda c: {"to_org_id": c.world.orgs["jiefang"].id}),
    row("GET", "/payments", "", NONE, "login", 403, "2xx", "2xx", "2xx", "2xx"),
    row("GET", "/payments/new", "", NONE, "login", 403, "2xx", 403, 403, "2xx"),
    row("POST", "/payments/new", "", NONE, "login", 403, "3xx/422", 403, 403, 403, body=PAYMENT_FORM),
    row("GET", "/payments/<int:payment_id>", "", RECORDED, "login", 404, "2xx/404", "2xx/404", "2xx", "2xx/404"),
    row("GET", "/payments/<int:payment_id>/correct", "", RECORDED, "login", 404, "2xx/404", "403/404", 403,
        "403/404"),
    row("POST", "/payments/<int:payment_id>/correct", "", RECORDED, "login", 404, "3xx/404", "403/404", 403,
        "403/404", body={"amount": "1200.00", "collected_on": beijing_today().isoformat(), "method": "cash"}),
    row("POST", "/payments/<int:payment_id>/actions/<action>", "submit", RECORDED,
        "login", 404, "3xx/404", "403/404", 403, "403/404"),
    row("POST", "/payments/<int:payment_id>/actions/<action>", "withdraw", RECORDED,
        "login", 404, "3xx/404", "403/404", 403, "403/404", body=REASON),
    row("POST", "/payments/<int:payment_id>/actions/<action>", "forward", IN_REVIEW,
        "login", 404, "403/404", "3xx/404", 403, "403/404", reviewer_up=409),
    row("POST", "/payments/<int:payment_id>/actions/<action>", "return", IN_REVIEW,
        "login", 404, "403/404", "3xx/404", 409, "403/404", reviewer_up=409, body=REASON),
    row("POST", "/payments/<int:payment_id>/actions/<action>", "reject", IN_REVIEW,
        "login", 404, "403/404", "3xx/404", 409, "403/404", reviewer_up=409, body=REASON),
    row("POST", "/payments/<int:payment_id>/actions/<action>", "confirm", AT_CENTRAL,
        "login", 404, "403/404", "403/404", "3xx", "403/404"),
    row("POST", "/payments/<int:payment_id>/actions/<action>", "reissue", RECEIPTED,
        "login", 404, "403/404", "403/404", "3xx", "403/404", body=REASON),
    row("POST", "/payments/<int:payment_id>/actions/<action>", "void", RECEIPTED,
        "login", 404, "403/404", "403/404", "3xx", "403/404", body=REASON),
    row("POST", "/payments/<int:payment_id>/actions/<action>", "explode", RECORDED,
        "login", 404, 404, 404, 404, 404),
    row("GET", "/payments/<int:payment_id>/receipt.pdf", "", RECEIPTED,
        "login", 404, "2xx/404", "2xx/404", "2xx", "2xx/404"),
    row("POST", "/payments/batch", "forward", IN_REVIEW, "login", 403, 404, "3xx/404", 404, 403, reviewer_up=409,
        body=lambda c: {"action": "forward", "payment_id": str(c.obj)}),
    row("GET", "/receipts", "", NONE, "login", 403, 403, 403, "2xx", 403),
    row("GET", "/reports", "", NONE, "login", 403, "2xx", "2xx", "2xx", 403),
    row("GET", "/reports/summary.<any(csv, xlsx):file_format>", "csv", NONE, "login", 403, "2xx", "2xx", "2xx",
        403),
    # ---- operations (SPEC §9)
    row("POST", "/payments/<int:payment_id>/receipt/delivered", "", RECEIPTED, "login", 404, "3xx/404", "403/404",
        403, "403/404", body=DELIVERY_BODY),
    row("GET", "/orgs/<int:org_id>/collection-register.pdf", "", ORG, "login", 403, "2xx/404", "2xx/404", "2xx",
        403),
    row("GET", "/deliveries", "", NONE, "login", 403, "2xx", "2xx", "2xx", 403),
    row("GET", "/owed", "", NONE, "login", 403, "2xx", "2xx", "2xx", 403),
    row("POST", "/direct-remittances/<int:remittance_id>/return", "", REMITTANCE, "login", 403, 403, 403, "3xx",
        403, body={"returned_on": TODAY["on"]}),
    row("GET", "/transfers", "", NONE, "login", 403, "2xx", "2xx", "2xx", 403),
    row("POST", "/transfers", "", RECORDED, "login", 403, "3xx/409", 409, 403, 403, body=TRANSFER_FORM),
    row("GET", "/transfers/<int:transfer_id>", "", TRANSFER, "login", 403, "2xx/404", "2xx/404", "2xx", 403),
    row("POST", "/transfers/<int:transfer_id>/receive", "", TRANSFER, "login", 403, "403/404", "3xx/404", 409, 403,
        reviewer_up=409, body=RECEIVE_BODY),
    row("GET", "/transfers/<int:transfer_id>/list.pdf", "", TRANSFER, "login", 403, "2xx/404", "2xx/404", "2xx",
        403),
    row("POST", "/transfers/<int:transfer_id>/confirm", "", CENTRAL_TRANSFER, "login", 403, 404, 404, "3xx", 403,
        reviewer_up=403),
    row("GET", "/payments/import-template.xlsx", "", NONE, "login", 403, "2xx", 403, 403, 403),
    row("POST", "/payments/import", "", NONE, "login", 403, 422, 403, 403, 403),  # no file: 422 for any clerk
]

ROWS = API_ROWS + PAGE_ROWS


# ---- objects -------------------------------------------------------------------------------------------

_STEPS = {
    RECORDED: [],
    IN_REVIEW: PATH_TO_CENTRAL[:1],
    AT_CENTRAL: PATH_TO_CENTRAL,
    RECEIPTED: [*PATH_TO_CENTRAL, ("confirm", "central")],
    REJECTED: [*PATH_TO_CENTRAL[:1], ("reject", "tiedong")],
}


def make_payment(world: World, state: str) -> Payment:
    """A payment of 张建国 (北门) brought to ``state`` through the services."""
    data = PaymentInput(member_id=world.members["zhang"].id, amount=Decimal("1000.00"),
                        collected_on=beijing_today(), method="cash", regular_dues_paid=True)
    payment = record_payment(world.users["clerk"], data)
    for action, username in _STEPS[state]:
        act(payment, Action(action), world.users[username], reason="核对后处理")
    return payment


def make_object(world: World, kind: str, actor: str, unique: str) -> Any:
    """The id (or, for a receipt, number and code) of a fresh object for one actor's request."""
    if kind in _STEPS:
        payment = make_payment(world, kind)
        if kind == RECEIPTED and payment.receipt is not None:
            return payment.id, payment.receipt.number, payment.receipt.verification_code
        return payment.id
    if kind == MEMBER or (kind == NEW_MEMBER and actor.startswith("member")):
        return world.members["zhang"].id  # the owner's own record (and not the other member's)
    if kind == NEW_MEMBER:
        return make_member(world.orgs["beimen"], f"新党员{unique}").id
    if kind == ORG:
        return world.orgs["beimen"].id
    if kind == TIEDONG:
        return world.orgs["tiedong"].id
    if kind == ACCOUNT:
        member = make_member(world.orgs["beimen"], f"党员{unique}")
        return make_user(f"account{unique}", "member", member=member).id
    if kind == TRANSFER:
        payment = make_payment(world, RECORDED)
        return create_transfer(world.users["clerk"], TransferInput([payment.id], f"BANK{unique}")).id
    if kind == CENTRAL_TRANSFER:
        payment = make_payment(world, RECORDED)
        for action, username in PATH_TO_CENTRAL[:3]:
            act(payment, Action(action), world.users[username])
        transfer = create_transfer(world.users["jilin"], TransferInput([payment.id], f"BANK{unique}"))
        return receive_transfer(world.users["central"], transfer, transfer.total).id
    if kind == REMITTANCE:
        return record_direct_remittance(world.users["central"], {
            "remitter_name": "赵六", "amount": Decimal("500"), "received_on": beijing_today()}).id
    return None


# ---- requests ------------------------------------------------------------------------------------------

_PARAM = re.compile(r"<(?:[a-z]+(?:\([^)]*\))?:)?(\w+)>")


def concrete_path(rule: str, variant: str, obj: Any) -> str:
    object_id = obj[0] if isinstance(obj, tuple) else obj

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.endswith("_id"):
            return str(object_id)
        if name == "number":
            return obj[1]
        return variant  # <action>, <filename>, <file_format>

    return _PARAM.sub(value, rule)


def _resolve(spec: Any, ctx: Ctx) -> dict[str, Any] | None:
    return spec(ctx) if callable(spec) else spec


@dataclass
class Caller:
    """One actor's client: a bearer token for the API, a logged-in session (with its CSRF token) for pages."""

    app: Flask
    username: str | None
    client: FlaskClient = field(init=False)
    token: str | None = None

    def __post_init__(self) -> None:
        self.client = self.app.test_client()

    def api_headers(self) -> dict[str, str]:
        if self.username is None:
            return {}
        if self.token is None:
            answer = self.client.post("/api/v1/auth/token", json={"username": self.username, "password": PASSWORD})
            assert answer.status_code == 200, answer.json
            self.token = answer.json["token"]
        return {"Authorization": f"Bearer {self.token}"}

    def open_session(self) -> None:
        self.client.get("/login")
        if self.username is not None:
            answer = self.client.post("/login", data={"username": self.username, "password": PASSWORD,
                                                      "csrf_token": self.csrf()})
            assert answer.status_code == 302, answer.status_code

    def csrf(self) -> str:
        with self.client.session_transaction() as session:
            return session.get("csrf_token", "")


def send(caller: Caller, entry: Row, ctx: Ctx) -> Any:
    path = concrete_path(entry.rule, entry.variant, ctx.obj)
    body, query = _resolve(entry.body, ctx), _resolve(entry.query, ctx)
    if entry.page:
        caller.open_session()
        data = {"csrf_token": caller.csrf(), **(body or {})} if entry.method == "POST" else None
        return caller.client.open(path, method=entry.method, data=data, query_string=query)
    return caller.client.open(path, method=entry.method, json=body, query_string=query,
                              headers=caller.api_headers())


def outcome(response: Any) -> str:
    """What the table would call this answer."""
    status = response.status_code
    if 300 <= status < 400:
        return "login" if response.headers.get("Location", "").endswith("/login") else "3xx"
    if 200 <= status < 300:
        return "2xx"
    return str(status)


def listed(response: Any, obj: Any) -> bool:
    return obj in {item["id"] for item in response.json["items"]}


# ---- the tests -----------------------------------------------------------------------------------------


def _route_keys(app: Flask) -> set[tuple[str, str]]:
    return {(method, rule.rule) for rule in app.url_map.iter_rules()
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}}


def test_every_route_is_in_the_matrix(app: Flask):
    in_table = {(entry.method, entry.rule) for entry in ROWS}

    missing = sorted(_route_keys(app) - in_table)

    assert not missing, "routes without a row in tests/test_access_matrix.py: " + ", ".join(
        f"{method} {rule}" for method, rule in missing)


def test_every_row_names_a_route_that_exists(app: Flask):
    unknown = sorted({(entry.method, entry.rule) for entry in ROWS} - _route_keys(app))

    assert not unknown, f"rows for routes that do not exist: {unknown}"


def test_rows_are_unique_and_complete():
    ids = [entry.id for entry in ROWS]
    assert len(ids) == len(set(ids))
    for entry in ROWS:
        assert set(entry.expected) == set(ACTORS), entry.id
        assert all(value in {"2xx", "3xx", "login"} or value.isdigit() for value in entry.expected.values()), entry.id


@pytest.mark.parametrize("entry", ROWS, ids=[entry.id for entry in ROWS])
def test_access(app: Flask, world: World, entry: Row):
    answers: dict[str, str] = {}
    wrong_listing: list[str] = []
    for actor, username in ACTORS.items():
        unique = str(next(_counter))
        obj = make_object(world, entry.obj, actor, unique)
        db.session.commit()
        ctx = Ctx(world, actor, username, obj, unique)
        response = send(Caller(app, username), entry, ctx)
        db.session.rollback()
        answers[actor] = outcome(response)
        if entry.lists and answers[actor] == "2xx" and listed(response, obj) != (actor in LISTS_IT):
            wrong_listing.append(actor)

    mismatches = {actor: f"expected {entry.expected[actor]}, got {got}"
                  for actor, got in answers.items() if got != entry.expected[actor]}
    assert not mismatches, f"{entry.id}: {mismatches}"
    assert not wrong_listing, f"{entry.id}: the object is wrongly listed (or not) for {wrong_listing}"


def test_an_unknown_object_is_answered_like_an_invisible_one(api, world):
    """404 for an id that names nothing, for every role that would see a real one: existence does not leak."""
    hidden = make_payment(world, RECORDED)
    member: Member = world.members["wang"]  # 东城, outside 北门's subtree
    db.session.commit()
    unknown = hidden.id + 1000
    for username in ("clerk_dongcheng", "beijing", "member_li"):
        assert api.get(f"/payments/{hidden.id}", username).status_code == 404
        assert api.get(f"/payments/{unknown}", username).json == api.get(f"/payments/{hidden.id}", username).json
    assert api.get(f"/members/{member.id}", "clerk").json == api.get(f"/members/{member.id + 1000}", "clerk").json

"""The summary report (SPEC §9): payments collected in a year over the caller's subtree, counted and summed in
SQL by forwarding channel, by the caller's direct sub-orgs, by state or by month.

Amounts are summed as whole fen (an integer per row, exact on both engines): SQLite has no decimal type and
would add the stored values as floating point; PostgreSQL's numeric would be exact either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Select, and_, cast, extract, func, select
from sqlalchemy.orm import aliased

from .. import permissions
from ..errors import Forbidden
from ..extensions import db
from ..models import Org, Payment, User
from ..workflow import STATE_NAMES, OrgKind, Role, State

REPORT_ROLES = (Role.CLERK, Role.REVIEWER, Role.CENTRAL)

# What each grouping is called in headings and file headers.
GROUPING_NAMES = {"channel": "转交渠道", "org": "下级组织", "state": "状态", "month": "月份"}


@dataclass(frozen=True)
class SummaryRow:
    key: str
    name: str
    count: int
    amount: Decimal


@dataclass(frozen=True)
class Summary:
    year: int
    group_by: str
    state: str | None
    rows: list[SummaryRow]

    @property
    def count(self) -> int:
        return sum(row.count for row in self.rows)

    @property
    def amount(self) -> Decimal:
        return sum((row.amount for row in self.rows), Decimal("0.00"))


def _fen_sum():  # noqa: ANN202 - a SQL expression
    """SUM of the amounts as integer fen: each stored amount times 100, rounded, is exact."""
    return func.coalesce(func.sum(cast(func.round(Payment.amount * 100), BigInteger)), 0)


def _yuan(fen: int | Decimal) -> Decimal:
    """Whole fen (an int, or a Decimal from PostgreSQL's SUM over bigint) as yuan with two decimals."""
    return Decimal(int(fen)).scaleb(-2)


def summarize(user: User, year: int, group_by: str, state: str | None = None) -> Summary:
    """The summary of the payments ``user`` can see that were collected in ``year`` (Beijing dates), grouped by
    ``group_by`` (channel, org, state or month), optionally only those in ``state``. 403 for admins and members."""
    require_report_role(user)
    counted = (func.count(Payment.id), _fen_sum())
    conditions = [permissions.payment_visibility(user), Payment.collected_on >= date(year, 1, 1),
                  Payment.collected_on <= date(year, 12, 31)]
    if state is not None:
        conditions.append(Payment.state == state)
    if group_by in ("channel", "org"):
        per_grassroots = (select(Payment.grassroots_org_id.label("org_id"), counted[0].label("count"),
                                 counted[1].label("fen"))
                          .where(*conditions).group_by(Payment.grassroots_org_id).subquery())
        rows = [SummaryRow(str(org_id), name, int(count), _yuan(fen))
                for org_id, name, count, fen in db.session.execute(_by_bucket_org(user, group_by, per_grassroots))]
    elif group_by == "state":
        query = select(Payment.state, *counted).where(*conditions).group_by(Payment.state)
        order = list(State)
        found = sorted(db.session.execute(query), key=lambda row: order.index(State(row[0])))
        rows = [SummaryRow(value, STATE_NAMES.get(value, value), count, _yuan(fen)) for value, count, fen in found]
    elif group_by == "month":
        month = extract("month", Payment.collected_on)
        query = select(month, *counted).where(*conditions).group_by(month).order_by(month)
        rows = [SummaryRow(f"{year}-{int(number):02d}", f"{year}年{int(number)}月", count, _yuan(fen))
                for number, count, fen in db.session.execute(query)]
    else:
        raise ValueError(f"unknown grouping {group_by!r}")
    return Summary(year, group_by, state, rows)


def _by_bucket_org(user: User, group_by: str, per_grassroots: Any) -> Select[Any]:
    """The counts per grassroots org (``per_grassroots``: org_id, count, fen) added up by the org above it that
    they are counted under. Payments are counted per grassroots org first, so that the tree is matched for a
    few thousand orgs rather than for every payment of the year.

    ``channel``: the org right under central on the grassroots org's ancestry (the second id of its tree_path).
    ``org``: the caller's direct sub-orgs; a grassroots clerk's own org is its only bucket.
    """
    grassroots, bucket = aliased(Org), aliased(Org)
    if group_by == "channel":
        which = bucket.kind == OrgKind.CHANNEL.value
    elif user.org is not None and user.org.kind == OrgKind.GRASSROOTS.value:
        which = bucket.id == user.org_id
    else:
        which = bucket.parent_id == user.org_id
    # tree_path is "/1/7/42/": the bucket is the one whose path the grassroots org's path starts with.
    return (
        select(bucket.id, bucket.name, func.sum(per_grassroots.c.count), func.sum(per_grassroots.c.fen))
        .select_from(per_grassroots)
        .join(grassroots, grassroots.id == per_grassroots.c.org_id)
        .join(bucket, and_(which, grassroots.tree_path.startswith(bucket.tree_path)))
        .group_by(bucket.id, bucket.name)
        .order_by(bucket.id)
    )


def require_report_role(user: User) -> None:
    """403 unless ``user``'s role may read reports (clerk, reviewer, central)."""
    if user.role not in REPORT_ROLES:
        raise Forbidden("只有基层党委经办人、组织部门审核人和中央组织部工作人员可以查看统计报表。")

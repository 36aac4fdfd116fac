"""What the metrics read from the database at scrape time (SPEC §8): each a statement whose cost does not grow
with the history of the service, measured at a million payments (docs/operations.md, "Metrics")."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from ..extensions import db
from ..models import AuditCheckpoint, AuditHead, Notification
from ..timeutil import utcnow
from .audit import PAYMENT_COUNTS
from .throttle import usernames_under_attack

__all__ = ["OutboxBacklog", "checkpoint_age_seconds", "outbox_backlog", "payments_by_state", "usernames_under_attack"]

# The outbox rows still to be sent (sent and kept ones are history, and most of the table).
BACKLOG_STATES = ("pending", "sending", "failed")


_SUMMED_COUNTS = select(*(func.coalesce(func.sum(column), 0) for column in PAYMENT_COUNTS.values())).select_from(
    AuditHead)


def payments_by_state() -> dict[str, int]:
    """Every state with its number of payments (0 included): the sums of the counts the audit chain heads keep,
    one row per grassroots org whatever the number of payments (services/audit.py)."""
    return dict(zip(PAYMENT_COUNTS, map(int, db.session.execute(_SUMMED_COUNTS).one()), strict=True))


@dataclass(frozen=True)
class OutboxBacklog:
    counts: dict[str, int]
    overdue_seconds: float


def outbox_backlog() -> OutboxBacklog:
    """The notifications not yet sent, by state, and how long the most overdue pending one has been due."""
    counts = dict.fromkeys(BACKLOG_STATES, 0)
    rows = db.session.execute(select(Notification.state, func.count())
                              .where(Notification.state.in_(BACKLOG_STATES)).group_by(Notification.state))
    counts.update({state: count for state, count in rows})
    oldest_due = db.session.scalar(
        select(func.min(Notification.next_attempt_at)).where(Notification.state == "pending"))
    overdue = max(0.0, (utcnow() - oldest_due).total_seconds()) if oldest_due is not None else 0.0
    return OutboxBacklog(counts, overdue)


def checkpoint_age_seconds() -> float:
    """Seconds since the newest signed audit checkpoint (SPEC §8); infinite when none was ever written, so that the
    alert on an old checkpoint also fires for a deployment that never made one. One look-up of the newest row."""
    newest = db.session.scalar(select(AuditCheckpoint.created_at).order_by(AuditCheckpoint.id.desc()).limit(1))
    return float("inf") if newest is None else max(0.0, (utcnow() - newest).total_seconds())

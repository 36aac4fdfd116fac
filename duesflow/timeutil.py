"""Beijing time: dates of collection and issue, and the offsets of timestamps shown to people."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    """Now, as an aware UTC datetime (what every timestamp column stores)."""
    return datetime.now(UTC)


def beijing_today() -> date:
    """Today's date in Beijing."""
    return utcnow().astimezone(BEIJING).date()


def beijing_iso(moment: datetime) -> str:
    """An ISO 8601 timestamp with the +08:00 offset."""
    return moment.astimezone(BEIJING).isoformat()

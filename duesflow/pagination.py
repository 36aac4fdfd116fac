"""Keyset pagination, newest first by (created_at, id), with opaque cursors."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, false, literal, select, tuple_, union

from .errors import ValidationFailed
from .schemas import MAX_ID


def encode_cursor(created_at: datetime, row_id: int) -> str:
    raw = json.dumps([created_at.isoformat(), row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Undo ``encode_cursor``; 422 for anything that is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, row_id = json.loads(raw)
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is None or not isinstance(row_id, int) or isinstance(row_id, bool):
            raise ValueError
        if not 0 < row_id <= MAX_ID:
            raise ValueError
        return moment.astimezone(UTC), row_id
    except (ValueError, TypeError, UnicodeDecodeError, OverflowError):
        raise ValidationFailed(fields={"cursor": ["分页游标无效。"]}) from None


def newest_first(rows: Any) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """The order of every page: newest first by (``created_at``, ``id``), of a model or a subquery's columns."""
    return rows.created_at.desc(), rows.id.desc()


def page(query: Select[Any], model: Any, params: dict[str, Any]) -> Select[Any]:
    """Order ``query`` newest first, start after the cursor, and fetch one extra row to know if more exist."""
    if params.get("cursor"):
        created_at, row_id = decode_cursor(params["cursor"])
        # A row value, not "a < x OR (a = x AND b < y)": both engines then seek the (created_at, id) index.
        query = query.where(tuple_(model.created_at, model.id) < tuple_(
            literal(created_at, model.created_at.type), literal(row_id, model.id.type)))
    return query.order_by(*newest_first(model)).limit(params["limit"] + 1)


def merged_page(query: Select[Any], model: Any, branches: list[ColumnElement[bool]],
                params: dict[str, Any]) -> Select[Any]:
    """``page`` of ``query`` (which selects ``model.id``) restricted to any of ``branches``, as one page per branch,
    merged: each branch seeks its own index for at most a page, where ``OR`` let the engine walk a wider index in
    order until it had a page (SQLite walked a committee's whole history for its inbox). A row in two branches
    counts once."""
    if len(branches) < 2:
        return page(query.where(*branches or [false()]), model, params)
    pages = [page(query.add_columns(model.created_at).where(branch), model, params).subquery() for branch in branches]
    merged = union(*(select(each.c.id, each.c.created_at) for each in pages)).subquery("merged")
    return select(merged.c.id).order_by(*newest_first(merged.c)).limit(params["limit"] + 1)


def split(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """The page's rows and the cursor of the next page (None on the last)."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].created_at, rows[-1].id)

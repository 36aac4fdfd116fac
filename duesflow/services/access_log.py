"""The access log of personal data: every showing of an unmasked value, who saw whose, when and where.

A presenter that unmasks a value notes it with :func:`record_unmasked`; the request writes the notes with
:func:`write_pending` after its own commit and before its answer leaves, in a transaction of their own. On
SQLite a read transaction that turns into a writer fails when another writer committed in between, and a GET
begins as a reader; a fresh transaction whose first statement writes waits for the lock instead.
"""

from __future__ import annotations

from typing import Any

from flask import g, has_request_context, request
from sqlalchemy import insert, select
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import PersonalDataView, User, utcnow
from ..pagination import page, split
from ..personal_data import PersonalField

_PENDING = "personal_data_views"


def record_unmasked(viewer: User, member_id: int, field: PersonalField) -> None:
    """Note that ``viewer`` is being shown the unmasked ``field`` of member ``member_id``."""
    if has_request_context():  # outside a request (CLI, the import report) nothing is shown to a user
        g.setdefault(_PENDING, []).append((viewer.id, member_id, field))


def write_pending() -> None:
    """Write this request's notes and commit them; the answer must not leave without its log rows."""
    pending: list[tuple[int, int, str]] = g.pop(_PENDING, [])
    if not pending:
        return
    db.session.rollback()  # ends the request's (read) transaction: its own work is committed by now
    shown_by = f"{request.method} {request.path}"[:300]  # not the query: a search may hold an ID number
    at = utcnow()
    rows = [{"viewer_id": viewer_id, "member_id": member_id, "field": field, "shown_by": shown_by, "created_at": at}
            for viewer_id, member_id, field in dict.fromkeys(pending)]
    db.session.execute(insert(PersonalDataView), rows)  # one statement for a page of members, not one per row
    db.session.commit()


def views_page(params: dict[str, Any]) -> tuple[list[PersonalDataView], str | None]:
    """A page of the log, newest first, filtered by ``member_id`` and ``viewer_id`` when given (central sees all
    of it), and the cursor of the next page; for the API and the page alike."""
    query = select(PersonalDataView)
    if params.get("member_id") is not None:
        query = query.where(PersonalDataView.member_id == params["member_id"])
    if params.get("viewer_id") is not None:
        query = query.where(PersonalDataView.viewer_id == params["viewer_id"])
    query = page(query, PersonalDataView, params).options(
        selectinload(PersonalDataView.viewer), selectinload(PersonalDataView.member))
    return split(list(db.session.scalars(query)), params["limit"])

"""The access log of personal data, for central: who was shown which member's unmasked phone, when, where."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import selectinload

from .. import permissions, schemas
from ..errors import Forbidden
from ..extensions import db
from ..models import PersonalDataView
from ..services import access_log
from ..workflow import Role
from . import bp
from .framework import current_user, endpoint, read_query
from .pagination import page, split
from .presenters import personal_data_view


@bp.get("/access-log")
@endpoint(summary="Every showing of an unmasked phone or ID number, newest first (central)",
          query=schemas.AccessLogQuery, response=schemas.AccessLogPage, errors=(Forbidden,))
def list_personal_data_views() -> Any:
    permissions.require_role(current_user(), Role.CENTRAL)
    params = read_query(schemas.AccessLogQuery)
    query = page(access_log.views_query(params), PersonalDataView, params).options(
        selectinload(PersonalDataView.viewer), selectinload(PersonalDataView.member))
    rows, next_cursor = split(list(db.session.scalars(query)), params["limit"])
    return {"items": [personal_data_view(row) for row in rows], "next_cursor": next_cursor}

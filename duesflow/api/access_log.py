"""The access log of personal data, for central: who was shown which member's unmasked phone, when, where."""

from __future__ import annotations

from typing import Any

from .. import permissions, schemas
from ..errors import Forbidden
from ..services import access_log
from ..workflow import Role
from . import bp
from .framework import current_user, endpoint, read_query
from .presenters import personal_data_view


@bp.get("/access-log")
@endpoint(summary="Every showing of an unmasked phone or ID number, newest first (central)",
          query=schemas.AccessLogQuery, response=schemas.AccessLogPage, errors=(Forbidden,))
def list_personal_data_views() -> Any:
    permissions.require_role(current_user(), Role.CENTRAL)
    params = read_query(schemas.AccessLogQuery)
    rows, next_cursor = access_log.views_page(params)
    return {"items": [personal_data_view(row) for row in rows], "next_cursor": next_cursor}

"""What attacks look like from inside (SPEC §5, §7): usernames failing to log in from many clients (admins),
receipt numbers failing verification from every client (central). Counted and shown, never a lockout."""

from __future__ import annotations

from typing import Any

from .. import permissions, schemas
from ..errors import Forbidden
from ..services import throttle
from ..workflow import Role
from . import bp
from .framework import current_user, endpoint


@bp.get("/security/login-attacks")
@endpoint(summary="Usernames failing to log in from many clients within the login window, most clients first "
                  "(admin)", response=schemas.LoginAttacksOut, errors=(Forbidden,))
def login_attacks() -> Any:
    permissions.require_role(current_user(), Role.ADMIN)
    return throttle.login_attacks_view()


@bp.get("/security/verification-failures")
@endpoint(summary="Receipt numbers with failed public verifications from every client, most clients first "
                  "(central)", response=schemas.VerificationFailuresOut, errors=(Forbidden,))
def verification_failures() -> Any:
    permissions.require_role(current_user(), Role.CENTRAL)
    return throttle.verification_failures_view()

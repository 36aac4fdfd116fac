"""Tokens: log in, log out, change one's own password."""

from __future__ import annotations

from typing import Any

from flask import g, request

from .. import schemas
from ..errors import InvalidCredentials, TooManyRequests
from ..services import auth
from . import bp
from .framework import current_user, endpoint, read_body


@bp.post("/auth/token")
@endpoint(summary="Exchange username and password for a bearer token", body=schemas.TokenRequest,
          response=schemas.TokenResponse, auth=False, errors=(InvalidCredentials, TooManyRequests))
def issue_token() -> Any:
    body = read_body(schemas.TokenRequest)
    user = auth.authenticate(body["username"], body["password"], request.remote_addr)
    issued = auth.issue_token(user)
    return {"token": issued.token, "expires_in": issued.expires_in}


@bp.post("/auth/logout")
@endpoint(summary="Revoke the token this request carries", status=204)
def logout() -> Any:
    auth.revoke_token(g.token)
    return None


@bp.post("/auth/password")
@endpoint(summary="Change one's own password (revokes every token of the user)", body=schemas.PasswordChange,
          status=204)
def change_password() -> Any:
    body = read_body(schemas.PasswordChange)
    auth.change_own_password(current_user(), body["old_password"], body["new_password"])
    return None

"""What attacks look like from inside, as pages: usernames failing to log in from many clients (admin) and
receipt numbers failing verification (central); the same services as /api/v1/security/*."""

from __future__ import annotations

from typing import Any

from flask import render_template

from ..models import User
from ..services import throttle
from ..workflow import Role
from . import bp
from .common import login_required


@bp.get("/admin/login-attacks")
@login_required(Role.ADMIN)
def login_attacks(user: User) -> Any:
    return render_template("under_attack.html", user=user, kind="login", view=throttle.login_attacks_view())


@bp.get("/verification-failures")
@login_required(Role.CENTRAL)
def verification_failures(user: User) -> Any:
    return render_template("under_attack.html", user=user, kind="verify", view=throttle.verification_failures_view())

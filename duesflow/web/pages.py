"""Login (session with CSRF protection), logout, home, and the public verification page."""

from __future__ import annotations

import secrets
from typing import Any

from flask import abort, current_app, redirect, render_template, request, session, url_for

from ..errors import InvalidCredentials, ReceiptNotFound, TooManyRequests
from ..extensions import db
from ..models import User
from ..receipts.capitals import format_yuan
from ..services import auth
from . import bp

ROLE_NAMES = {"admin": "系统管理员", "clerk": "基层党委经办人", "reviewer": "组织部门审核人",
              "central": "中央组织部工作人员", "member": "党员"}


def csrf_token() -> str:
    """The session's CSRF token, created on first use."""
    if "csrf_token" not in session:
        session["csrf_token"] = secrets.token_urlsafe(32)
    return session["csrf_token"]


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "current_user": session_user, "role_names": ROLE_NAMES,
            "yuan": format_yuan}


@bp.before_app_request
def _check_csrf() -> None:
    if request.method == "POST" and not request.path.startswith("/api/"):
        if request.endpoint == "web.upload_payment_batch":  # a spreadsheet of up to 10,000 rows (SPEC §9)
            request.max_content_length = current_app.config["MAX_BATCH_BYTES"]
        sent = request.form.get("csrf_token", "")
        expected = session.get("csrf_token", "")
        if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
            abort(400, description="表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试。")


_WEB_USER = "duesflow.web_user"


def session_user() -> User | None:
    """The logged-in user of the web session, if the session is still valid."""
    # Cached per request (not in g: g belongs to the app context, which tests keep across requests).
    if _WEB_USER in request.environ:
        return request.environ[_WEB_USER]
    user = None
    user_id, version = session.get("user_id"), session.get("auth_version")
    # The cookie alone proves nothing once its session ended (logout, expiry, password change): the row decides.
    found = auth.session_token(session.get("session_token", ""))
    if user_id is not None and found is not None:
        candidate = found[0]
        if candidate.id == user_id and candidate.auth_version == version:
            user = candidate
    request.environ[_WEB_USER] = user
    return user


def start_session(user: User) -> None:
    """A new session for ``user``: new cookie contents and CSRF token (no fixation), and a server-side record that
    expires like a token and that logout revokes."""
    session.clear()
    session["user_id"] = user.id
    session["auth_version"] = user.auth_version
    session["session_token"] = auth.issue_session(user)
    csrf_token()


@bp.get("/login")
def login_form() -> Any:
    return render_template("login.html", error=None, username="")


@bp.post("/login")
def login() -> Any:
    username = request.form.get("username", "")[:64]
    password = request.form.get("password", "")[:256]
    try:
        user = auth.authenticate(username, password, request.remote_addr)
    except (InvalidCredentials, TooManyRequests) as error:
        db.session.rollback()
        status = error.status
        response = render_template("login.html", error=error.message, username=username), status
        return response if not isinstance(error, TooManyRequests) else (*response, error.headers)
    start_session(user)
    db.session.commit()
    return redirect(url_for("web.home"))


@bp.post("/logout")
def logout() -> Any:
    found = auth.session_token(session.get("session_token", ""))
    if found is not None:
        auth.revoke_token(found[1])
        db.session.commit()
    session.clear()
    return redirect(url_for("web.login_form"))


@bp.get("/")
def home() -> Any:
    user = session_user()
    if user is None:
        return redirect(url_for("web.login_form"))
    from .account import home_page

    return home_page(user)


@bp.get("/verify/<number>")
def verify_page(number: str) -> Any:
    from ..api.meta import verification_view

    code = request.args.get("code", "")[:64]
    status, result, error = 200, None, None
    if code:
        try:
            result = verification_view(number, code)
            db.session.commit()
        except (ReceiptNotFound, TooManyRequests) as failure:
            db.session.rollback()
            status, error = failure.status, failure
    return render_template("verify.html", number=number[:32], code=code, result=result,
                           error=error), status



"""Login (session with CSRF protection), logout, and the public verification page."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, session, url_for

from ..errors import InvalidCredentials, ReceiptNotFound, TooManyRequests
from ..extensions import db
from ..services import auth
from . import bp
from .session import start_session


@bp.get("/login")
def login_form() -> Any:
    return render_template("login.html", error=None, username="")


@bp.post("/login")
def login() -> Any:
    username = request.form.get("username", "")[:64]
    password = request.form.get("password", "")[:256]
    try:
        user = auth.authenticate(username, password, request.remote_addr or "unknown")
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



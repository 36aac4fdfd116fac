"""Login (session with CSRF protection), logout, and the public verification page."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, session, url_for

from ..errors import InvalidCredentials, ReceiptNotFound, TooManyRequests, ValidationFailed
from ..extensions import db
from ..receipts.verification import PROBLEM_TEXT
from ..services import auth
from ..services.receipts import DOCUMENT_MAX_BYTES, RECEIPT_NUMBER
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


@bp.get("/verify")
def verify_home() -> Any:
    """The form for the number and code printed on a paper receipt (sent on to ``/verify/<number>``), and the
    upload of a receipt PDF."""
    number, code = request.args.get("number", "").strip()[:32], request.args.get("code", "").strip()[:64]
    if number:
        return redirect(url_for("web.verify_page", number=number, code=code or None))
    return render_template("verify_home.html", result=None, error=None, reasons=PROBLEM_TEXT,
                           number_pattern=RECEIPT_NUMBER.pattern)


@bp.post("/verify")
def verify_upload() -> Any:
    from ..api.meta import document_verification_view

    upload = request.files.get("document")
    status, result, error = 200, None, None
    pdf = upload.read(DOCUMENT_MAX_BYTES + 1) if upload is not None else b""
    if not pdf:
        status, error = 422, "请选择要查验的收据PDF文件。"
    elif len(pdf) > DOCUMENT_MAX_BYTES:
        status, error = 413, "文件超过2 MiB，不是本系统开具的收据。"
    else:
        try:
            result = document_verification_view(pdf)
            db.session.commit()
        except (ValidationFailed, TooManyRequests) as failure:
            db.session.rollback()
            status = failure.status
            error = "查验次数过多，请稍后再试。" if failure.status == 429 else "上传的文件不是PDF文件。"
    return render_template("verify_home.html", result=result, error=error, reasons=PROBLEM_TEXT,
                           number_pattern=RECEIPT_NUMBER.pattern), status


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



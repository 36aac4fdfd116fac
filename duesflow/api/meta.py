"""Health, the OpenAPI document, and public receipt verification (by number and code, or by the signed PDF)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import current_app, request
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .. import schemas
from ..errors import ReceiptNotFound, TooManyRequests
from ..extensions import db
from ..identity import mask_name
from ..services import receipts
from ..signing import signing
from . import bp
from .framework import endpoint, read_query


@bp.get("/openapi.json")
@endpoint(summary="This document", auth=False)
def openapi() -> Any:
    from .openapi import build_document

    return build_document(current_app)


@bp.get("/receipts/<number>/verify")
@endpoint(summary="Public verification of a receipt by number and code (no login; rate limited)",
          query=schemas.VerifyQuery, response=schemas.VerifyOut, auth=False,
          errors=(ReceiptNotFound, TooManyRequests))
def verify_receipt(number: str) -> Any:
    return verification_view(number, read_query(schemas.VerifyQuery)["code"])


def _count_verification_attempt() -> None:
    """Every verification, by code or by document, counts against the client's budget (429 beyond it)."""
    request.writes = True  # type: ignore[attr-defined]  # counts the attempt: SQLite must begin as a writer
    receipts.count_verification(request.remote_addr)


def verification_view(number: str, code: str) -> dict[str, Any]:
    """Throttled look-up shared by the API and the public page: the masked answer, or 404/429."""
    request.writes = True  # type: ignore[attr-defined]  # counts the attempt: SQLite must begin as a writer
    found = receipts.verify_attempt(number, code, request.remote_addr)
    view: dict[str, Any] = {
        "valid": found.valid,
        "number": found.number,
        "amount": found.amount,
        "issued_on": found.issued_on,
        "member_name": mask_name(found.member_name),
        "issuer": found.issuer,
    }
    if found.voided:
        view["voided"] = True
    return view


@bp.get("/receipts/signing-certificate")
@endpoint(summary="The certificate receipts are signed with now (PEM), to check a receipt PDF's signature offline",
          auth=False, content_type="application/x-pem-file")
def signing_certificate() -> Any:
    return current_app.response_class(signing().certificate_pem, mimetype="application/x-pem-file",
                                      headers={"Content-Disposition": 'inline; filename="duesflow-signing.pem"'})


@bp.post("/receipts/verify-document")
@endpoint(summary="Public verification of a receipt PDF (the body, at most 2 MiB): signed by the service, unchanged, "
                  "and the live version of its receipt? (no login; rate limited like verification)",
          response=schemas.VerifyDocumentOut, auth=False, errors=(TooManyRequests,), body_type="application/pdf")
def verify_document() -> Any:
    request.max_content_length = receipts.DOCUMENT_MAX_BYTES
    return document_verification_view(request.get_data(cache=False))


def document_verification_view(pdf: bytes) -> dict[str, Any]:
    """Throttled check of an uploaded receipt PDF, shared by the API and the public page (429, 422 not a PDF)."""
    _count_verification_attempt()
    found = receipts.verify_document(pdf)
    if not found.valid:
        return {"valid": False, "reason": str(found.reason)}
    return {"valid": True, "number": found.number, "version": found.version, "amount": found.amount,
            "issued_on": found.issued_on, "member_name": mask_name(found.member_name or ""),
            "signed_by": found.signed_by}


@endpoint(summary="Liveness: 200 when the database answers, 503 otherwise", response=schemas.Health, auth=False)
def healthz() -> Any:
    """Registered at /healthz, outside the API prefix, by the app factory."""
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        return _unavailable()
    if not pages_can_render():
        return _unavailable()
    return {"status": "ok"}


# What every page needs: the layout, the login and error pages, and the stylesheet.
_PAGE_TEMPLATES = ("base.html", "_macros.html", "login.html", "error.html")
_STATIC_FILES = ("style.css",)


def pages_can_render() -> bool:
    """Whether the templates and static files are where the app looks for them (an install without them would
    drop every page while the database answers); the compiled templates are cached, so this is cheap."""
    from jinja2 import TemplateError

    try:
        for name in _PAGE_TEMPLATES:
            current_app.jinja_env.get_template(name)
    except TemplateError:
        current_app.logger.error("page templates missing or broken under %s", current_app.template_folder)
        return False
    static = Path(current_app.static_folder or "")
    return all((static / name).is_file() for name in _STATIC_FILES)


def _unavailable() -> Any:
    return current_app.response_class('{"status":"unavailable"}', status=503, mimetype="application/json")

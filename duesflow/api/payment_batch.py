"""Batch entry of payments (SPEC §9): ``POST /payments/batch`` with JSON rows or a CSV/XLSX upload."""

from __future__ import annotations

import hashlib
import io
from typing import Any

from flask import current_app, request

from .. import schemas
from ..errors import (
    DirectPaymentRefused,
    Forbidden,
    IdempotencyConflict,
    RequestTooLarge,
    ValidationFailed,
)
from ..models import User
from ..services.payment_batch import BatchRow, record_batch, rows_of_file, rows_of_json
from ..services.payments import recording_org
from ..spreadsheets import ImportRefused
from . import bp
from .framework import current_user, dumper, endpoint, parse_json_body
from .payments import IDEMPOTENCY_KEY_HEADER, answer_once


def batch_rows() -> tuple[list[BatchRow], Any]:
    """The rows of the request (a ``file`` upload or a JSON body) and what an Idempotency-Key compares: the body,
    or the uploaded file's SHA-256."""
    if request.mimetype != "multipart/form-data":
        body = parse_json_body()
        return rows_of_json(body), body
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationFailed(fields={"file": ["请上传 CSV 或 XLSX 文件（表单字段 file）。"]})
    content = upload.read()
    try:
        rows = rows_of_file(io.BytesIO(content), upload.filename)
    except ImportRefused as error:
        raise ValidationFailed(str(error), fields={"file": [str(error)]}) from None
    return rows, {"file_sha256": hashlib.sha256(content).hexdigest()}


def _recorded(user: User, rows: list[BatchRow]) -> dict[str, Any]:
    result = record_batch(user, rows)
    return {"count": result.count, "total": result.total, "payment_ids": result.payment_ids}


@bp.post("/payments/batch")
@endpoint(
    summary="Record many payments at once (clerk): JSON rows, or a CSV/XLSX file as multipart field `file` with "
            "Chinese or English headers; all or none, every bad row reported under fields.rows.<row number>",
    body=schemas.PaymentBatch,
    response=schemas.PaymentBatchOut,
    status=201,
    errors=(Forbidden, DirectPaymentRefused, IdempotencyConflict, RequestTooLarge),
    headers=(IDEMPOTENCY_KEY_HEADER,),
    uploads="A CSV (UTF-8) or XLSX file: a header row naming the columns of a row (in Chinese, as the clerk's "
            "template has them, or in English), then one payment a row; rows are numbered as the spreadsheet shows "
            "them.",
    body_read_early=False,  # its rows are checked one by one (rows_of_json), not as the PaymentBatch schema
)
def create_payment_batch() -> Any:
    user = current_user()
    recording_org(user)
    request.max_content_length = current_app.config["MAX_BATCH_BYTES"]
    rows, fingerprint = batch_rows()
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return _recorded(user, rows)
    return answer_once(user, key, fingerprint, 201, lambda: dumper(schemas.PaymentBatchOut)(_recorded(user, rows)))

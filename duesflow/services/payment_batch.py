"""Batch entry of payments (SPEC §9): a committee's collection of a day, as JSON rows or a CSV/XLSX file.

Every row is validated like a single payment (``schemas.PaymentBatchRow`` is ``PaymentCreate`` with the member
named by id or whole resident ID; ``payments.PAYMENT_RULES`` are the single recording's rules); any bad row →
422 with every bad row's messages under ``fields.rows.<row number>.<column>``, and nothing is recorded. Otherwise
all rows are recorded in the caller's transaction with a fixed number of statements, whatever the number of
rows: one look-up of the named members, one executemany INSERT of the payments (ids back by RETURNING, in row
order), one of their ``record`` events (``audit.append_events``). The driver splits an executemany into pages
(``insertmanyvalues``, 1000 rows a statement), and that is the only growth.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from flask import current_app
from marshmallow import ValidationError
from sqlalchemy import func, insert, select
from sqlalchemy import text as sql

from .. import schemas
from ..errors import DomainError, ValidationFailed
from ..extensions import db
from ..messages import field_messages
from ..models import Member, Org, Payment, User, utcnow
from ..money import MINIMUM_AMOUNT, format_amount
from ..personal_data import data_keys
from ..schemas import load, shared
from ..spreadsheets import Layout, Sheet, read_sheet
from ..timeutil import beijing_today
from ..workflow import State
from .audit import EventDraft, PaymentRef, append_events
from .payments import NO_SUCH_MEMBER, PAYMENT_RULES, PaymentInput, recording_org

# Accepted column headers (Chinese or English) and the field each one fills; the template uses the first
# Chinese label of each.
COLUMNS: dict[str, str] = {
    "党员编号": "member_id", "member_id": "member_id",
    "身份证号码": "id_number", "身份证号": "id_number", "公民身份号码": "id_number", "id_number": "id_number",
    "金额": "amount", "金额（元）": "amount", "amount": "amount",
    "代收日期": "collected_on", "收款日期": "collected_on", "collected_on": "collected_on",
    "交纳方式": "method", "method": "method",
    "已按规定交纳党费": "regular_dues_paid", "已交纳党费": "regular_dues_paid",
    "regular_dues_paid": "regular_dues_paid",
    "备注": "note", "note": "note",
}
LAYOUT = Layout(COLUMNS, required=[("member_id", "id_number"), ("amount",), ("collected_on",), ("method",),
                                   ("regular_dues_paid",)], rows_are="款项")
TEMPLATE_COLUMNS = ("member_id", "id_number", "amount", "collected_on", "method", "regular_dues_paid", "note")
METHODS = {"现金": "cash", "银行转账": "bank_transfer", "微信": "wechat", "微信支付": "wechat", "支付宝": "alipay",
           "其他": "other"}
PROGRESS_EVERY = 500  # rows validated between two reports to ``progress``
YES_NO = {"是": True, "否": False, "true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


@dataclass(frozen=True)
class BatchRow:
    """One row to record: its number (the spreadsheet's, or its place in the JSON list counted from 1) and the
    body ``POST /payments`` would receive for it, with what only a file can get wrong."""

    number: int
    body: Any
    problems: dict[str, list[str]] | None = None


@dataclass(frozen=True)
class BatchResult:
    count: int
    total: Decimal
    payment_ids: list[int]


def rows_of_json(body: dict[str, Any]) -> list[BatchRow]:
    """The rows of a JSON batch ``{"rows": [...]}``; any other key, or rows that are no list → 422."""
    unknown = sorted(set(body) - {"rows"})
    if unknown:
        raise ValidationFailed(fields={name: ["Unknown field."] for name in unknown})
    rows = body.get("rows")
    if not isinstance(rows, list):
        raise ValidationFailed(fields={"rows": ["须为款项的数组。"]})
    return [BatchRow(number, row) for number, row in enumerate(rows, start=1)]


def rows_of_file(source: Path | IO[bytes], filename: str | None = None) -> list[BatchRow]:
    """The rows of a CSV or XLSX file (the header is row 1); ``ImportRefused`` when it cannot be read."""
    sheet = read_sheet(source, LAYOUT, filename=filename)
    return [BatchRow(row.number, _body(row.cells), _file_problems(sheet, row.extra, row.numeric))
            for row in sheet.rows]


def _body(cells: dict[str, str]) -> dict[str, Any]:
    """A row's cells as JSON values: blank cells left out, 现金/是 and their kin spelt as the API spells them."""
    body: dict[str, Any] = {}
    for column, text in cells.items():
        if text == "":
            continue
        if column == "member_id" and text.isdigit() and len(text) < 12:
            body[column] = int(text)
        elif column == "method":
            body[column] = METHODS.get(text, text.lower())
        elif column == "regular_dues_paid":
            body[column] = YES_NO.get(text.lower(), text)
        else:
            body[column] = text
    return body


def _file_problems(sheet: Sheet, extra: str | None, numeric: frozenset[str]) -> dict[str, list[str]] | None:
    problems: dict[str, list[str]] = {}
    if extra is not None:
        problems["_schema"] = [f"表头之外还有数据“{extra}”。"]
    if "id_number" in numeric:
        problems["id_number"] = [f"身份证号码须以文本格式保存，数字格式会丢失末几位（{sheet.headers['id_number']}）。"]
    return problems or None


def record_batch(clerk: User, rows: list[BatchRow], *, progress: Callable[[int], None] | None = None) -> BatchResult:
    """Validate every row and record them all, each with its ``record`` event, in the caller's transaction (flush
    only); ``ValidationFailed`` listing every bad row, and nothing recorded, when any row is bad. ``progress`` is
    told how many rows were dealt with, as it goes (validation, then recording)."""
    org = recording_org(clerk)
    limit = current_app.config["MAX_BATCH_ROWS"]
    if not rows:
        raise ValidationFailed("没有要登记的款项。", fields={"rows": ["至少需要一行款项。"]})
    if len(rows) > limit:
        raise ValidationFailed(f"一批最多 {limit} 行，本批 {len(rows)} 行：请分成几批登记。",
                               fields={"rows": [f"一批最多 {limit} 行。"]})
    report = progress or (lambda _n: None)
    checked: list[tuple[BatchRow, dict[str, Any], dict[str, list[str]]]] = []
    for index, row in enumerate(rows, start=1):
        problems = dict(row.problems or {})
        checked.append((row, _loaded(row.body, problems), problems))
        if index % PROGRESS_EVERY == 0:
            report(PROGRESS_EVERY)
    members = _members_named(org, [data for _row, data, _problems in checked])
    errors: dict[str, dict[str, list[str]]] = {}
    inputs: list[PaymentInput] = []
    for row, data, problems in checked:
        named = "member_id" if data.get("member_id") else "id_number" if data.get("id_number") else None
        member_id = members.get((named, data[named])) if named else None
        if named and member_id is None:
            problems[named] = [NO_SUCH_MEMBER if named == "member_id" else "本单位没有该身份证号码的党员。"]
        # A field the row got wrong is stood in for by a value its rule accepts: each rule reports only its own.
        payment = PaymentInput(member_id=member_id or 0, amount=data.get("amount", MINIMUM_AMOUNT),
                               collected_on=data.get("collected_on", beijing_today()),
                               method=data.get("method", "cash"),
                               regular_dues_paid=data.get("regular_dues_paid", True), note=data.get("note"))
        for rule in PAYMENT_RULES:
            try:
                rule(payment)
            except DomainError as error:
                problems.update(field_messages(error))
        if problems:
            errors[str(row.number)] = problems
        inputs.append(payment)
    report(len(rows) % PROGRESS_EVERY)
    if errors:
        raise ValidationFailed(f"{len(errors)} 行有误，本批款项均未登记。请更正后重新提交整批。",
                               fields={"rows": dict(sorted(errors.items(), key=lambda item: int(item[0])))})
    ids = _insert(clerk, org, inputs)
    report(len(rows))
    return BatchResult(len(ids), sum((payment.amount for payment in inputs), Decimal("0.00")), ids)


def _loaded(body: Any, problems: dict[str, list[str]]) -> dict[str, Any]:
    """The row loaded by the single payment's schema; when it is refused, its messages are added to ``problems``
    and what the row got right is given, so that the rules can still be checked on it."""
    if not isinstance(body, dict):
        problems["_schema"] = ["每行须为一个 JSON 对象。"]
        return {}
    if not problems and (data := schemas.well_formed_batch_row(body)) is not None:
        return data
    try:
        return load(schemas.PaymentBatchRow, body)
    except DomainError as error:
        problems.update(field_messages(error))
    try:
        return shared(schemas.PaymentBatchRow).load(
            {name: value for name, value in body.items() if name not in problems}, partial=True)
    except ValidationError:
        return {}


def _members_named(org: Org, rows: Iterable[dict[str, Any]]) -> dict[tuple[str, Any], int]:
    """("member_id", id) and ("id_number", whole number) → member id, for the members of ``org`` the rows name.
    Resident ID numbers are found by their keyed hashes (nothing is decrypted); one statement per 5000 names."""
    ids: set[int] = set()
    by_hash: dict[str, str] = {}
    keys = data_keys()
    for data in rows:
        if data.get("member_id"):
            ids.add(data["member_id"])
        elif data.get("id_number"):
            for digest in keys.search_indexes("id_number", data["id_number"]):
                by_hash[digest] = data["id_number"]
    found: dict[tuple[str, Any], int] = {}
    for chunk in _chunks(sorted(ids)):
        query = select(Member.id).where(Member.org_id == org.id, Member.id.in_(chunk))
        found.update({("member_id", member_id): member_id for member_id in db.session.scalars(query)})
    for chunk in _chunks(sorted(by_hash)):
        query = select(Member.id, Member.id_number_hash).where(Member.org_id == org.id,
                                                               Member.id_number_hash.in_(chunk))
        found.update({("id_number", by_hash[digest]): member_id for member_id, digest in db.session.execute(query)})
    return found


def _chunks(values: list[Any], size: int = 5000) -> Iterable[list[Any]]:
    """Bounded IN lists: SQLite takes at most 32766 parameters a statement."""
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _insert(clerk: User, org: Org, inputs: list[PaymentInput]) -> list[int]:
    """One executemany INSERT of the payments (ids back in row order), one of their events."""
    now = utcnow()
    recorded = State.RECORDED.value
    ids = _reserved_payment_ids(len(inputs))
    db.session.execute(insert(Payment.__table__), [
        {"id": payment_id, "member_id": payment.member_id, "grassroots_org_id": org.id, "holder_org_id": org.id,
         "state": recorded, "amount": payment.amount, "collected_on": payment.collected_on, "method": payment.method,
         "regular_dues_paid": True, "note": payment.note, "created_by_id": clerk.id, "created_at": now,
         "updated_at": now, "version": 1}
        for payment_id, payment in zip(ids, inputs, strict=True)
    ])
    append_events([
        EventDraft(payment=PaymentRef(payment_id, recorded, org.id, org.id), action="record", actor=clerk,
                   from_state=None, from_org_id=None, details={"amount": format_amount(payment.amount)})
        for payment_id, payment in zip(ids, inputs, strict=True)
    ])
    return ids


def _reserved_payment_ids(count: int) -> list[int]:
    """``count`` new payment ids, ascending, given to the rows in order, in one statement. (RETURNING in the order
    of the rows is one statement per row on SQLite: it has no way to sort a multi-row RETURNING.) PostgreSQL takes
    them from the id sequence; SQLite continues after the largest id, which nobody else can take meanwhile: a
    writing transaction there holds the database's write lock from its BEGIN IMMEDIATE."""
    if db.engine.dialect.name == "postgresql":
        ids = db.session.scalars(sql(
            "SELECT nextval(pg_get_serial_sequence('payments', 'id')) FROM generate_series(1, :count)"
        ), {"count": count})
        return sorted(ids)
    last = db.session.scalar(select(func.coalesce(func.max(Payment.id), 0)))
    return list(range(last + 1, last + 1 + count))


def template_xlsx() -> bytes:
    """The workbook a committee fills in: the Chinese headers, the resident ID column formatted as text (a number
    would lose its last digits), and a sheet explaining each column."""
    from openpyxl import Workbook  # imported where used (duesflow.spreadsheets, _xlsx_lines)
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheet = book.active
    sheet.title = "款项"
    sheet.append([LAYOUT.label(column) for column in TEMPLATE_COLUMNS])
    for index, column in enumerate(TEMPLATE_COLUMNS, start=1):
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = 22 if column in ("id_number", "note") else 16
        if column in ("id_number", "collected_on"):
            for cell_row in range(2, 1002):
                sheet.cell(row=cell_row, column=index).number_format = "@"
    help_sheet = book.create_sheet("填写说明")
    for line in TEMPLATE_HELP:
        help_sheet.append(list(line))
    help_sheet.column_dimensions["A"].width = 18
    help_sheet.column_dimensions["B"].width = 80
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


TEMPLATE_HELP = (
    ("列", "填写方法"),
    ("党员编号", "本基层党委名册中的党员编号；与身份证号码只填其一。"),
    ("身份证号码", "18位公民身份号码（请保持文本格式）；与党员编号只填其一。"),
    ("金额", "自愿一次性多交党费，1000元及以上，最多两位小数，如 1000 或 1000.50。"),
    ("代收日期", "YYYY-MM-DD，如 2026-12-01，不能晚于今天。"),
    ("交纳方式", "现金、银行转账、微信、支付宝或其他。"),
    ("已按规定交纳党费", "填“是”：党员须已按规定比例交纳党费，方可自愿多交。"),
    ("备注", "可不填，最多500字。"),
    ("", "每批最多 10000 行；任何一行有误时整批均不登记，页面会列出每一行的问题。"),
)

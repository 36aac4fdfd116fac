"""Import of a member register from CSV or XLSX into one grassroots org (SPEC §9), all rows or none.

Every row goes through the same schema (``schemas.MemberCreate``) and the same service (``members.add_member``)
as ``POST /members``; the errors of every bad row are collected with the row's number as the spreadsheet shows it
(the header is row 1). The command (cli.py) commits only when no row is bad.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException
from sqlalchemy import select

from .. import schemas
from ..api.framework import load
from ..errors import DomainError, ValidationFailed
from ..extensions import db
from ..models import Member, Org
from ..personal_data import data_keys
from ..web.forms import problem
from ..workflow import OrgKind
from . import members

# Accepted column headers (Chinese or English, a few common variants) and the member field each one fills.
COLUMNS: dict[str, str] = {
    "姓名": "name", "name": "name",
    "性别": "gender", "gender": "gender",
    "出生日期": "birth_date", "birth_date": "birth_date",
    "入党日期": "joined_on", "joined_on": "joined_on",
    "身份证号": "id_number", "身份证号码": "id_number", "公民身份号码": "id_number", "id_number": "id_number",
    "工作单位": "work_unit", "work_unit": "work_unit",
    "职务": "position", "position": "position",
    "电话": "phone", "联系电话": "phone", "手机": "phone", "手机号码": "phone", "phone": "phone",
    "邮箱": "email", "电子邮箱": "email", "电子邮件": "email", "email": "email",
}
GENDERS = {"男": "male", "女": "female", "male": "male", "female": "female"}
READABLE_SUFFIXES = (".csv", ".xlsx")


class ImportRefused(Exception):
    """The file or the org cannot be imported at all (not a row-level problem)."""


@dataclass(frozen=True)
class SheetRow:
    """One data row: its number in the spreadsheet and the raw text of each recognised column."""

    number: int
    cells: dict[str, str]
    # The first cell found beyond the header's columns, if any.
    extra: str | None = None
    # Columns whose cell was a number in the workbook (an 18-digit ID number loses its last digits that way).
    numeric: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Sheet:
    """The rows of a file, and the header each field was read from (for messages)."""

    headers: dict[str, str]
    rows: list[SheetRow]


@dataclass
class ImportResult:
    imported: int = 0
    errors: list[str] = field(default_factory=list)


def target_org(org_id: int) -> Org:
    """The org the members join: it must be an active grassroots org."""
    org = db.session.get(Org, org_id)
    if org is None:
        raise ImportRefused(f"没有 id 为 {org_id} 的组织。")
    if org.kind != OrgKind.GRASSROOTS:
        raise ImportRefused(f"{org.name}（id {org_id}）不是基层党委，党员只能导入基层党委。")
    if not org.active:
        raise ImportRefused(f"{org.name}（id {org_id}）已停用，不能导入党员。")
    return org


def read_sheet(path: Path) -> Sheet:
    """The header and data rows of a CSV (UTF-8, with or without BOM) or XLSX (first worksheet) file."""
    suffix = path.suffix.lower()
    if suffix not in READABLE_SUFFIXES:
        raise ImportRefused("只能导入 .csv（UTF-8 编码）或 .xlsx 文件。")
    lines = _csv_lines(path) if suffix == ".csv" else _xlsx_lines(path)
    header_line = next(lines, None)
    if header_line is None:
        raise ImportRefused("文件是空的：第1行应为表头（姓名、性别、出生日期……）。")
    headers = _headers([text for text, _ in header_line])
    rows = []
    for number, line in enumerate(lines, start=2):
        if all(text == "" for text, _ in line):
            continue  # blank lines are common at the end of a sheet
        cells = {column: line[index][0] for index, column in headers.items() if index < len(line)}
        numeric = frozenset(column for index, column in headers.items() if index < len(line) and line[index][1])
        extra = next((text for index, (text, _) in enumerate(line) if index not in headers and text), None)
        rows.append(SheetRow(number, cells, extra, numeric))
    if not rows:
        raise ImportRefused("文件中只有表头，没有党员数据。")
    return Sheet({column: header_line[index][0] for index, column in headers.items()}, rows)


def _headers(labels: list[str]) -> dict[int, str]:
    """Column index → member field; refuses unknown, repeated or missing (姓名) columns."""
    found: dict[int, str] = {}
    unknown = []
    for index, label in enumerate(labels):
        if label == "":
            continue
        column = COLUMNS.get(label.strip().lower())
        if column is None:
            unknown.append(label)
        elif column in found.values():
            raise ImportRefused(f"表头中“{label}”一列重复。")
        else:
            found[index] = column
    if unknown:
        accepted = "、".join(dict.fromkeys(label for label in COLUMNS if not label.isascii()))
        raise ImportRefused(f"不认识的列：{'、'.join(unknown)}。可用的列：{accepted}（或对应的英文列名）。")
    if "name" not in found.values():
        raise ImportRefused("表头中缺少“姓名”（name）一列。")
    return found


def _csv_lines(path: Path) -> Iterator[list[tuple[str, bool]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRefused("CSV 文件不是 UTF-8 编码。请在 Excel 中“另存为 → CSV UTF-8（逗号分隔）”后再导入。"
                            ) from None
    for line in csv.reader(io.StringIO(text, newline="")):
        yield [(cell.strip(), False) for cell in line]


def _xlsx_lines(path: Path) -> Iterator[list[tuple[str, bool]]]:
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, SyntaxError, OSError) as error:
        # what openpyxl raises for a file that is no workbook or a damaged one (SyntaxError: bad XML)
        raise ImportRefused(f"无法读取 XLSX 文件：{error}") from None
    try:
        for line in book.worksheets[0].iter_rows(values_only=True):
            yield [_cell_text(value) for value in line]
    finally:
        book.close()


def _cell_text(value: Any) -> tuple[str, bool]:
    """A workbook cell as the text a CSV would hold, and whether it was a number."""
    if value is None:
        return "", False
    if isinstance(value, datetime):
        return (value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()), False
    if isinstance(value, date):
        return value.isoformat(), False
    if isinstance(value, bool):
        return str(value), False
    if isinstance(value, float) and value.is_integer():
        return str(int(value)), True
    if isinstance(value, int | float):
        return str(value), True
    return str(value).strip(), False


def import_rows(org: Org, sheet: Sheet, rows: Iterable[SheetRow]) -> ImportResult:
    """Validate every row and add its member to ``org`` (flush only); every bad row's errors are collected.

    The caller commits when ``errors`` is empty and rolls back otherwise, so that nothing is imported.
    """
    result = ImportResult()
    registered = set(db.session.scalars(  # keyed hashes: no ID number is decrypted to compare
        select(Member.id_number_hash).where(Member.org_id == org.id, Member.id_number_hash.is_not(None))))
    seen: dict[str, int] = {}
    for row in rows:
        problems = _row_problems(row, sheet)
        try:
            data = load(schemas.MemberCreate, _body(row))
            id_number = data.get("id_number")
            if id_number and registered.intersection(data_keys().search_indexes("id_number", id_number)):
                raise _field_error("id_number", "该身份证号码的党员已在本基层党委名册中")
            if id_number in seen:
                raise _field_error("id_number", f"与第{seen[id_number]}行的身份证号码重复")
            if id_number:
                seen[id_number] = row.number
            members.add_member(org.id, data)  # added even beside other problems: the caller rolls all back
        except DomainError as error:
            problems += _messages(error, row, sheet)
        if problems:
            result.errors += [f"第{row.number}行：{text}" for text in problems]
        else:
            result.imported += 1
    return result


def _row_problems(row: SheetRow, sheet: Sheet) -> list[str]:
    """What the schema cannot say about a row: cells beyond the header, a gender it does not spell as 男/女."""
    problems = []
    if row.extra is not None:
        problems.append(f"表头之外还有数据“{row.extra}”")
    gender = row.cells.get("gender", "")
    if gender and gender.lower() not in GENDERS:
        problems.append(f"性别须填“男”或“女”（{sheet.headers['gender']}）")
    return problems


def _body(row: SheetRow) -> dict[str, Any]:
    """The row as the JSON body ``POST /members`` would receive: blank cells are left out."""
    body: dict[str, Any] = {}
    for column, text in row.cells.items():
        if text == "" or (column == "gender" and text.lower() not in GENDERS):
            continue  # a blank cell is no value; an unknown gender is reported by _row_problems
        body[column] = GENDERS[text.lower()] if column == "gender" else text
    return body


def _field_error(column: str, message: str) -> DomainError:
    return ValidationFailed(fields={column: [message]})


def _messages(error: DomainError, row: SheetRow, sheet: Sheet) -> list[str]:
    """The error's messages in the pages' language (web.forms translates marshmallow's), each naming its column
    as the file's header wrote it."""
    found = problem(error).fields or {"_schema": [error.message]}
    texts = []
    for column, messages in found.items():
        label = sheet.headers.get(column)
        for message in messages:
            text = message.rstrip("。")
            if column == "id_number" and column in row.numeric:
                text += "；身份证号码须以文本格式保存，数字格式会丢失末几位"
            texts.append(f"{text}（{label}）" if label else text)
    return texts

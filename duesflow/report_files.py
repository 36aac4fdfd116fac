"""The summary report as files people open in Excel or WPS: CSV (UTF-8 with a BOM, so Excel reads the Chinese)
and XLSX (openpyxl). Pure: a ``Summary`` in, bytes out."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from .money import format_amount
from .services.reports import GROUPING_NAMES, Summary
from .workflow import STATE_NAMES

if TYPE_CHECKING:
    from openpyxl.cell import Cell

CSV_MIMETYPE = "text/csv"
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
AMOUNT_FORMAT = "#,##0.00"

# A cell starting with one of these is read by spreadsheets as a formula (CSV/XLSX injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def headers(summary: Summary) -> list[str]:
    """The header row: the grouping's code and name, the count and the amount."""
    return ["代码", GROUPING_NAMES[summary.group_by], "笔数", "金额（元）"]


def title(summary: Summary) -> str:
    """``2026年 自愿多交党费汇总（按转交渠道，状态：已开具收据）``."""
    scope = f"，状态：{STATE_NAMES.get(summary.state, summary.state)}" if summary.state else ""
    return f"{summary.year}年 自愿多交党费汇总（按{GROUPING_NAMES[summary.group_by]}{scope}）"


def filename(summary: Summary, extension: str) -> str:
    state = f"-{summary.state}" if summary.state else ""
    return f"duesflow-summary-{summary.year}-{summary.group_by}{state}.{extension}"


def looks_like_formula(value: str) -> bool:
    """Whether a spreadsheet would read typed ``value`` as a formula: the one rule both exports neutralise."""
    return value.startswith(_FORMULA_START)


def csv_text(value: str) -> str:
    """A CSV field of typed text: quoted with ``'`` when it looks like a formula, so that Excel shows it as text."""
    return "'" + value if looks_like_formula(value) else value


def xlsx_text(cell: Cell, value: str) -> None:
    """Put typed text into ``cell`` as a text cell (data type ``s``), never a formula: openpyxl reads a value
    starting with ``=`` as one; one that looks like a formula also keeps Excel's quote prefix, so that editing
    the cell in Excel does not turn it into one either."""
    cell.value = value
    cell.data_type = "s"
    if looks_like_formula(value):
        cell.quotePrefix = True


def summary_csv(summary: Summary) -> bytes:
    """The summary as CSV: a header row, one row per group, and the total (合计)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers(summary))
    for row in summary.rows:
        writer.writerow([csv_text(row.key), csv_text(row.name), row.count, format_amount(row.amount)])
    writer.writerow(["", "合计", summary.count, format_amount(summary.amount)])
    return out.getvalue().encode("utf-8-sig")


def summary_xlsx(summary: Summary) -> bytes:
    """The summary as a one-sheet workbook: a title, the header row, the groups and the total; amounts are
    numbers (written from their decimal text, never through a float) shown with two decimals."""
    from openpyxl import Workbook  # imported where used (duesflow.spreadsheets, _xlsx_lines)
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "汇总"
    sheet.append([title(summary)])
    sheet["A1"].font = Font(bold=True)
    sheet.append(headers(summary))
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in summary.rows:
        sheet.append([None, None, row.count, row.amount])
        for cell, value in zip(sheet[sheet.max_row][:2], (row.key, row.name), strict=True):
            xlsx_text(cell, value)
    sheet.append([None, "合计", summary.count, summary.amount])
    sheet[sheet.max_row][1].font = Font(bold=True)
    for (cell,) in sheet.iter_rows(min_row=3, min_col=4, max_col=4):
        cell.number_format = AMOUNT_FORMAT
    for column, width in zip("ABCD", (10, 40, 10, 18), strict=True):
        sheet.column_dimensions[column].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()

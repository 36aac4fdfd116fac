"""Reading a table from a CSV (UTF-8, with or without BOM) or XLSX (first worksheet) file: the header row names
the columns (in Chinese or English), every other row is data. Shared by the member import and the batch entry of
payments; it knows columns only as the caller's mapping of header labels to field names."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

READABLE_SUFFIXES = (".csv", ".xlsx")


class ImportRefused(Exception):
    """The file cannot be read at all (not a row-level problem)."""


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


@dataclass(frozen=True)
class Layout:
    """What a file must look like: the accepted header labels (lower case) and the field each one fills; the
    fields that must have a column (any one of each group); what the rows hold, for messages."""

    columns: Mapping[str, str]
    required: Sequence[tuple[str, ...]]
    rows_are: str

    def label(self, field: str) -> str:
        """The first Chinese label of ``field``."""
        return next(label for label, name in self.columns.items() if name == field and not label.isascii())


def read_sheet(source: Path | IO[bytes], layout: Layout, *, filename: str | None = None) -> Sheet:
    """The header and data rows of a CSV or XLSX file (a path, or an open binary file and its ``filename``)."""
    name = filename if filename is not None else str(source)
    suffix = Path(name).suffix.lower()
    if suffix not in READABLE_SUFFIXES:
        raise ImportRefused("只能导入 .csv（UTF-8 编码）或 .xlsx 文件。")
    lines = _csv_lines(source) if suffix == ".csv" else _xlsx_lines(source)
    header_line = next(lines, None)
    if header_line is None:
        labels = "、".join(layout.label(group[0]) for group in layout.required)
        raise ImportRefused(f"文件是空的：第1行应为表头（{labels}……）。")
    headers = _headers([text for text, _ in header_line], layout)
    rows = []
    for number, line in enumerate(lines, start=2):
        if all(text == "" for text, _ in line):
            continue  # blank lines are common at the end of a sheet
        cells = {column: line[index][0] for index, column in headers.items() if index < len(line)}
        numeric = frozenset(column for index, column in headers.items() if index < len(line) and line[index][1])
        extra = next((text for index, (text, _) in enumerate(line) if index not in headers and text), None)
        rows.append(SheetRow(number, cells, extra, numeric))
    if not rows:
        raise ImportRefused(f"文件中只有表头，没有{layout.rows_are}数据。")
    return Sheet({column: header_line[index][0] for index, column in headers.items()}, rows)


def _headers(labels: list[str], layout: Layout) -> dict[int, str]:
    """Column index → field; refuses unknown, repeated or missing columns."""
    found: dict[int, str] = {}
    unknown = []
    for index, label in enumerate(labels):
        if label == "":
            continue
        column = layout.columns.get(label.strip().lower())
        if column is None:
            unknown.append(label)
        elif column in found.values():
            raise ImportRefused(f"表头中“{label}”一列重复。")
        else:
            found[index] = column
    if unknown:
        accepted = "、".join(dict.fromkeys(label for label in layout.columns if not label.isascii()))
        raise ImportRefused(f"不认识的列：{'、'.join(unknown)}。可用的列：{accepted}（或对应的英文列名）。")
    for group in layout.required:
        if not set(group) & set(found.values()):
            named = "或".join(f"“{layout.label(field)}”（{field}）" for field in group)
            raise ImportRefused(f"表头中缺少{named}一列。")
    return found


def _csv_lines(source: Path | IO[bytes]) -> Iterator[list[tuple[str, bool]]]:
    raw = source.read_bytes() if isinstance(source, Path) else source.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRefused("CSV 文件不是 UTF-8 编码。请在 Excel 中“另存为 → CSV UTF-8（逗号分隔）”后再导入。"
                            ) from None
    try:
        for line in csv.reader(io.StringIO(text, newline="")):
            yield [(cell.strip(), False) for cell in line]
    except csv.Error as error:  # a NUL byte, a field beyond the size limit
        raise ImportRefused(f"无法读取 CSV 文件：{error}") from None


def _xlsx_lines(source: Path | IO[bytes]) -> Iterator[list[tuple[str, bool]]]:
    # openpyxl (and the numpy it looks for) is imported where a workbook is read or written, not with the package:
    # every gunicorn worker and `flask` command would otherwise pay for it at start (docs/testing.md)
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(source, read_only=True, data_only=True)
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

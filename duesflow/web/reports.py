"""The reports dashboard: the yearly summary as a bar chart drawn on the server (inline SVG: markup, no script, so
the Content-Security-Policy holds), a table, and the CSV and XLSX downloads of the same summary."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask import render_template, request

from .. import schemas
from ..api.framework import load
from ..api.reports import summary_download
from ..errors import DomainError
from ..models import User
from ..receipts.capitals import format_yuan
from ..report_files import title
from ..services.reports import GROUPING_NAMES, REPORT_ROLES, Summary, SummaryRow, summarize
from ..timeutil import beijing_today
from ..workflow import State
from . import bp
from .common import login_required
from .forms import FormProblem, problem

DEFAULT_GROUPING = "month"
FIRST_YEAR = 2008  # the regulation on party dues in force since April 2008 (中组发〔2008〕3号)

# Chart geometry, in SVG user units (the SVG scales to the width of the page).
CHART_WIDTH = 720
LABEL_WIDTH = 230
VALUE_WIDTH = 150
BAR_HEIGHT = 20
ROW_HEIGHT = 30
LABEL_CHARS = 14


@dataclass(frozen=True)
class Bar:
    label: str
    full_label: str
    value: str
    count: int
    y: int
    width: int

    @property
    def text_y(self) -> int:
        return self.y + BAR_HEIGHT - 5


@dataclass(frozen=True)
class BarChart:
    """Horizontal bars, one per row of the summary, their lengths proportional to the amounts."""

    width: int
    height: int
    label_width: int
    bars: list[Bar]


def bar_chart(rows: list[SummaryRow]) -> BarChart:
    """The geometry of the chart of ``rows`` (amounts); the longest bar fills the space between labels and values."""
    span = CHART_WIDTH - LABEL_WIDTH - VALUE_WIDTH
    largest = max((row.amount for row in rows), default=Decimal(0))
    bars = []
    for index, row in enumerate(rows):
        length = int(span * row.amount / largest) if largest > 0 else 0
        label = row.name if len(row.name) <= LABEL_CHARS else row.name[:LABEL_CHARS - 1] + "…"
        bars.append(Bar(label, row.name, format_yuan(row.amount), row.count, 10 + index * ROW_HEIGHT,
                        max(length, 1 if row.amount > 0 else 0)))
    return BarChart(CHART_WIDTH, 20 + len(rows) * ROW_HEIGHT, LABEL_WIDTH, bars)


def _query() -> dict[str, Any]:
    """The page's selectors as the API's query: this year and the default grouping unless chosen."""
    query = {name: request.args[name] for name in ("year", "group_by", "state") if request.args.get(name)}
    query.setdefault("year", str(beijing_today().year))
    query.setdefault("group_by", DEFAULT_GROUPING)
    return query


@bp.get("/reports")
@login_required(*REPORT_ROLES)
def reports(user: User) -> Any:
    query = _query()
    summary: Summary | None = None
    failure: FormProblem | None = None
    try:
        params = load(schemas.SummaryQuery, query)
        summary = summarize(user, params["year"], params["group_by"], params.get("state"))
    except DomainError as error:
        failure = problem(error)
    this_year = beijing_today().year
    return render_template(
        "reports.html", user=user, query=query, summary=summary, problem=failure,
        chart=bar_chart(summary.rows) if summary else None, title=title(summary) if summary else "统计报表",
        years=list(range(this_year, FIRST_YEAR - 1, -1)), groupings=GROUPING_NAMES,
        states=[state.value for state in State],
    ), failure.status if failure else 200


@bp.get("/reports/summary.<any(csv, xlsx):file_format>")
@login_required(*REPORT_ROLES)
def report_download(user: User, file_format: str) -> Any:
    params = load(schemas.SummaryQuery, _query())
    return summary_download(summarize(user, params["year"], params["group_by"], params.get("state")), file_format)

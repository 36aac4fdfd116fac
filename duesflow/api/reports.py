"""Reports (SPEC §9): the yearly summary as JSON, CSV or XLSX."""

from __future__ import annotations

from typing import Any

from flask import current_app

from .. import schemas
from ..errors import Forbidden
from ..report_files import CSV_MIMETYPE, XLSX_MIMETYPE, filename, summary_csv, summary_xlsx
from ..services.reports import Summary, require_report_role, summarize
from . import bp
from .framework import current_user, endpoint, read_query


def summary_view(summary: Summary) -> dict[str, Any]:
    return {
        "rows": [{"key": row.key, "name": row.name, "count": row.count, "amount": row.amount}
                 for row in summary.rows],
        "total": {"count": summary.count, "amount": summary.amount},
    }


def summary_download(summary: Summary, file_format: str) -> Any:
    """The summary as an attachment (``csv`` or ``xlsx``); shared by this API and the dashboard page."""
    if file_format == "csv":
        content, mimetype = summary_csv(summary), CSV_MIMETYPE
    else:
        content, mimetype = summary_xlsx(summary), XLSX_MIMETYPE
    return current_app.response_class(
        content,
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{filename(summary, file_format)}"',
                 "Cache-Control": "no-store"},
    )


@bp.get("/reports/summary")
@endpoint(summary="Payments collected in a year over the caller's subtree, counted and summed by channel, org "
                  "(the caller's direct sub-orgs), state or month; format=csv|xlsx downloads it "
                  "(clerk, reviewer, central)",
          query=schemas.SummaryQuery, response=schemas.SummaryOut, errors=(Forbidden,),
          alternatives=(CSV_MIMETYPE, XLSX_MIMETYPE))
def report_summary() -> Any:
    user = current_user()
    require_report_role(user)
    params = read_query(schemas.SummaryQuery)
    summary = summarize(user, params["year"], params["group_by"], params.get("state"))
    if params["format"] != "json":
        return summary_download(summary, params["format"])
    return summary_view(summary)

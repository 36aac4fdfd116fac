"""Central's pages: money an individual sent directly (refused, never receipted, SPEC §6) and the access log of
personal data."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select

from .. import schemas
from ..api.framework import load
from ..errors import DomainError
from ..extensions import db
from ..models import DirectRemittance, User
from ..services import access_log
from ..services.remittances import record_direct_remittance
from ..timeutil import beijing_today
from ..workflow import Role
from . import bp
from .common import login_required
from .forms import FormProblem, problem, validated

REMITTANCE_FIELDS = {"remitter_name": "text", "amount": "text", "received_on": "text", "reference": "optional",
                     "note": "optional"}


def _page(user: User, form: dict[str, Any], failure: FormProblem | None = None) -> Any:
    rows = db.session.scalars(select(DirectRemittance).order_by(DirectRemittance.id.desc()).limit(200))
    return render_template("direct_remittances.html", user=user, remittances=list(rows), form=form,
                           problem=failure, today=beijing_today().isoformat()), failure.status if failure else 200


@bp.get("/direct-remittances")
@login_required(Role.CENTRAL)
def direct_remittances(user: User) -> Any:
    return _page(user, {"received_on": beijing_today().isoformat()})


@bp.post("/direct-remittances")
@login_required(Role.CENTRAL)
def record_remittance(user: User) -> Any:
    try:
        remittance = record_direct_remittance(user, validated(schemas.DirectRemittanceCreate, REMITTANCE_FIELDS))
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        return _page(user, request.form, problem(error))
    flash(f"已登记 {remittance.remitter_name} 的直接汇款：不予接收，不开具收据，请退回汇款人。")
    return redirect(url_for("web.direct_remittances"))


@bp.get("/access-log")
@login_required(Role.CENTRAL)
def access_log_page(user: User) -> Any:
    params = load(schemas.AccessLogQuery, {name: request.args[name]
                                           for name in ("member_id", "viewer_id", "cursor") if request.args.get(name)})
    rows, next_cursor = access_log.views_page(params)
    return render_template("access_log.html", user=user, views=rows, next_cursor=next_cursor,
                           member_id=params.get("member_id"), viewer_id=params.get("viewer_id"))

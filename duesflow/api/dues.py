"""The regular dues calculator (SPEC §9): what a member owes each month under the 2008 regulation."""

from __future__ import annotations

from typing import Any

from .. import permissions, schemas
from ..dues import DuesCategory, RegularDues, regular_dues
from ..errors import Forbidden
from ..workflow import Role
from . import bp
from .framework import current_user, endpoint, read_query

# A helper for the people who check regular dues before accepting extra dues; admins and members have no use.
CALCULATOR_ROLES = (Role.CLERK, Role.REVIEWER, Role.CENTRAL)


def dues_view(dues: RegularDues) -> dict[str, Any]:
    return {"rate": None if dues.rate is None else str(dues.rate), "monthly_dues": dues.monthly_dues,
            "monthly_dues_max": dues.monthly_dues_max, "rule": dues.rule}


def calculate(params: dict[str, Any]) -> RegularDues:
    """The dues for a query already validated by ``schemas.DuesQuery`` (API and payment entry page)."""
    return regular_dues(DuesCategory(params["category"]), params.get("monthly_income"))


@bp.get("/dues/regular")
@endpoint(summary="Regular monthly dues under the 2008 regulation, by category and after-tax monthly income or "
                  "pension (clerk, reviewer, central)",
          query=schemas.DuesQuery, response=schemas.DuesOut, errors=(Forbidden,))
def regular_dues_calculator() -> Any:
    permissions.require_role(current_user(), *CALCULATOR_ROLES)
    return dues_view(calculate(read_query(schemas.DuesQuery)))

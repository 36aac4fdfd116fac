"""The regular dues helper on the payment entry page: a plain GET form (no script) whose query is checked by the
API's ``schemas.DuesQuery`` and answered by the same calculator as ``GET /api/v1/dues/regular``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import request

from .. import schemas
from ..api.dues import calculate
from ..api.framework import load
from ..dues import CATEGORY_NAMES, RegularDues
from ..errors import DomainError
from .forms import FormProblem, problem

QUERY_FIELDS = ("monthly_income", "category")


@dataclass(frozen=True)
class DuesPanel:
    """What the helper shows: the query as typed, and either the dues or why they could not be worked out."""

    query: dict[str, str]
    dues: RegularDues | None = None
    problem: FormProblem | None = None

    @property
    def categories(self) -> dict[Any, str]:
        return CATEGORY_NAMES

    @property
    def rate_percent(self) -> str | None:
        """The rate as people write it: ``0.5%``, ``1.5%``."""
        if self.dues is None or self.dues.rate is None:
            return None
        return f"{(self.dues.rate * 100).normalize():f}%"

    @property
    def status(self) -> int:
        return self.problem.status if self.problem else 200


def dues_panel() -> DuesPanel:
    """The helper for this request: empty until its form was sent (``category`` in the query string)."""
    query = {name: request.args[name].strip() for name in QUERY_FIELDS if request.args.get(name, "").strip()}
    if "category" not in request.args:
        return DuesPanel(query)
    try:
        return DuesPanel(query, calculate(load(schemas.DuesQuery, query)))
    except DomainError as error:
        return DuesPanel(query, problem=problem(error))

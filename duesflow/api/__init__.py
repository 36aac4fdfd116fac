"""The JSON API, /api/v1."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from . import auth_views, dues, members, meta, orgs, payments, remittances, reports, users  # noqa: E402,F401

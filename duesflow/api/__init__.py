"""The JSON API, /api/v1."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from . import (  # noqa: E402,F401
    access_log,
    auth_views,
    delivery,
    dues,
    members,
    meta,
    orgs,
    payment_batch,
    payments,
    refunds,
    remittances,
    reports,
    security,
    transfers,
    users,
)

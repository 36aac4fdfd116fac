"""Server-rendered pages (Chinese): login and the public verify page, and the pages of every role."""

from flask import Blueprint

bp = Blueprint("web", __name__)

from . import account, admin, central, clerk, common, operations, pages, payments, reports, security, session  # noqa: E402,F401,I001

"""Server-rendered pages (Chinese). This issue ships /login and the public /verify page."""

from flask import Blueprint

bp = Blueprint("web", __name__)

from . import pages  # noqa: E402,F401

"""The sessions blueprint: log in, who-am-I, log out."""

from flask import Blueprint

bp = Blueprint("sessions", __name__, url_prefix="/api/v1/auth")

from app.sessions import views  # noqa: E402,F401  (registers the routes)

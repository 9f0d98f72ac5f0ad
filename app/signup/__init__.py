"""The signup blueprint: admin and customer sign-up."""

from flask import Blueprint

bp = Blueprint("signup", __name__, url_prefix="/api/v1/auth")

from app.signup import views  # noqa: E402,F401  (registers the routes)

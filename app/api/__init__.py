"""The HTTP layer: one module per blueprint, the strict body reader, the response helpers
and the OpenAPI declarations. Everything below it (use cases, data) is flat in app/."""

from flask import Flask

from app.api import (
    health,
    lifecycle,
    metrics,
    mfa,
    openapi,
    platform,
    profile,
    sessions,
    signup,
    teams,
)

BLUEPRINTS = (
    signup.bp,
    sessions.bp,
    mfa.bp,
    lifecycle.bp,
    profile.bp,
    teams.bp,
    platform.bp,
    health.bp,
    openapi.bp,
    metrics.bp,
)


def register_blueprints(app: Flask) -> None:
    """Mount every endpoint."""
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)

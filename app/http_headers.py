"""The security headers every answer carries, said once: Flask's after-request hook, the
/verify fast path and gunicorn's own error pages all write these."""

from typing import Protocol

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (("X-Content-Type-Options", "nosniff"),)


class _Headers(Protocol):
    """What the hook's headers offer (werkzeug's Headers, a dict)."""

    def setdefault(self, key: str, default: str) -> str: ...


def add_security_headers(headers: _Headers) -> None:
    """Set each security header a response does not set itself."""
    for name, value in SECURITY_HEADERS:
        headers.setdefault(name, value)

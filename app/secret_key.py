"""SECRET_KEY: required and strong in production; generated once in development; and the
one derivation of every secret the service makes from it."""

import hashlib
import hmac
import logging
import os
import secrets

from flask import Flask, current_app

from config import MIN_SECRET_KEY_BYTES, MIN_SECRET_KEY_DISTINCT, ConfigError

log = logging.getLogger(__name__)

SECRET_KEY_FILE = "secret_key"


def configure_secret_key(app: Flask) -> None:
    """Require a strong SECRET_KEY; development may generate one in the instance folder."""
    key = app.config.get("SECRET_KEY")
    if not key and app.config["GENERATE_SECRET_KEY"]:
        key = app.config["SECRET_KEY"] = load_or_create_instance_secret(app.instance_path)
        log.warning("SECRET_KEY is not set: using the generated key kept in the instance folder")
    check_secret_key(key)


def check_secret_key(key: str | None) -> None:
    """Raise ConfigError (one line, for the operator) unless the key is usable."""
    if not key:
        raise ConfigError("SECRET_KEY is not set; set it to a random string of 32+ bytes")
    advice = "e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
    size = len(key.encode())
    if size < MIN_SECRET_KEY_BYTES:
        raise ConfigError(
            f"SECRET_KEY is too short ({size} bytes); use at least "
            f"{MIN_SECRET_KEY_BYTES} random bytes, {advice}"
        )
    if len(set(key)) < MIN_SECRET_KEY_DISTINCT:
        raise ConfigError(f"SECRET_KEY is not random enough; {advice}")


def load_or_create_instance_secret(instance_path: str) -> str:
    """Read the instance folder's secret key, creating it atomically the first time."""
    os.makedirs(instance_path, mode=0o700, exist_ok=True)
    path = os.path.join(instance_path, SECRET_KEY_FILE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, encoding="ascii") as existing:
            return existing.read().strip()
    with os.fdopen(fd, "w", encoding="ascii") as created:
        key = secrets.token_urlsafe(48)
        created.write(key)
    return key


def derived_key(context: bytes) -> bytes:
    """A secret of its own for one use, derived from SECRET_KEY: HMAC-SHA256 of the use's
    context (a token credential's key, a link purpose, the idempotency fingerprints). A
    copy of the database alone holds none of them; changing SECRET_KEY changes them all."""
    secret_key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret_key, context, hashlib.sha256).digest()

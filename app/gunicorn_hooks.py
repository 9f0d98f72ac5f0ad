"""gunicorn's server hooks and its JSON logger, typed and checked by mypy; gunicorn.conf.py
keeps the settings and names these (gunicorn ships no type information: the objects it
hands over are typed here by what the hooks use of them)."""

from __future__ import annotations

import http
import os
import shutil
import socket
from typing import Any, Protocol

from gunicorn import glogging, util
from prometheus_client import multiprocess

from app.error_handlers import BY_STATUS
from app.errors import JSON_MIMETYPE, BadRequest
from app.extensions import db
from app.http_headers import SECURITY_HEADERS
from app.mail import EXTENSION_KEY as MAIL_SENDER


class _Config(Protocol):
    """What the hooks use of gunicorn's Config."""

    workers: int
    threads: int
    worker_connections: int
    worker_class_str: str
    settings: dict[str, Any]

    def set(self, name: str, value: object) -> None: ...


class _Log(Protocol):
    def warning(self, message: str, *args: object) -> None: ...


class _App(Protocol):
    def wsgi(self) -> Any: ...


class _Server(Protocol):
    """What the hooks use of gunicorn's Arbiter."""

    cfg: _Config
    log: _Log
    app: _App


class _Worker(Protocol):
    """What the hooks use of a gunicorn worker."""

    pid: int
    app: _App


class JsonLogger(glogging.Logger):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's logger, except that a logging configuration does not switch gunicorn's
    own access log on: the app writes one JSON line per request already."""

    def _compute_access_log_enabled(self) -> bool:
        return bool(self.cfg.accesslog)


def start(server: _Server, default_threads: int) -> None:
    """on_starting: every run starts with empty metrics files (left-overs would be added
    in); the connection cap follows the threads as finally configured; the per-worker
    limits are announced."""
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)
    follow_threads(server.cfg, default_threads)
    warn_of_per_worker_limits(server)


def warn_of_per_worker_limits(server: _Server) -> None:
    """In production, abuse limits kept in memory:// are counted by each worker alone:
    with N workers a client gets up to N times each limit. Say so once, at start-up."""
    app = server.app.wsgi()  # loaded already (preload_app): the app's own settings
    config = getattr(app, "config", {})
    if (
        config.get("ENV_NAME") == "production"
        and config.get("RATELIMIT_ENABLED")
        and str(config.get("RATELIMIT_STORAGE_URI", "")).startswith("memory://")
        and server.cfg.workers > 1
    ):
        server.log.warning(
            "abuse limits are counted per worker: RATELIMIT_STORAGE_URI is memory:// with "
            "%d workers, so a client gets up to %d times each limit; set "
            "RATELIMIT_STORAGE_URI=redis://... to make them exact",
            server.cfg.workers,
            server.cfg.workers,
        )


def follow_threads(cfg: _Config, default_threads: int) -> None:
    """`--threads 8` on the command line (or in GUNICORN_CMD_ARGS) means 8 connections per
    worker too; other worker classes (gevent, eventlet) keep gunicorn's own default, as
    for them worker_connections is their whole concurrency. An explicit
    GUNICORN_WORKER_CONNECTIONS, or a --worker-connections other than the settings'
    value, is left alone."""
    if "GUNICORN_WORKER_CONNECTIONS" in os.environ or cfg.worker_connections != default_threads:
        return
    if cfg.worker_class_str in ("gthread", "sync"):  # sync with threads runs as gthread
        cfg.set("worker_connections", cfg.threads)
    else:
        cfg.set("worker_connections", cfg.settings["worker_connections"].default)


def child_exit(_server: _Server, worker: _Worker) -> None:
    """Let prometheus_client drop a dead worker's live samples."""
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def post_fork(_server: _Server, worker: _Worker) -> None:
    """Give each worker its own connection pool (never share sockets across a fork), and
    start its mail sender (a thread with its own database connection)."""
    app = worker.app.wsgi()
    extensions = getattr(app, "extensions", {})
    if "sqlalchemy" in extensions:  # the benchmark's floor app has none
        with app.app_context():
            db.engine.dispose(close=False)
    if MAIL_SENDER in extensions and app.config["MAIL_SENDER_ENABLED"]:
        extensions[MAIL_SENDER].start()


def worker_exit(_server: _Server, worker: _Worker) -> None:
    """Let the mail sender finish the mail in hand (an unfinished one is sent again later:
    its claim runs out)."""
    sender = getattr(worker.app.wsgi(), "extensions", {}).get(MAIL_SENDER)
    if sender is not None:
        sender.stop(seconds=5)


def write_json_error(sock: socket.socket, status_int: int, _reason: str, _message: str) -> None:
    """gunicorn's error writer, answering in the envelope (the detail is not echoed).
    The status line's phrase is the standard one (gunicorn says "Bad Request" for 501)."""
    error = BY_STATUS.get(status_int, BadRequest)()
    body = error.body()
    security = "".join(f"{name}: {value}\r\n" for name, value in SECURITY_HEADERS)
    head = (
        f"HTTP/1.1 {status_int} {http.HTTPStatus(status_int).phrase}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {JSON_MIMETYPE}\r\n"
        f"{security}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, (head + body).encode("latin-1"))


def answer_refusals_in_the_envelope() -> None:
    """Requests gunicorn refuses before the app sees them (a bad request line, a URI or
    headers over the limits, a broken chunked body) get the contract's JSON envelope too,
    not gunicorn's HTML page: gunicorn's workers write those answers with
    util.write_error."""
    util.write_error = write_json_error

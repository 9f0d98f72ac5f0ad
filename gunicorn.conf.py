"""gunicorn settings for Lumyri accounts (`gunicorn -c gunicorn.conf.py wsgi:app`).

Every value can be overridden from the environment or the command line.
"""

import atexit
import http
import multiprocessing
import os
import shutil
import tempfile

from gunicorn import glogging, util

# Files written on every request live in memory (tmpfs) where the system has one: the
# metrics files below (memory-mapped, updated by every request) and gunicorn's worker
# heartbeat files, as gunicorn's FAQ advises (--worker-tmp-dir /dev/shm: on a
# disk-backed /tmp a heartbeat can block a worker). Nothing in them outlives the server.
SHM = "/dev/shm"
IN_MEMORY_TMP = SHM if os.path.isdir(SHM) and os.access(SHM, os.W_OK) else None
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or IN_MEMORY_TMP

# prometheus_client's multiprocess mode: every worker writes its samples to files in this
# folder and /metrics adds them up. It must be set before the app imports the client.
# A folder made here is removed when the process that made it (gunicorn's master) exits,
# also when it stops at start-up (a bad configuration); never by a worker.
METRICS_DIR_MADE_HERE = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    METRICS_DIR_MADE_HERE = tempfile.mkdtemp(prefix="lumyri-metrics-", dir=IN_MEMORY_TMP)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = METRICS_DIR_MADE_HERE
MADE_BY_PID = os.getpid()


def remove_metrics_dir():
    """Remove the metrics folder this file made, in the process that made it."""
    if METRICS_DIR_MADE_HERE and os.getpid() == MADE_BY_PID:
        shutil.rmtree(METRICS_DIR_MADE_HERE, ignore_errors=True)


atexit.register(remove_metrics_dir)

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# Chosen from measurement (bench/README.md, 2 cores): gthread, one worker per core,
# 4 threads each, one hash in flight per worker (ARGON2_MAX_CONCURRENT's default,
# cores / workers). argon2 releases the GIL while hashing, so the other threads validate,
# reject and talk to the database meanwhile.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Each worker holds only as many connections as it has threads, and answers each request
# with "Connection: close": the requests waiting beyond that stay in the kernel's accept
# queue and go, in arrival order, to whichever worker frees a thread first. With kept-alive
# connections a client stays on the worker it first reached, so one worker could hold 6
# of 8 busy clients while the other held 2, and their requests waited 3 times longer
# (p99 up to 6 x p50 at concurrency 8; bench/README.md). gunicorn warns at start-up
# that "no keepalived connections can be handled": that is the intent. Idle or slow
# clients could hold these few connections, so the service must sit behind a proxy that
# buffers whole requests (nginx, a cloud load balancer), as gunicorn advises (README,
# Deployment). on_starting() makes this follow --threads given on the command line.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", threads))
timeout = 30
graceful_timeout = 20
# With no kept-alive connections, this is how long a new connection may wait for its
# request to start arriving (gthread) before it is closed.
keepalive = 5
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
# Load the app once in the master: a bad configuration stops gunicorn before any worker
# starts, with its one-line reason. No database connection is opened at import time.
preload_app = True
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# gunicorn's own lines (start, workers booting and exiting, warnings) are JSON like the
# app's: one handler on the root logger, with the app's formatter; gunicorn's loggers
# hand their records to it. (The one plain line left is "refusing to start", written by
# wsgi.py before logging exists, and Python's own output if the interpreter crashes.)
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": loglevel.upper(), "handlers": ["json"]},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
    },
    "handlers": {
        "json": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "formatters": {"json": {"()": "app.observability.JsonFormatter"}},
}


class JsonLogger(glogging.Logger):
    """gunicorn's logger, except that a logging configuration does not switch gunicorn's
    own access log on: the app writes one JSON line per request already."""

    def _compute_access_log_enabled(self):
        return bool(self.cfg.accesslog)


logger_class = JsonLogger
# gunicorn 27 opens a control socket at ~/.gunicorn/gunicorn.ctl by default: every
# instance on a host would share that path, and stopping one removes another's socket.
# Off unless GUNICORN_CONTROL_SOCKET gives this instance a path of its own.
CONTROL_SOCKET = os.environ.get("GUNICORN_CONTROL_SOCKET")
control_socket_disable = not CONTROL_SOCKET
if CONTROL_SOCKET:
    control_socket = CONTROL_SOCKET


def on_starting(server):
    """Start every run with empty metrics files (left-overs would be added in); let the
    connection cap follow the threads as finally configured."""
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)
    follow_threads(server.cfg)
    warn_of_per_worker_limits(server)


def warn_of_per_worker_limits(server):
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


def follow_threads(cfg):
    """`--threads 8` on the command line (or in GUNICORN_CMD_ARGS) means 8 connections per
    worker too; other worker classes (gevent, eventlet) keep gunicorn's own default, as
    for them worker_connections is their whole concurrency. An explicit
    GUNICORN_WORKER_CONNECTIONS, or a --worker-connections other than this file's value,
    is left alone."""
    if "GUNICORN_WORKER_CONNECTIONS" in os.environ or cfg.worker_connections != threads:
        return
    if cfg.worker_class_str in ("gthread", "sync"):  # sync with threads runs as gthread
        cfg.set("worker_connections", cfg.threads)
    else:
        cfg.set("worker_connections", cfg.settings["worker_connections"].default)


def child_exit(server, worker):
    """Let prometheus_client drop a dead worker's live samples."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_fork(server, worker):
    """Give each worker its own connection pool (never share sockets across a fork), and
    start its mail sender (a thread with its own database connection)."""
    from app.extensions import db
    from app.mail import EXTENSION_KEY

    app = worker.app.wsgi()
    extensions = getattr(app, "extensions", {})
    if "sqlalchemy" in extensions:  # the benchmark's floor app has none
        with app.app_context():
            db.engine.dispose(close=False)
    if EXTENSION_KEY in extensions and app.config["MAIL_SENDER_ENABLED"]:
        extensions[EXTENSION_KEY].start()


def worker_exit(server, worker):
    """Let the mail sender finish the mail in hand (an unfinished one is sent again later:
    its claim runs out)."""
    from app.mail import EXTENSION_KEY

    sender = getattr(worker.app.wsgi(), "extensions", {}).get(EXTENSION_KEY)
    if sender is not None:
        sender.stop(seconds=5)


# Requests gunicorn refuses before the app sees them (a bad request line, a URI or
# headers over the limits, a broken chunked body) get the contract's JSON envelope too,
# not gunicorn's HTML page: the code and message come from app.errors, where each is
# defined, and the body from its envelope function. gunicorn's workers write those
# answers with util.write_error.
def write_json_error(sock, status_int, _reason, _message):
    """gunicorn's error writer, answering in the envelope (the detail is not echoed).
    The status line's phrase is the standard one (gunicorn says "Bad Request" for 501)."""
    from app.errors import BY_STATUS, BadRequest  # loaded already: preload_app

    error = BY_STATUS.get(status_int, BadRequest)()
    body = error.body()
    head = (
        f"HTTP/1.1 {status_int} {http.HTTPStatus(status_int).phrase}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, (head + body).encode("latin-1"))


util.write_error = write_json_error

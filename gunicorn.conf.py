"""gunicorn settings for Lumyri accounts (`gunicorn -c gunicorn.conf.py wsgi:app`).

Every value can be overridden from the environment or the command line.
"""

import atexit
import multiprocessing
import os
import shutil
import tempfile

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
# connections a client stays on the worker it first reached, so one worker could hold
# most of the busy clients and their requests waited far longer than the others'
# (bench/README.md, "Fair waits"). gunicorn warns at start-up
# that "no keepalived connections can be handled": that is the intent. Idle or slow
# clients could hold these few connections, so the service must sit behind a proxy that
# buffers whole requests (nginx, a cloud load balancer), as gunicorn advises
# (docs/deployment.md). on_starting() makes this follow --threads given on the command line.
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


# gunicorn 27 opens a control socket at ~/.gunicorn/gunicorn.ctl by default: every
# instance on a host would share that path, and stopping one removes another's socket.
# Off unless GUNICORN_CONTROL_SOCKET gives this instance a path of its own.
CONTROL_SOCKET = os.environ.get("GUNICORN_CONTROL_SOCKET")
control_socket_disable = not CONTROL_SOCKET
if CONTROL_SOCKET:
    control_socket = CONTROL_SOCKET


# The hooks live in a typed module of the app (mypy checks it), imported only now: the
# metrics folder above must be set before the app imports prometheus_client.
from app import gunicorn_hooks  # noqa: E402

logger_class = gunicorn_hooks.JsonLogger
child_exit = gunicorn_hooks.child_exit
post_fork = gunicorn_hooks.post_fork
worker_exit = gunicorn_hooks.worker_exit
gunicorn_hooks.answer_refusals_in_the_envelope()


def on_starting(server):
    """Empty metrics files, the connection cap, the per-worker limits' warning."""
    gunicorn_hooks.start(server, default_threads=threads)

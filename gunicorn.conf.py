"""gunicorn settings for Lumyri accounts (`gunicorn -c gunicorn.conf.py wsgi:app`).

Every value can be overridden from the environment or the command line.
"""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# argon2 releases the GIL while hashing, so a few threads per process keep the cores
# busy while other requests validate or wait on the database.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 30
graceful_timeout = 20
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


def post_fork(server, worker):
    """Give each worker its own connection pool (never share sockets across a fork)."""
    from app.extensions import db

    app = worker.app.wsgi()
    with app.app_context():
        db.engine.dispose(close=False)

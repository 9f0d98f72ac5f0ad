"""The work a sign-up and a log-in do outside the hash, in-process, and where it goes.

`python bench/overhead.py [--profile owasp|default] [--requests N] [--top N]`
(`make bench-overhead`). Builds the app as production does (APP_ENV=production, metrics
in multiprocess mode, one JSON access line per request, written to /dev/null), on a
fresh SQLite file or on BENCH_DATABASE_URL, and sends it admin sign-ups, customer
sign-ups and log-ins straight through its WSGI callable, one at a time (no HTTP server:
what gunicorn adds is measured by `make bench` against its floor). For each kind it
prints the median time of a request, the time spent in argon2 during it, and the rest,
next to the time of one bare hash with the same parameters measured in the same run
(issue 17's target: the rest at most 10 % of an OWASP-profile hash). Then cProfile's
top contributors to the rest (argon2's own time left out).
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import secrets
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.profiles import PROFILES, settings_of  # noqa: E402

PASSWORD = "Password@123"
TARGET = 0.10


def environment(profile, work):
    """The service's production settings, as `make bench` runs it."""
    os.environ.update(settings_of(profile))
    os.environ.update(
        APP_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(48),
        # The sender thread is not started here (gunicorn's post_fork starts it): the
        # outbox row is written, nothing is sent.
        SMTP_URL="smtp://127.0.0.1:9",
        DATABASE_URL=os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{work}/overhead.db",
        RATELIMIT_ENABLED="false",
        PROMETHEUS_MULTIPROC_DIR=os.path.join(work, "metrics"),
        INSTANCE_PATH=os.path.join(work, "instance"),
    )
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"])


class TimedHasher:
    """The app's PasswordHasher, with the time of every hash and verify added up."""

    def __init__(self, hasher):
        self.hasher, self.seconds = hasher, 0.0

    def _timed(self, method, *args):
        started = time.perf_counter()
        try:
            return method(*args)
        finally:
            self.seconds += time.perf_counter() - started

    def hash(self, password):
        return self._timed(self.hasher.hash, password)

    def verify(self, stored, password):
        return self._timed(self.hasher.verify, stored, password)

    def __getattr__(self, name):
        return getattr(self.hasher, name)


def wsgi_call(app, path, body):
    """POST a JSON body straight to the WSGI app; the status code."""
    data = body.encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(data)),
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.input": io.BytesIO(data),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    status = []
    chunks = app(environ, lambda line, headers, exc_info=None: status.append(line))
    b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    return int(status[0].split()[0])


def signup_body(tag, number):
    return json.dumps(
        {
            "first_name": "Bench",
            "last_name": "Mark",
            "email": f"overhead-{tag}-{number}@bench.example",
            "password": PASSWORD,
        }
    )


def requests_of(tag, count):
    """(kind, path, body, expected status) of each measured request."""
    kinds = []
    for number in range(count):
        kinds.append(
            ("admin sign-up", "/api/v1/auth/admin/signup", signup_body(tag + "a", number), 201)
        )
    for number in range(count):
        kinds.append(
            (
                "customer sign-up",
                "/api/v1/auth/customer/signup",
                signup_body(tag + "c", number),
                201,
            )
        )
    for number in range(count):
        body = json.dumps(
            {"email": f"overhead-{tag}c-{number}@bench.example", "password": PASSWORD}
        )
        kinds.append(("log-in", "/api/v1/auth/login", body, 200))
    return kinds


def bare_hash_seconds(params, count):
    """The median time of one hash (and one verify) with these parameters, here."""
    from argon2 import PasswordHasher

    hasher = PasswordHasher(**params)
    stored = hasher.hash(PASSWORD)
    hashes, verifies = [], []
    for _ in range(count):
        started = time.perf_counter()
        hasher.hash(PASSWORD)
        hashes.append(time.perf_counter() - started)
        started = time.perf_counter()
        hasher.verify(stored, PASSWORD)
        verifies.append(time.perf_counter() - started)
    return statistics.median(hashes), statistics.median(verifies)


def measure(app, timed, requests, profiler=None):
    """{kind: [(total seconds, hash seconds), ...]} for the requests, in order."""
    taken = {}
    for kind, path, body, expected in requests:
        timed.seconds = 0.0
        if profiler:
            profiler.enable()
        started = time.perf_counter()
        status = wsgi_call(app, path, body)
        total = time.perf_counter() - started
        if profiler:
            profiler.disable()
        if status != expected:
            raise SystemExit(f"{kind}: {status}, expected {expected}")
        taken.setdefault(kind, []).append((total, timed.seconds))
    return taken


def top_contributors(profiler, count):
    """cProfile's table by own time, argon2's hashing left out."""
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    for key in list(stats.stats):
        filename, _, name = key
        if "argon2" in filename or "argon2" in name:
            del stats.stats[key]
    stats.sort_stats("tottime").print_stats(count)
    return stream.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="owasp")
    parser.add_argument("--requests", type=int, default=60, help="of each kind, measured")
    parser.add_argument("--warmup", type=int, default=10, help="of each kind, not measured")
    parser.add_argument("--top", type=int, default=25, help="contributors to print")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="lumyri-overhead-") as work:
        environment(args.profile, work)
        import logging

        from flask_migrate import upgrade

        from app import create_app, passwords
        from app.observability import JsonFormatter

        handler = logging.StreamHandler(open(os.devnull, "w"))
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(handlers=[handler], level=logging.INFO, force=True)
        app = create_app()
        with app.app_context():
            upgrade()
        timed = TimedHasher(app.extensions[passwords.EXTENSION_KEY])
        app.extensions[passwords.EXTENSION_KEY] = timed

        tag = secrets.token_hex(4)
        measure(app, timed, requests_of(tag + "w", args.warmup))
        taken = measure(app, timed, requests_of(tag, args.requests))
        profiler = cProfile.Profile()
        measure(app, timed, requests_of(tag + "p", args.requests // 2 or 1), profiler)
        bare_hash, bare_verify = bare_hash_seconds(PROFILES[args.profile], args.requests // 2 or 1)

    database = "postgres" if os.environ.get("BENCH_DATABASE_URL") else "sqlite"
    print(
        f"argon2 profile {args.profile} {PROFILES[args.profile]}, {database}, "
        f"{args.requests} requests of each kind"
    )
    print(f"a bare hash: {bare_hash * 1000:.2f} ms, a bare verify: {bare_verify * 1000:.2f} ms\n")
    print(
        f"{'request':<18}{'median ms':>10}{'in argon2':>11}{'the rest':>10}{'rest/hash':>11}  target"
    )
    report = {
        "profile": args.profile,
        "database": database,
        "bare_hash_ms": bare_hash * 1000,
        "bare_verify_ms": bare_verify * 1000,
        "kinds": {},
    }
    for kind, figures in taken.items():
        total = statistics.median(t for t, _ in figures)
        in_hash = statistics.median(h for _, h in figures)
        rest = statistics.median(t - h for t, h in figures)
        share = rest / bare_hash
        met = "met" if share <= TARGET else "NOT met"
        print(
            f"{kind:<18}{total * 1000:>10.2f}{in_hash * 1000:>11.2f}{rest * 1000:>10.2f}"
            f"{share:>11.3f}  <= {TARGET} {met}"
        )
        report["kinds"][kind] = {
            "median_ms": total * 1000,
            "argon2_ms": in_hash * 1000,
            "rest_ms": rest * 1000,
            "rest_over_hash": share,
            "met": share <= TARGET,
        }
    print(
        "\nTop contributors outside argon2 (cProfile, own time, all kinds together; "
        "cProfile slows Python code, so the times are larger than above):"
    )
    print(top_contributors(profiler, args.top))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    return 0 if all(kind["met"] for kind in report["kinds"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())

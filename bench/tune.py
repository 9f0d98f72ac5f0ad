"""Tuning from measurement: for several gunicorn, argon2 and database settings, sign-up and
log-in at concurrency 8 against the argon2 limits, and the rejection path against the
bare-Flask floor, in one run. Writes bench/results/tuning.{json,md}.

    .venv/bin/python bench/tune.py [--seconds 10] [--only VARIANT ...]
"""

import argparse
import json
import os
import secrets
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.load import load_tool  # noqa: E402
from bench.run import (  # noqa: E402
    LOGIN,
    LOGIN_BODY,
    SIGNUP,
    SIGNUP_BODY,
    argon2_limit,
    argon2_params,
    create_login_accounts,
    gunicorn,
    loaded,
    machine,
    measure_rejection,
    migrate,
    service_env,
)

OWASP = {"ARGON2_TIME_COST": "2", "ARGON2_MEMORY_COST": "19456", "ARGON2_PARALLELISM": "1"}
# Every variant starts from the defaults (gunicorn.conf.py, config.py) and changes these.
VARIANTS = {
    "default: gthread 2x4, conns = threads, 1 hash/worker": {},
    "gthread 2x4, kept-alive connections": {"GUNICORN_WORKER_CONNECTIONS": "1000"},
    "gthread 2x2, conns = threads": {"GUNICORN_THREADS": "2"},
    "gthread 2x8, conns = threads": {"GUNICORN_THREADS": "8"},
    "gthread 1x8, 2 hashes/worker": {
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "8",
        "ARGON2_MAX_CONCURRENT": "2",
    },
    "gthread 2x4, 2 hashes/worker": {"ARGON2_MAX_CONCURRENT": "2"},
    "sync, 2 workers": {"GUNICORN_WORKER_CLASS": "sync"},
    "sync, 4 workers": {"GUNICORN_WORKER_CLASS": "sync", "WEB_CONCURRENCY": "4"},
    "SQLite synchronous=FULL": {"SQLITE_SYNCHRONOUS": "FULL"},
    "OWASP argon2 (19 MiB, t=2, p=1)": OWASP,
}


def main():
    """Measure each variant; print and write the comparison."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    tool, rows, limits = load_tool(), [], {}
    for name, settings in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        row = measure_variant(args, tool, limits, name, settings)
        rows.append(row)
        print(
            f"{name}: sign-up {row['signup_ratio']:.2f} (p99/p50 {row['p99_over_p50']:.2f}), "
            f"log-in {row['login_ratio']:.2f}, rejection {row['rejection_ratio']:.2f}",
            flush=True,
        )
    lines = [
        f"Machine: {machine()['cpu']}, {machine()['cores']} cores; load: {tool}; sign-up and "
        f"log-in at concurrency 8, {args.seconds:.0f} s each; rejection path and floor at "
        "concurrency 32, 2 alternating rounds each.",
        "",
        "| variant | hash limit /s | sign-up /s | ratio | p50 ms | p99 ms | p99/p50 "
        "| log-in ratio | rejection /s | floor /s | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        s, rj, fl = row["signup_c8"], row["rejection"], row["floor"]
        lines.append(
            f"| {row['variant']} | {row['hash_limit']:.1f} | {s['throughput']:.1f} | "
            f"{row['signup_ratio']:.2f} | {s['p50_ms']:.0f} | {s['p99_ms']:.0f} | "
            f"{row['p99_over_p50']:.2f} | {row['login_ratio']:.2f} | {rj['throughput']:.0f} | "
            f"{fl['throughput']:.0f} | {row['rejection_ratio']:.2f} |"
        )
    out = os.path.join(ROOT, "bench", "results")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tuning.json"), "w") as handle:
        json.dump({"machine": machine(), "tool": tool, "rows": rows}, handle, indent=2)
    with open(os.path.join(out, "tuning.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def measure_variant(args, tool, limits, name, settings):
    """Sign-up and log-in at concurrency 8, and the rejection path against the floor,
    with one variant's settings."""
    work = tempfile.mkdtemp(prefix="lumyri-tune-")
    env = service_env(os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{work}/tune.db", settings)
    params = argon2_params(env)
    key = json.dumps(params, sort_keys=True)
    if key not in limits:
        limits[key] = {m: argon2_limit(m, params, 6) for m in ("hash", "verify")}
    limit = limits[key]
    migrate(env)
    tag = secrets.token_hex(3)
    with gunicorn("wsgi:app", env, os.path.join(work, "service.log"), "/readyz") as (
        port,
        process,
    ):
        create_login_accounts(port, tag, 16)
        signup = loaded(
            process, port, SIGNUP["admin"], SIGNUP_BODY, 201, 8, args.seconds, tag, tool=tool
        )
        login = loaded(process, port, LOGIN, LOGIN_BODY, 200, 8, args.seconds, tag, 16, tool=tool)
        rejection, floor = measure_rejection(process, port, env, work, tool, tag, 2, 6, 32)
    return {
        "variant": name,
        "settings": settings,
        "hash_limit": limit["hash"],
        "verify_limit": limit["verify"],
        "signup_c8": signup,
        "login_c8": login,
        "rejection": rejection,
        "floor": floor,
        "signup_ratio": signup["throughput"] / limit["hash"],
        "login_ratio": login["throughput"] / limit["verify"],
        "p99_over_p50": signup["p99_ms"] / max(signup["p50_ms"], 1e-9),
        "rejection_ratio": rejection["throughput"] / floor["throughput"],
    }


if __name__ == "__main__":
    main()

"""Tuning from measurement: sign-up and log-in at concurrency 8 against the argon2 limits,
for several gunicorn and argon2 settings, in one run. Writes bench/results/tuning.{json,md}.

    .venv/bin/python bench/tune.py [--seconds 10]
"""

import argparse
import json
import os
import secrets
import subprocess
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
    service_env,
)

OWASP = {"ARGON2_TIME_COST": "2", "ARGON2_MEMORY_COST": "19456", "ARGON2_PARALLELISM": "1"}
VARIANTS = {
    "gthread 2x4, cap 2/worker": {
        "GUNICORN_WORKER_CLASS": "gthread",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "4",
        "ARGON2_MAX_CONCURRENT": "2",
    },
    "gthread 2x4, cap 1/worker": {
        "GUNICORN_WORKER_CLASS": "gthread",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "4",
        "ARGON2_MAX_CONCURRENT": "1",
    },
    "sync 2 workers": {
        "GUNICORN_WORKER_CLASS": "sync",
        "WEB_CONCURRENCY": "2",
        "ARGON2_MAX_CONCURRENT": "1",
    },
    "sync 4 workers": {
        "GUNICORN_WORKER_CLASS": "sync",
        "WEB_CONCURRENCY": "4",
        "ARGON2_MAX_CONCURRENT": "1",
    },
    "gthread 2x4, cap 1, SQLite synchronous=NORMAL": {
        "GUNICORN_WORKER_CLASS": "gthread",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "4",
        "ARGON2_MAX_CONCURRENT": "1",
        "SQLITE_SYNCHRONOUS": "NORMAL",
    },
    "OWASP argon2, gthread 2x4, cap 1": {
        "GUNICORN_WORKER_CLASS": "gthread",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "4",
        "ARGON2_MAX_CONCURRENT": "1",
        **OWASP,
    },
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
        work = tempfile.mkdtemp(prefix="lumyri-tune-")
        env = service_env(
            os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{work}/tune.db", settings
        )
        params = argon2_params(env)
        key = json.dumps(params, sort_keys=True)
        if key not in limits:
            limits[key] = {m: argon2_limit(m, params, 6) for m in ("hash", "verify")}
        limit = limits[key]
        migrate = [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"]
        subprocess.run(migrate, cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
        tag = secrets.token_hex(3)
        log = os.path.join(work, "service.log")
        with gunicorn("wsgi:app", env, log, "/readyz") as (port, process):
            create_login_accounts(port, tag, 16)
            signup = loaded(
                process, port, SIGNUP["admin"], SIGNUP_BODY, 201, 8, args.seconds, tag, tool=tool
            )
            login = loaded(
                process, port, LOGIN, LOGIN_BODY, 200, 8, args.seconds, tag, 16, tool=tool
            )
        row = {
            "variant": name,
            "settings": settings,
            "hash_limit": limit["hash"],
            "verify_limit": limit["verify"],
            "signup_c8": signup,
            "login_c8": login,
            "signup_ratio": signup["throughput"] / limit["hash"],
            "login_ratio": login["throughput"] / limit["verify"],
        }
        rows.append(row)
        print(
            f"{name}: sign-up {row['signup_ratio']:.2f}, log-in {row['login_ratio']:.2f} "
            f"(p99/p50 {signup['p99_ms'] / signup['p50_ms']:.2f})",
            flush=True,
        )
    lines = [
        f"Machine: {machine()['cpu']}, {machine()['cores']} cores; load: {tool}; concurrency 8, "
        f"{args.seconds:.0f} s each.",
        "",
        "| variant | hash limit /s | sign-up /s | ratio | p50 ms | p99 ms | verify limit /s | log-in /s | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        s, lg = row["signup_c8"], row["login_c8"]
        lines.append(
            f"| {row['variant']} | {row['hash_limit']:.1f} | {s['throughput']:.1f} | {row['signup_ratio']:.2f} | "
            f"{s['p50_ms']:.0f} | {s['p99_ms']:.0f} | {row['verify_limit']:.1f} | {lg['throughput']:.1f} | {row['login_ratio']:.2f} |"
        )
    out = os.path.join(ROOT, "bench", "results")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tuning.json"), "w") as handle:
        json.dump({"machine": machine(), "tool": tool, "rows": rows}, handle, indent=2)
    with open(os.path.join(out, "tuning.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

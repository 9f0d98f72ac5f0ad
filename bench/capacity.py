"""The capacity table of docs/performance.md, from committed benchmark results.

`python bench/capacity.py [RESULTS.json ...]` (default: every bench/results/latest*.json)
prints, for each run, sign-ups and log-ins per second per core (the lower of admin and
customer sign-up, each at the better of concurrency 8 and 32), then how many cores and
instances of the measured size a peak of 100 and of 1,000 sign-ups a second needs, and
the Postgres connections those instances may hold at most (SQLite serves one machine:
its rows give the cores only).

Assumptions, stated in the output: throughput grows with cores (sign-up is bound by
argon2, which is per core, and stateless instances share nothing but the database); an
instance is the measured machine (its cores, gunicorn.conf.py's workers and threads);
each worker holds at most one connection per thread plus one for its mail sender.
"""

import glob
import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEAKS = (100, 1000)


def per_second(results, prefix):
    """The better of concurrency 8 and 32 for one kind of request."""
    return max(results[f"{prefix}_c{c}"]["throughput"] for c in (8, 32))


def capacity(report):
    """One row of figures from one run's report."""
    results, cores = report["results"], report["machine"]["cores"]
    signup = min(per_second(results, "signup_admin"), per_second(results, "signup_customer"))
    login = per_second(results, "login")
    gunicorn = report["gunicorn"]
    connections_per_instance = gunicorn["workers"] * (gunicorn["threads"] + 1)
    row = {
        "profile": report.get("profile", "default"),
        "argon2": report["argon2"],
        "database": report["database"],
        "cores": cores,
        "signup_per_core": signup / cores,
        "login_per_core": login / cores,
        "connections_per_instance": connections_per_instance,
    }
    for peak in PEAKS:
        needed = math.ceil(peak / row["signup_per_core"])
        instances = math.ceil(needed / cores)
        row[f"cores_{peak}"] = needed
        row[f"instances_{peak}"] = instances
        row[f"connections_{peak}"] = instances * connections_per_instance
    return row


def table(rows):
    """The rows as Markdown."""
    lines = [
        "| argon2 profile | database | sign-ups/s per core | log-ins/s per core "
        + "".join(
            f"| {p:,} sign-ups/s: cores, {rows[0]['cores']}-core instances, Postgres connections "
            for p in PEAKS
        )
        + "|",
        "|---|---|---:|---:|" + "---:|" * len(PEAKS),
    ]
    for row in rows:
        cells = [
            f"{row['profile']} (t={row['argon2']['time_cost']}, "
            f"m={row['argon2']['memory_cost'] // 1024} MiB, p={row['argon2']['parallelism']})",
            row["database"],
            f"{row['signup_per_core']:.1f}",
            f"{row['login_per_core']:.1f}",
        ]
        for peak in PEAKS:
            if row["database"] != "postgres":  # SQLite is one machine's: no instances
                cells.append(f"{row[f'cores_{peak}']:,}, one machine only, -")
                continue
            cells.append(
                f"{row[f'cores_{peak}']:,}, {row[f'instances_{peak}']:,}, "
                f"≤ {row[f'connections_{peak}']:,}"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(paths):
    paths = paths or sorted(glob.glob(os.path.join(ROOT, "bench", "results", "latest*.json")))
    rows = []
    for path in paths:
        with open(path) as handle:
            rows.append(capacity(json.load(handle)))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

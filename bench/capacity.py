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

import argparse
import glob
import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEAKS = (100, 1000)
# The CPU plan (`--cpu`): the loads of docs/capacity.md, by path.
CPU_LOADS = (("signup", 100), ("signup", 1000), ("verify", 10000))
# Cores are planned busy at most this share of the time (queueing grows fast above it).
UTILISATION = 0.75
# PgBouncer's server connections per Postgres core needed: one backend running on each
# core and one waiting on a round trip to its client (an assumption, not a measurement).
CONNECTIONS_PER_PG_CORE = 2


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


def _worst(cpu, prefixes, field):
    """The highest per-request figure (`field` of per_request_ms, or a top-level map of
    cpu such as outside_hash_ms) among the keys with one of `prefixes`, concurrency 1
    excepted (an idle core's wake-ups weigh on it; not a load one plans for)."""
    values = []
    for key, per_request in cpu["per_request_ms"].items():
        if key.startswith(prefixes) and not key.endswith("_c1"):
            values.append(cpu[field][key] if field in cpu else per_request[field])
    if not values:
        raise KeyError(f"no CPU figures for {prefixes} in the report")
    return max(values)


def cpu_costs(report):
    """What one request costs, in CPU ms, from a run's "cpu" section (`make bench`): for
    sign-up the service's CPU outside the hash (mail included), Postgres's and the SMTP
    sink's; for /verify the service's and Postgres's. The worse of admin and customer
    sign-up and of the concurrencies above 1."""
    cpu = report["cpu"]
    return {
        "bare_hash_ms": cpu["bare_ms"]["hash"],
        "signup_outside_ms": _worst(cpu, ("signup_",), "outside_hash_ms"),
        "signup_postgres_ms": _worst(cpu, ("signup_",), "postgres"),
        "signup_sink_ms": _worst(cpu, ("signup_",), "sink"),
        "verify_ms": _worst(cpu, ("verify_",), "service"),
        "verify_postgres_ms": _worst(cpu, ("verify_",), "postgres"),
    }


def cpu_plan(rate, service_ms, postgres_ms, cores_per_instance, utilisation=UTILISATION):
    """Cores, instances and Postgres for `rate` requests a second costing `service_ms` of
    the service's CPU and `postgres_ms` of Postgres's each:

        service cores   = ceil(rate × service_ms / 1000 / utilisation)
        instances       = ceil(service cores / cores per instance)
        Postgres cores  = ceil(rate × postgres_ms / 1000 / utilisation)
        PgBouncer server connections = CONNECTIONS_PER_PG_CORE × Postgres cores
    """
    cores = math.ceil(rate * service_ms / 1000 / utilisation)
    postgres_cores = max(1, math.ceil(rate * postgres_ms / 1000 / utilisation))
    return {
        "rate": rate,
        "service_ms": service_ms,
        "cores": cores,
        "instances": math.ceil(cores / cores_per_instance),
        "postgres_cores": postgres_cores,
        "server_connections": CONNECTIONS_PER_PG_CORE * postgres_cores,
    }


def cpu_rows(costs, hash_ms_by_profile, cores_per_instance, gunicorn):
    """The plan of each CPU_LOADS entry for each argon2 profile, a sign-up costing
    hash_ms (that profile's bare hash) + the measured work outside it; /verify hashes
    nothing, so its rows are the same for every profile. The client connections to
    PgBouncer are what the instances may open: workers × (threads + 1) each."""
    per_instance = gunicorn["workers"] * (gunicorn["threads"] + 1)
    rows = []
    for profile, hash_ms in hash_ms_by_profile.items():
        for path, rate in CPU_LOADS:
            if path == "signup":
                service_ms = hash_ms + costs["signup_outside_ms"]
                postgres_ms = costs["signup_postgres_ms"]
            else:
                service_ms, postgres_ms = costs["verify_ms"], costs["verify_postgres_ms"]
            plan = cpu_plan(rate, service_ms, postgres_ms, cores_per_instance)
            plan.update(
                profile=profile,
                path=path,
                client_connections=plan["instances"] * per_instance,
            )
            rows.append(plan)
    return rows


def cpu_table(rows, cores_per_instance):
    """The CPU plan as Markdown."""
    lines = [
        f"| argon2 profile | load | service CPU per request (ms) | service cores | "
        f"{cores_per_instance}-core instances | client connections to PgBouncer (at most) | "
        "Postgres cores | PgBouncer server connections |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        load = f"{row['rate']:,} {'sign-ups' if row['path'] == 'signup' else '/verify'}/s"
        lines.append(
            f"| {row['profile']} | {load} | {row['service_ms']:.1f} | {row['cores']:,} | "
            f"{row['instances']:,} | {row['client_connections']:,} | {row['postgres_cores']:,} | "
            f"{row['server_connections']:,} |"
        )
    return "\n".join(lines)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="*", help="bench/results/*.json (default: latest*)")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="the CPU plan of docs/capacity.md from the first report's CPU figures",
    )
    parser.add_argument(
        "--hash-ms",
        action="append",
        default=[],
        metavar="PROFILE=MS",
        help="a profile's bare hash CPU in ms (default: the report's own profile)",
    )
    args = parser.parse_args(argv)
    paths = args.results or sorted(
        glob.glob(os.path.join(ROOT, "bench", "results", "latest*.json"))
    )
    reports = []
    for path in paths:
        with open(path) as handle:
            reports.append(json.load(handle))
    if not args.cpu:
        print(table([capacity(report) for report in reports]))
        return 0
    report = next(r for r in reports if "cpu" in r)
    costs = cpu_costs(report)
    hashes = {report.get("profile", "default"): costs["bare_hash_ms"]}
    hashes.update((name, float(ms)) for name, ms in (h.split("=", 1) for h in args.hash_ms))
    cores = report["machine"]["cores"]
    print(json.dumps(costs, indent=2))
    print(cpu_table(cpu_rows(costs, hashes, cores, report["gunicorn"]), cores))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

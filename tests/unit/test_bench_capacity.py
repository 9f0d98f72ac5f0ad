"""bench/capacity.py: docs/performance.md's capacity table from a benchmark report."""

import pytest

from bench.capacity import capacity, cpu_costs, cpu_plan, cpu_rows, cpu_table, table


def report(database, signup_admin, signup_customer, login, cores=2):
    """A report with the figures capacity() reads (the better of c8 and c32 counts)."""
    results = {}
    for prefix, (c8, c32) in (
        ("signup_admin", signup_admin),
        ("signup_customer", signup_customer),
        ("login", login),
    ):
        results[f"{prefix}_c8"] = {"throughput": c8}
        results[f"{prefix}_c32"] = {"throughput": c32}
    return {
        "results": results,
        "machine": {"cores": cores},
        "gunicorn": {"workers": 2, "threads": 4},
        "profile": "owasp",
        "argon2": {"time_cost": 2, "memory_cost": 19456, "parallelism": 1},
        "database": database,
    }


def test_cores_instances_and_connections_from_the_slower_sign_up():
    row = capacity(report("postgres", (50.0, 60.0), (55.0, 40.0), (70.0, 80.0)))
    assert row["signup_per_core"] == 27.5  # customer's best (55) is below admin's (60)
    assert row["login_per_core"] == 40.0
    assert (row["cores_100"], row["instances_100"], row["connections_100"]) == (4, 2, 20)
    assert (row["cores_1000"], row["instances_1000"], row["connections_1000"]) == (37, 19, 190)
    assert "| 37, 19, ≤ 190 |" in table([row])


def test_sqlite_gives_cores_only():
    row = capacity(report("sqlite", (50.0, 60.0), (55.0, 40.0), (70.0, 80.0)))
    assert "| 4, one machine only, - | 37, one machine only, - |" in table([row])


def cpu_report():
    """A report's "cpu" section as bench/run.py writes it (ms per request)."""

    def parties(service, postgres, sink=0.0):
        return {"service": service, "postgres": postgres, "sink": sink, "loadgen": 0.2}

    per_request = {
        "signup_admin_c1": parties(40.0, 9.0, 1.0),  # concurrency 1: not planned for
        "signup_admin_c8": parties(25.0, 2.0, 1.0),
        "signup_customer_c8": parties(26.0, 2.5, 1.2),
        "login_c8": parties(22.0, 1.0),
        "verify_c32": parties(0.5, 0.01),
        "rejection": parties(1.0, 0.0),
    }
    bare = {"hash": 20.0, "verify": 20.0}
    outside = {
        key: figures["service"] - bare["verify" if key.startswith("login") else "hash"]
        for key, figures in per_request.items()
        if key.startswith(("signup_", "login_"))
    }
    return {
        "bare_ms": bare,
        "per_request_ms": per_request,
        "outside_hash_ms": outside,
        "outside_over_hash": {key: ms / 20.0 for key, ms in outside.items()},
    }


def test_cpu_costs_take_the_worse_sign_up_above_concurrency_1():
    costs = cpu_costs({"cpu": cpu_report()})
    assert costs["signup_outside_ms"] == 6.0  # customer c8; admin c1's 20 ms left out
    assert costs["signup_postgres_ms"] == 2.5
    assert costs["signup_sink_ms"] == 1.2
    assert (costs["verify_ms"], costs["verify_postgres_ms"]) == (0.5, 0.01)
    assert costs["bare_hash_ms"] == 20.0


def test_cpu_plan_formula():
    # 1,000 sign-ups/s × 26 ms = 26 cores busy; at 75 %: 35 cores, 18 two-core instances.
    plan = cpu_plan(1000, 26.0, 2.5, cores_per_instance=2)
    assert (plan["cores"], plan["instances"]) == (35, 18)
    assert plan["postgres_cores"] == 4  # 2.5 cores busy at 75 %
    assert plan["server_connections"] == 8
    assert cpu_plan(100, 0.5, 0.0, 2)["postgres_cores"] == 1  # never under one core


def test_cpu_rows_take_the_profile_as_a_parameter():
    costs = cpu_costs({"cpu": cpu_report()})
    rows = cpu_rows(costs, {"owasp": 20.0, "default": 170.0}, 2, {"workers": 2, "threads": 4})
    by = {(r["profile"], r["path"], r["rate"]): r for r in rows}
    assert by[("owasp", "signup", 100)]["service_ms"] == pytest.approx(26.0)
    assert by[("default", "signup", 100)]["service_ms"] == pytest.approx(176.0)
    assert by[("default", "signup", 1000)]["cores"] == 235  # 176 cores busy / 0.75
    assert by[("default", "signup", 1000)]["client_connections"] == 118 * 10
    assert by[("owasp", "verify", 10000)] == {
        **by[("default", "verify", 10000)],
        "profile": "owasp",
    }  # no hash in /verify
    assert "| default | 1,000 sign-ups/s | 176.0 | 235 | 118 |" in cpu_table(rows, 2)

"""bench/capacity.py: docs/performance.md's capacity table from a benchmark report."""

from bench.capacity import capacity, table


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

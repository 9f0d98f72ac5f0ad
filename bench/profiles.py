"""The argon2 profiles the benchmark runs with (`--profile`): the service's default and
the cheapest one commonly recommended, under which the work outside the hash shows most."""

PROFILES = {
    # argon2-cffi's defaults (RFC 9106's low-memory profile): the service's default.
    "default": {"time_cost": 3, "memory_cost": 65536, "parallelism": 4},
    # OWASP's minimum for argon2id (Password Storage Cheat Sheet): t=2, m=19 MiB, p=1.
    "owasp": {"time_cost": 2, "memory_cost": 19456, "parallelism": 1},
}


def settings_of(profile):
    """The service's ARGON2_* settings for a profile."""
    params = PROFILES[profile]
    return {
        "ARGON2_TIME_COST": str(params["time_cost"]),
        "ARGON2_MEMORY_COST": str(params["memory_cost"]),
        "ARGON2_PARALLELISM": str(params["parallelism"]),
    }

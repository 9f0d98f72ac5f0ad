"""Prometheus metrics, correct across gunicorn worker processes: their definitions and
the per-request counting (app.api.metrics serves them).

With PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py sets it), every worker writes its
samples to files there and /metrics adds them up (prometheus_client's multiprocess mode).
"""

import functools

from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter(
    "lumyri_http_requests",
    "HTTP requests answered, by method, endpoint (route) and status.",
    ["method", "endpoint", "status"],
)
HTTP_DURATION = Histogram(
    "lumyri_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, endpoint and status.",
    ["method", "endpoint", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SIGNUPS = Counter(
    "lumyri_signups",
    "Sign-up attempts by role and outcome (created, duplicate, invalid, rate_limited, "
    "replayed: an idempotent retry answered from the first response).",
    ["role", "outcome"],
)
PASSWORD_HASH_SECONDS = Histogram(
    "lumyri_password_hash_seconds",
    "Time spent computing one argon2id hash.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6),
)
PASSWORD_HASH_CPU_SECONDS = Counter(
    "lumyri_password_hash_cpu_seconds",
    "CPU time argon2id took on the calling thread, by operation (hash, verify): all of "
    "it with ARGON2_PARALLELISM=1; with more lanes, argon2's own threads are not counted.",
    ["operation"],
)

MAILS = Counter(
    "lumyri_mails",
    "Mails by kind and outcome: sent, failed (given up), suppressed (over the per-address "
    "limit), superseded (what it proves changed before it went out), and retried (a failed "
    "attempt that will be tried again).",
    ["kind", "outcome"],
)
TOKEN_CHECKS = Counter(
    "lumyri_token_checks",
    "Tokens checked for the platform's services, by endpoint (verify, introspect) and "
    "outcome (valid, invalid, invalid_client).",
    ["endpoint", "outcome"],
)

# Any token is a method to HTTP: others are counted as OTHER, so a client cannot make up
# new time series (nor grow the cache below) by inventing methods.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# By endpoint; looked up with None too (a request that matched no route).
SIGNUP_ROLES: dict[str | None, str] = {
    "signup.admin_signup": "admin",
    "signup.customer_signup": "customer",
}
SIGNUP_OUTCOMES = {201: "created", 409: "duplicate", 429: "rate_limited"}
REPLAYED = "replayed"


def signup_outcome(status: int, replayed: bool = False) -> str | None:
    """The outcome label of a sign-up answered with this status (None: not counted); a
    retry answered from the first response is `replayed`, whatever that answered."""
    if replayed:
        return REPLAYED
    if status in SIGNUP_OUTCOMES:
        return SIGNUP_OUTCOMES[status]
    if status in (400, 413, 415):
        return "invalid"
    return None


@functools.cache
def _series(
    method: str, endpoint: str | None, status: int, replayed: bool
) -> tuple[Counter, Histogram, Counter | None]:
    """The (request counter, duration histogram, sign-up counter or None) samples of one
    kind of answer, looked up once per process rather than once per request."""
    route = endpoint or "unmatched"
    role = SIGNUP_ROLES.get(endpoint)
    outcome = signup_outcome(status, replayed) if role else None
    return (
        HTTP_REQUESTS.labels(method, route, str(status)),
        HTTP_DURATION.labels(method, route, str(status)),
        SIGNUPS.labels(role, outcome) if outcome else None,
    )


def record_request(
    method: str, endpoint: str | None, status: int, seconds: float, replayed: bool = False
) -> None:
    """Count one answered request (and, for sign-ups, its outcome)."""
    method = method if method in METHODS else "OTHER"
    requests, duration, signups = _series(method, endpoint, status, replayed)
    requests.inc()
    duration.observe(seconds)
    if signups is not None:
        signups.inc()

"""`make bench`: how close the service gets to the argon2 limit, and what it costs.

Starts the service with production settings under gunicorn (SQLite by default, Postgres
when BENCH_DATABASE_URL is set) and measures in one run: the raw argon2 hash and verify
limits, sign-up and log-in throughput and latency at concurrency 1, 8 and 32, the
rejection path next to a bare-Flask floor, and peak memory during a 200-request burst.
Writes bench/results/latest.{json,md,png}. Every load is bounded in time, on loopback.
"""

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.load import burst, load_tool, run_bearer_load, run_load  # noqa: E402
from bench.profiles import PROFILES, settings_of  # noqa: E402

SIGNUP = {"admin": "/api/v1/auth/admin/signup", "customer": "/api/v1/auth/customer/signup"}
LOGIN = "/api/v1/auth/login"
PASSWORD = "Password@123"
SIGNUP_BODY = (
    '{"first_name": "Bench", "last_name": "User", "email": "{{EMAIL}}", "password": "%s"}'
    % PASSWORD
)
LOGIN_BODY = '{"email": "{{ACCOUNT}}", "password": "%s"}' % PASSWORD
INVALID_BODY = '{"first_name": "", "last_name": 7, "email": "nope", "password": "short"}'
# How long the service must stay (nearly) idle before a load starts; shorter in --smoke.
SETTLE_WINDOW = {"seconds": 1.0}
TARGETS = {
    "signup": 0.90,
    "login": 0.90,
    "rejection": 0.65,
    "verify": 0.80,
    "forgot": 0.50,
    "patch_me": 0.50,
    "p99_over_p50": 3.0,
}
# With OWASP's profile, the service's CPU outside the hash per request, as a share of a
# bare hash's CPU with the same parameters (the verification mail's is in a sign-up's).
CPU_TARGETS = {"login": 0.15, "signup": 0.30}
VERIFY = "/api/v1/auth/verify"
MEMBERS = "/api/v1/auth/company/members"
MEMBER_PAGE = 50  # the member list's default limit
# The paths without a hash, each measured next to the floor at the same path in
# bench/floor_app.py. "bearer": with the tokens of make_tokens' accounts. A forgotten
# password is asked for fresh addresses: the same work as for an account's (a look-up, the
# audit row) but the mail, which a flood at known addresses would not get either (the
# per-address mail limit, off here with the other limits, allows 3 an hour).
PLAIN_PATHS = {
    "verify": {"method": "GET", "path": VERIFY, "status": 200, "bearer": True, "body": ""},
    "forgot": {
        "method": "POST",
        "path": "/api/v1/auth/password/forgot",
        "status": 202,
        "bearer": False,
        "body": '{"email": "{{EMAIL}}"}',
    },
    "patch_me": {
        "method": "PATCH",
        "path": "/api/v1/auth/me",
        "status": 200,
        "bearer": True,
        "body": '{"city": "Paris"}',
    },
}


def cores():
    """The cores this process (and so the service) may run on."""
    return len(os.sched_getaffinity(0))


def argon2_params(env):
    """The service's argon2 parameters, as its config reads them."""
    return {
        "time_cost": int(env.get("ARGON2_TIME_COST", 3)),
        "memory_cost": int(env.get("ARGON2_MEMORY_COST", 65536)),
        "parallelism": int(env.get("ARGON2_PARALLELISM", 4)),
    }


def _hash_worker(args):
    """Hash (or verify) in a loop for `seconds`; return how many."""
    mode, params, seconds = args
    from argon2 import PasswordHasher

    hasher = PasswordHasher(**params)
    stored = hasher.hash(PASSWORD)
    done, started = 0, time.monotonic()
    while time.monotonic() < started + seconds:
        if mode == "hash":
            hasher.hash(PASSWORD)
        else:
            hasher.verify(stored, PASSWORD)
        done += 1
    # The last one ends after the deadline: divide by the time really taken.
    return done / (time.monotonic() - started)


def bare_hash_cpu(mode, params, seconds):
    """CPU seconds (this process's, all its threads: argon2's lanes run in threads when
    p > 1) per argon2-cffi hash or verify with `params`, over about `seconds` of calls."""
    from argon2 import PasswordHasher

    hasher = PasswordHasher(**params)
    stored = hasher.hash(PASSWORD)
    calls, started = 0, time.monotonic()
    cpu = time.process_time()
    while calls < 3 or time.monotonic() < started + seconds:
        if mode == "hash":
            hasher.hash(PASSWORD)
        else:
            hasher.verify(stored, PASSWORD)
        calls += 1
    return (time.process_time() - cpu) / calls


def argon2_limit(mode, params, seconds):
    """Raw hashes (or verifications) per second with one process per core."""
    with multiprocessing.get_context("spawn").Pool(cores()) as pool:
        return sum(pool.map(_hash_worker, [(mode, params, seconds)] * cores()))


def free_port():
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(port, path, seconds=60):
    """Poll until the server answers (any status below 500)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as reply:
                if reply.status < 500:
                    return
        except urllib.error.HTTPError as error:
            if error.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not start")


@contextlib.contextmanager
def gunicorn(app, env, log_path, ready_path):
    """Serve `app` with the project's gunicorn.conf.py until the block ends."""
    port = free_port()
    env = {**env, "HOST": "127.0.0.1", "PORT": str(port)}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", app],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        wait_ready(port, ready_path)
        yield port, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def service_env(database_url, overrides):
    """Production settings for the service under test."""
    env = dict(os.environ)
    env.update(
        APP_ENV="production",
        # An SMTP sink on loopback (smtp_sink() starts it): every sign-up's mail goes out.
        SMTP_URL=os.environ.get("BENCH_SMTP_URL", ""),
        SECRET_KEY=secrets.token_urlsafe(48),
        DATABASE_URL=database_url,
        # One client address sends everything: the abuse limits would measure themselves.
        RATELIMIT_ENABLED="false",
        # As behind the shipped gateway, which logs every request itself: no access line
        # for each successful /verify (README, "For the platform's services").
        LOG_VERIFY_REQUESTS="false",
        PYTHONPATH=ROOT,
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(overrides)
    return env


@contextlib.contextmanager
def smtp_sink():
    """aiosmtpd's Sink handler on a free loopback port: accepts every mail, keeps none."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-c",
            "aiosmtpd.handlers.Sink",
            "-l",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ACCOUNTED["sink"] = process.pid
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.1)
        yield f"smtp://127.0.0.1:{port}"
    finally:
        ACCOUNTED["sink"] = None
        process.terminate()
        process.wait(timeout=20)


def settle(process, seconds=60):
    """Wait until the service has worked off what an earlier load left queued (a load
    tool stops sending at its deadline; the server still answers what it accepted):
    the gunicorn processes together use under 10 % of a core for a whole window."""
    window = SETTLE_WINDOW["seconds"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            master = psutil.Process(process.pid)
            members = [master, *master.children(recursive=True)]
            before = sum(sum(p.cpu_times()[:2]) for p in members)
            time.sleep(window)
            used = sum(sum(p.cpu_times()[:2]) for p in members) - before
        except psutil.Error:
            return
        if used < 0.1 * window:
            return


# What CPU accounting needs beyond the service's process: the SMTP sink's pid (set by
# smtp_sink()) and the Postgres database whose backends serve the service (run_all()).
ACCOUNTED = {"sink": None, "database_url": None}


def _cpu(process):
    """user + system CPU seconds of one process (0 if it is gone or unreadable)."""
    try:
        times = process.cpu_times()
        return times.user + times.system
    except psutil.Error:
        return 0.0


def postgres_backends(database_url):
    """The server processes of the connections to the service's database
    (pg_stat_activity's pids for that database, this query's own excepted)."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(database_url).set(drivername="postgresql")
    dsn = url.render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [row[0] for row in rows]


def cpu_snapshot(service):
    """CPU seconds so far of: the service (gunicorn master and all its workers,
    recursively), the Postgres backends of its database, the SMTP sink, and the load
    generator (this process with its reaped children: wrk runs as one and is reaped
    before the load ends; the asyncio client runs here)."""
    snapshot = {"service": {}, "postgres": {}, "sink": 0.0, "loadgen": 0.0}
    try:
        master = psutil.Process(service.pid)
        for member in [master, *master.children(recursive=True)]:
            snapshot["service"][member.pid] = _cpu(member)
    except psutil.Error:
        pass
    if ACCOUNTED["database_url"]:
        with contextlib.suppress(Exception):
            for pid in postgres_backends(ACCOUNTED["database_url"]):
                with contextlib.suppress(psutil.Error):
                    snapshot["postgres"][pid] = _cpu(psutil.Process(pid))
    if ACCOUNTED["sink"]:
        with contextlib.suppress(psutil.Error):
            snapshot["sink"] = _cpu(psutil.Process(ACCOUNTED["sink"]))
    times = psutil.Process().cpu_times()
    snapshot["loadgen"] = times.user + times.system + times.children_user + times.children_system
    return snapshot


def _delta(before, after):
    """CPU used between two {pid: seconds}; a pid new in `after` counts from its start
    (a worker or backend started during the load), one gone is lost (none should go)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def cpu_used(before, after):
    """CPU seconds spent between two snapshots, by party."""
    return {
        "service": _delta(before["service"], after["service"]),
        "postgres": _delta(before["postgres"], after["postgres"]),
        "sink": after["sink"] - before["sink"],
        "loadgen": after["loadgen"] - before["loadgen"],
    }


ARGON2_CPU_METRIC = "lumyri_password_hash_cpu_seconds_total"


def argon2_cpu_seconds(port):
    """The service's own count of the CPU its threads spent in argon2 (the metric
    ARGON2_CPU_METRIC, hash and verify, summed over its workers); None if unreadable."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == ARGON2_CPU_METRIC
    )


def metered(process, load, port=None):
    """Run `load()` against an idle service; its figures, with "cpu": the CPU seconds each
    party spent during it (cpu_used) and the requests answered in it; with the service's
    `port`, also "argon2": the CPU its threads spent in argon2 meanwhile (its own
    metric). The snapshot after is read as the load ends: the requests still in flight
    then (at most one per connection) are not counted as answered though part of their
    work is."""
    settle(process)
    argon2_before = argon2_cpu_seconds(port) if port else None
    before = cpu_snapshot(process)
    figures = load()
    used = cpu_used(before, cpu_snapshot(process))
    figures["cpu"] = {**used, "requests": figures["requests"]}
    if argon2_before is not None:
        argon2_after = argon2_cpu_seconds(port)
        if argon2_after is not None:
            figures["cpu"]["argon2"] = argon2_after - argon2_before
    return figures


def cpu_per_request_ms(figures):
    """CPU milliseconds per answered request, by party (and argon2's inside the service,
    where measured), from a figure's "cpu"."""
    cpu = figures.get("cpu")
    if not cpu or not cpu["requests"]:
        return None
    parties = ("service", "postgres", "sink", "loadgen", "argon2")
    return {party: 1000 * cpu[party] / cpu["requests"] for party in parties if party in cpu}


def loaded(process, port, *args, **kwargs):
    """run_load, starting from an idle service, with the CPU each party spent (argon2's
    too, from the service's metric)."""
    return metered(process, lambda: run_load(port, *args, **kwargs), port)


def tree_rss(process):
    """Resident memory of the gunicorn master and its workers, in MiB, by process."""
    try:
        master = psutil.Process(process.pid)
        members = [master, *master.children(recursive=True)]
        return {p.pid: p.memory_info().rss / 2**20 for p in members}
    except psutil.Error:
        return {}


def peak_memory_during(process, action):
    """(peak total RSS in MiB, peak by process) while `action()` runs."""
    peak_total, peak_by_pid, running = [0.0], {}, [True]

    def sample():
        while running[0]:
            sizes = tree_rss(process)
            peak_total[0] = max(peak_total[0], sum(sizes.values()))
            for pid, size in sizes.items():
                peak_by_pid[pid] = max(peak_by_pid.get(pid, 0), size)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = action()
    finally:
        running[0] = False
        sampler.join()
    return peak_total[0], peak_by_pid, result


def migrate(env):
    """Create the service's schema (and system roles) in the database `env` names."""
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"]
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)


def measure_service(args, env, tag, results, tool):
    """Sign-up, log-in, rejection and memory figures against one gunicorn service."""
    migrate(env)
    with gunicorn("wsgi:app", env, os.path.join(args.work, "service.log"), "/readyz") as (
        port,
        process,
    ):
        create_login_accounts(port, tag, args.accounts)
        probe = LimitProbe(process, argon2_params(env), args.probe_seconds)
        for kind, path in SIGNUP.items():
            for concurrency in args.concurrency:
                results[f"signup_{kind}_c{concurrency}"] = probe.beside(
                    "hash",
                    lambda path=path, kind=kind, concurrency=concurrency: loaded(
                        process,
                        port,
                        path,
                        SIGNUP_BODY,
                        201,
                        concurrency,
                        args.seconds,
                        f"{tag}{kind[0]}{concurrency}",
                        tool=tool,
                    ),
                )
        for concurrency in args.concurrency:
            results[f"login_c{concurrency}"] = probe.beside(
                "verify",
                lambda concurrency=concurrency: loaded(
                    process,
                    port,
                    LOGIN,
                    LOGIN_BODY,
                    200,
                    concurrency,
                    args.seconds,
                    tag,
                    args.accounts,
                    tool=tool,
                ),
            )
        results["rejection"], results["floor"] = measure_rejection(
            process,
            port,
            env,
            args.work,
            tool,
            tag,
            args.rounds,
            args.seconds,
            args.rejection_concurrency,
        )
        results.update(measure_plain(process, port, env, args, tool, tag))
        results.update(measure_members(process, port, env, args, tool))
        settle(process)
        idle = sum(tree_rss(process).values())
        small_peak, _, _ = peak_memory_during(
            process,
            lambda: asyncio.run(
                burst(port, SIGNUP["customer"], SIGNUP_BODY, args.burst // 8 or 1, tag + "s")
            ),
        )
        settle(process)
        peak, by_pid, statuses = peak_memory_during(
            process,
            lambda: asyncio.run(
                burst(port, SIGNUP["customer"], SIGNUP_BODY, args.burst, tag + "b")
            ),
        )
        results["memory"] = {
            "idle_mb": idle,
            "peak_small_burst_mb": small_peak,
            "small_burst": args.burst // 8 or 1,
            "peak_mb": peak,
            "burst": args.burst,
            "burst_non_201": sum(1 for status in statuses if status != 201),
            "processes": len(by_pid),
            "peak_by_process_mb": sorted(by_pid.values(), reverse=True),
        }


class LimitProbe:
    """The argon2 limit measured just before and just after each sign-up or log-in figure
    (with the service idle), so that each figure is set against the machine's speed at
    the time it was taken: on a shared machine that speed drifts by several per cent
    within a run. Consecutive figures of one kind share the measurement between them."""

    def __init__(self, process, params, seconds):
        self.process, self.params, self.seconds, self.last = process, params, seconds, {}

    def measure(self, mode):
        """The limit now, once the service has worked off its queue."""
        settle(self.process)
        self.last[mode] = argon2_limit(mode, self.params, self.seconds)
        return self.last[mode]

    def beside(self, mode, load):
        """Run `load()`; its figures, with the limit around it ("limit", "limit_runs")."""
        before = self.last.get(mode) or self.measure(mode)
        figures = load()
        after = self.measure(mode)
        figures["limit_runs"] = [before, after]
        figures["limit"] = (before + after) / 2
        return figures


def create_login_accounts(port, tag, count):
    """The accounts the log-in load signs in to (login-<tag>-<i>@bench.example)."""
    body = SIGNUP_BODY.replace("{{EMAIL}}", "login-%s-{{N}}@bench.example" % tag)
    for number in range(count):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{SIGNUP['customer']}",
            data=body.replace("{{N}}", str(number)).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert reply.status == 201


def measure_rejection(service, port, env, work, tool, tag, rounds, seconds, concurrency):
    """The rejection path and the bare-Flask floor (same gunicorn settings, same load),
    taken in turns, `rounds` rounds of `seconds / rounds` each, so that a change in the
    machine's speed during the run weighs on both alike. Returns (rejection, floor)."""
    taken = {"rejection": [], "floor": []}
    with gunicorn("bench.floor_app:app", env, os.path.join(work, "floor.log"), "/") as (
        floor_port,
        floor,
    ):
        targets = (
            ("rejection", service, port, SIGNUP["admin"], tag),
            ("floor", floor, floor_port, "/reject", "floor"),
        )
        for _ in range(rounds):
            for name, process, target_port, path, target_tag in targets:
                taken[name].append(
                    loaded(
                        process,
                        target_port,
                        path,
                        INVALID_BODY,
                        400,
                        concurrency,
                        seconds / rounds,
                        target_tag,
                        tool=tool,
                    )
                )
    return combine_rounds(taken["rejection"]), combine_rounds(taken["floor"])


def make_tokens(env, count, path, *options):
    """`count` accounts in the service's database (bench/make_tokens.py: members of
    companies whose roles hold permissions; with "--company", one company of `count`
    members), and a file of access tokens. Its error output, if it fails."""
    command = [sys.executable, os.path.join(ROOT, "bench", "make_tokens.py"), *options]
    run = subprocess.run(
        [*command, str(count), path], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    if run.returncode != 0:
        raise RuntimeError(f"bench/make_tokens.py failed ({run.returncode}):\n{run.stderr[-3000:]}")


def measure_plain(service, port, env, args, tool, tag):
    """The paths without a hash (PLAIN_PATHS) and their floors, taken in turns at each
    concurrency. Returns {"verify_c8": ..., "floor_verify_c8": ..., ...}."""
    tokens = os.path.join(args.work, "tokens.txt")
    make_tokens(env, args.verify_accounts, tokens)
    levels = {
        "verify": args.verify_concurrency,
        "forgot": [args.rejection_concurrency],
        "patch_me": [args.rejection_concurrency],
    }
    taken = {}
    with gunicorn("bench.floor_app:app", env, os.path.join(args.work, "floor-plain.log"), "/") as (
        floor_port,
        floor,
    ):
        targets = (("", service, port, tag), ("floor_", floor, floor_port, tag))
        for name, spec in PLAIN_PATHS.items():
            for concurrency in levels[name]:
                for _ in range(args.rounds):
                    for prefix, process, target_port, target_tag in targets:

                        def load(
                            target_port=target_port, spec=spec, level=concurrency, tag=target_tag
                        ):
                            seconds = args.seconds / args.rounds
                            if spec["bearer"]:
                                return run_bearer_load(
                                    target_port,
                                    spec["method"],
                                    spec["path"],
                                    tokens,
                                    spec["status"],
                                    level,
                                    seconds,
                                    body=spec["body"],
                                    tool=tool,
                                )
                            return run_load(
                                target_port,
                                spec["path"],
                                spec["body"],
                                spec["status"],
                                level,
                                seconds,
                                tag,
                                args.accounts,
                                tool=tool,
                            )

                        figures = metered(process, load)
                        taken.setdefault(f"{prefix}{name}_c{concurrency}", []).append(figures)
    return {key: combine_rounds(figures) for key, figures in taken.items()}


def member_keys(args):
    """The member list's figures: (key, company size, limit), the smallest company first;
    the largest company is also asked for a page as long as the smallest one's (like for
    like: the same rows in the answer)."""
    sizes = sorted(args.member_companies)
    level = args.members_concurrency
    keys = [(f"members_{size}_c{level}", size, None) for size in sizes]
    if sizes[0] < MEMBER_PAGE < sizes[-1]:
        keys.append((f"members_{sizes[-1]}_limit{sizes[0]}_c{level}", sizes[-1], sizes[0]))
    return keys


def measure_members(service, port, env, args, tool):
    """The first page of GET /company/members (the default limit) for companies of each
    size of args.member_companies, asked with an Admin's token; the companies taken in
    turn, `rounds` rounds each, so that a change in the machine's speed weighs on all."""
    tokens = {}
    for size in args.member_companies:
        tokens[size] = os.path.join(args.work, f"company-{size}.txt")
        make_tokens(env, size, tokens[size], "--company")
    taken = {}
    for _ in range(args.rounds):
        for key, size, limit in member_keys(args):
            taken.setdefault(key, []).append(
                metered(
                    service,
                    lambda size=size, limit=limit: run_bearer_load(
                        port,
                        "GET",
                        MEMBERS + (f"?limit={limit}" if limit else ""),
                        tokens[size],
                        200,
                        args.members_concurrency,
                        args.seconds / args.rounds,
                        tool=tool,
                    ),
                )
            )
    out = {}
    for key, size, limit in member_keys(args):
        out[key] = combine_rounds(taken[key])
        out[key].update(company_members=size, page_limit=limit or MEMBER_PAGE)
    return out


def combine_rounds(rounds):
    """One figure from several rounds: all requests over all the time; the median
    round's latencies."""
    middle = sorted(rounds, key=lambda figures: figures["throughput"])[len(rounds) // 2]
    combined = {
        "requests": sum(r["requests"] for r in rounds),
        "throughput": sum(r["requests"] for r in rounds)
        / sum(r["requests"] / r["throughput"] for r in rounds),
        "p50_ms": middle["p50_ms"],
        "p90_ms": middle["p90_ms"],
        "p99_ms": middle["p99_ms"],
        "unexpected": sum(r["unexpected"] for r in rounds),
        "rounds": [r["throughput"] for r in rounds],
    }
    if all("cpu" in r for r in rounds):
        combined["cpu"] = {
            party: sum(r["cpu"][party] for r in rounds)
            for party in ("service", "postgres", "sink", "loadgen", "requests")
        }
    return combined


def ratios(results, env, workers):
    """Each figure against its limit or floor, and the targets."""
    out = {}
    for key, figures in results.items():
        if key.startswith(("signup_", "login_")):  # against the limit measured around it
            out[key] = figures["throughput"] / figures["limit"]
    out["rejection"] = results["rejection"]["throughput"] / results["floor"]["throughput"]
    for key in results:
        if key.startswith(tuple(f"{name}_c" for name in PLAIN_PATHS)):
            out[key] = results[key]["throughput"] / results["floor_" + key]["throughput"]
    members = [key for key in results if key.startswith("members_")]
    if members:  # each against the smallest company's page (member_keys: the first)
        for key in members[1:]:
            out[key] = results[key]["throughput"] / results[members[0]]["throughput"]
    for kind in SIGNUP:
        key = f"signup_{kind}_c8"
        if key in results:
            out[f"p99_over_p50_{kind}_c8"] = results[key]["p99_ms"] / max(
                results[key]["p50_ms"], 1e-9
            )
    memory = results["memory"]
    cap = int(env.get("ARGON2_MAX_CONCURRENT", max(1, cores() // workers)))
    per_hash_mb = argon2_params(env)["memory_cost"] / 1024
    memory["hash_cap_bound_mb"] = memory["idle_mb"] + workers * cap * per_hash_mb
    return out


MODES = ("hash", "verify")


def cpu_report(results, bare):
    """CPU per request by party and path; for sign-up and log-in, the service's CPU
    outside the hash over a bare hash's (a sign-up hashes once, a log-in verifies once),
    and, where the service counted its argon2 CPU, its own work outside argon2 over what
    argon2 took in it (the same hash costs more CPU in a loaded service than alone)."""
    bare_ms = {mode: 1000 * sum(runs) / len(runs) for mode, runs in bare.items()}
    out = {
        "bare_ms": bare_ms,
        "bare_runs_ms": {mode: [1000 * r for r in runs] for mode, runs in bare.items()},
        "per_request_ms": {},
        "outside_hash_ms": {},
        "outside_over_hash": {},
        "outside_argon2_ms": {},
        "outside_over_argon2": {},
    }
    for key, figures in results.items():
        per_request = cpu_per_request_ms(figures) if isinstance(figures, dict) else None
        if per_request is None:
            continue
        out["per_request_ms"][key] = per_request
        mode = (
            "hash" if key.startswith("signup_") else "verify" if key.startswith("login_") else None
        )
        if mode:
            outside = per_request["service"] - bare_ms[mode]
            out["outside_hash_ms"][key] = outside
            out["outside_over_hash"][key] = outside / bare_ms[mode]
            if per_request.get("argon2"):
                own = per_request["service"] - per_request["argon2"]
                out["outside_argon2_ms"][key] = own
                out["outside_over_argon2"][key] = own / per_request["argon2"]
    return out


def cpu_verdicts(cpu):
    """OWASP profile: each sign-up and log-in figure's CPU outside the hash against its
    target, against a bare hash and (where measured) against argon2's CPU in the service
    (figures at concurrency 1 excepted: an idle core's wake-ups weigh on them)."""
    checks = {}
    against = (("of a hash", "outside_over_hash"), ("of argon2 in it", "outside_over_argon2"))
    for label, field in against:
        for key, share in cpu.get(field, {}).items():
            if key.endswith("_c1"):
                continue
            target = CPU_TARGETS["signup" if key.startswith("signup_") else "login"]
            checks[f"{key} CPU outside the hash <= {target:.0%} {label}"] = share <= target
    return checks


def verdicts(results, ratio):
    """Target: met or not."""
    checks = {}
    for kind in SIGNUP:
        for concurrency in (8, 32):
            key = f"signup_{kind}_c{concurrency}"
            if key in ratio:
                checks[f"{key} >= {TARGETS['signup']}"] = ratio[key] >= TARGETS["signup"]
    for concurrency in (8, 32):
        key = f"login_c{concurrency}"
        if key in ratio:
            checks[f"{key} >= {TARGETS['login']}"] = ratio[key] >= TARGETS["login"]
    checks[f"rejection >= {TARGETS['rejection']}"] = ratio["rejection"] >= TARGETS["rejection"]
    for name in PLAIN_PATHS:
        for key in sorted(k for k in ratio if k.startswith(f"{name}_c")):
            checks[f"{key} >= {TARGETS[name]}"] = ratio[key] >= TARGETS[name]
    checks["no unexpected answer on the paths without a hash"] = all(
        f["unexpected"] == 0
        for k, f in results.items()
        if k.startswith(tuple(f"{name}_c" for name in PLAIN_PATHS))
    )
    members = [f for k, f in results.items() if k.startswith("members_")]
    if members:
        checks["no unexpected answer on the member list"] = all(
            f["unexpected"] == 0 for f in members
        )
    for kind in SIGNUP:
        key = f"p99_over_p50_{kind}_c8"
        if key in ratio:
            checks[f"{key} <= {TARGETS['p99_over_p50']}"] = ratio[key] <= TARGETS["p99_over_p50"]
    unexpected = sum(
        f.get("unexpected", 0) for k, f in results.items() if k.startswith(("signup_", "login_"))
    )
    checks["no non-201/200 answer under load"] = (
        unexpected == 0 and results["memory"]["burst_non_201"] == 0
    )
    memory = results["memory"]
    # Bounded by the cap, not by the requests waiting: 8 times the burst, about the same peak.
    checks[f"peak memory: burst of {memory['burst']} <= 1.1 x burst of {memory['small_burst']}"] = (
        memory["peak_mb"] <= 1.1 * memory["peak_small_burst_mb"]
    )
    checks["peak memory within the hash-cap bound (+10%)"] = (
        memory["peak_mb"] <= 1.1 * memory["hash_cap_bound_mb"]
    )
    return checks


def machine():
    """Where the figures come from."""
    model = ""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as info:
            model = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                "",
            )
    return {
        "cpu": model or platform.processor(),
        "cores": cores(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def member_page_text(figures, results):
    """What a member list figure is, for the table's last column."""
    rows = min(figures["page_limit"], figures["company_members"])
    text = f"{figures['company_members']:,} members, {rows} rows"
    first = next(f for k, f in results.items() if k.startswith("members_"))
    if figures is not first:
        text += f"; to the {first['company_members']:,}-member company's page"
    return text


def markdown(report):
    """The table, as Markdown."""
    limits, results, ratio = report["limits"], report["results"], report["ratios"]
    runs = report["limit_runs"]
    lines = [
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores; load: "
        f"{report['tool']}; database: {report['database']}; gunicorn: {report['gunicorn']}; "
        f"argon2: {report['argon2']}.",
        "",
        "| figure | throughput (/s) | p50 ms | p90 ms | p99 ms | non-expected | ratio | to |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        f"| argon2 hash limit (run start {runs['hash'][0]:.1f}, end {runs['hash'][1]:.1f}) "
        f"| {limits['hash']:.1f} | | | | | 1.00 | |",
        f"| argon2 verify limit (run start {runs['verify'][0]:.1f}, end {runs['verify'][1]:.1f}) "
        f"| {limits['verify']:.1f} | | | | | 1.00 | |",
    ]
    for key, figures in results.items():
        if key == "memory":
            continue
        to = (
            "hash limit"
            if key.startswith("signup_")
            else "verify limit"
            if key.startswith("login_")
            else "floor"
            if key == "rejection" or key.startswith(tuple(f"{name}_c" for name in PLAIN_PATHS))
            else member_page_text(figures, results)
            if key.startswith("members_")
            else ""
        )
        if "limit" in figures:
            to += f" around it ({figures['limit']:.1f})"
        value = ratio.get(key)
        lines.append(
            f"| {key} | {figures['throughput']:.1f} | {figures['p50_ms']:.1f} | {figures['p90_ms']:.1f} | "
            f"{figures['p99_ms']:.1f} | {figures['unexpected']} | {'' if value is None else f'{value:.2f}'} | {to} |"
        )
    memory = results["memory"]
    lines += [
        "",
        f"Memory: idle {memory['idle_mb']:.0f} MiB; peak during a burst of {memory['small_burst']} sign-ups "
        f"{memory['peak_small_burst_mb']:.0f} MiB, of {memory['burst']} sign-ups {memory['peak_mb']:.0f} MiB "
        f"({memory['processes']} processes; bound from the hash cap {memory['hash_cap_bound_mb']:.0f} MiB; "
        f"non-201 in the burst: {memory['burst_non_201']}).",
        "",
        "| target | met |",
        "|---|---|",
        *[f"| {name} | {'yes' if met else '**no**'} |" for name, met in report["targets"].items()],
    ]
    for kind in SIGNUP:
        key = f"p99_over_p50_{kind}_c8"
        if key in ratio:
            lines.append(f"\np99/p50 for {kind} sign-up at concurrency 8: {ratio[key]:.2f}")
    lines += cpu_markdown(report)
    return "\n".join(lines) + "\n"


def cpu_markdown(report):
    """The CPU table: per request, by party; outside the hash for sign-up and log-in."""
    cpu = report.get("cpu")
    if not cpu or not cpu["per_request_ms"]:
        return []
    bare, runs = cpu["bare_ms"], cpu["bare_runs_ms"]
    loads = ", ".join(" ".join(f"{x:.2f}" for x in at) for at in report.get("load_average", []))
    lines = [
        "",
        "CPU per request, ms (user + system; service: the gunicorn master and workers; "
        "Postgres: the backends of the service's database; load generator: the harness and "
        "wrk). Bare argon2-cffi in one process, same parameters: hash "
        f"{bare['hash']:.2f} ms ({', '.join(f'{r:.2f}' for r in runs['hash'])}), verify "
        f"{bare['verify']:.2f} ms ({', '.join(f'{r:.2f}' for r in runs['verify'])}) of CPU "
        f"per call. Load average at start, end: {loads}.",
        "",
        "| figure | requests | service | outside the hash | ÷ bare hash | argon2 in the "
        "service | outside it | ÷ it | Postgres | SMTP sink | load generator |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def ms(value):
        return "" if value is None else f"{value:.2f}"

    def share(value):
        return "" if value is None else f"{value:.1%}"

    for key, per_request in cpu["per_request_ms"].items():
        own = cpu.get("outside_argon2_ms", {}).get(key)
        lines.append(
            f"| {key} | {report['results'][key]['cpu']['requests']} "
            f"| {per_request['service']:.2f} | {ms(cpu['outside_hash_ms'].get(key))} "
            f"| {share(cpu['outside_over_hash'].get(key))} "
            f"| {ms(per_request.get('argon2') if own is not None else None)} | {ms(own)} "
            f"| {share(cpu.get('outside_over_argon2', {}).get(key))} "
            f"| {per_request['postgres']:.2f} | {per_request['sink']:.2f} "
            f"| {per_request['loadgen']:.2f} |"
        )
    lines += [
        "",
        "argon2 in the service: the CPU its threads spent in argon2 per request, by its own "
        "count (lumyri_password_hash_cpu_seconds_total; all of it with parallelism 1, the "
        "calling thread's lanes only with more); outside it: the service's CPU less that.",
    ]
    return lines


def plot(report, path):
    """Throughput and p99 against concurrency, sign-up and log-in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results, levels = report["results"], report["concurrency"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, prefix in (
        ("admin sign-up", "signup_admin_c"),
        ("customer sign-up", "signup_customer_c"),
        ("log-in", "login_c"),
    ):
        left.plot(
            levels, [results[f"{prefix}{c}"]["throughput"] for c in levels], marker="o", label=name
        )
        right.plot(
            levels, [results[f"{prefix}{c}"]["p99_ms"] for c in levels], marker="o", label=name
        )
    left.axhline(
        report["limits"]["hash"], linestyle="--", color="grey", label="argon2 hash limit (run mean)"
    )
    left.axhline(
        report["limits"]["verify"],
        linestyle=":",
        color="black",
        label="argon2 verify limit (run mean)",
    )
    left.set(
        xlabel="concurrency", ylabel="requests / s", title="Throughput", xscale="log", xticks=levels
    )
    right.set(xlabel="concurrency", ylabel="ms", title="p99 latency", xscale="log", xticks=levels)
    for axis in (left, right):
        axis.set_xticklabels([str(c) for c in levels])
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"Lumyri accounts on {report['machine']['cores']} cores ({report['tool']})")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def parse_args(argv):
    """Command-line options (the defaults are the full benchmark)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Long enough that the work cut off at the end of a load (up to one hash per slot)
    # is a small part of it: at 15 s, a few per cent on two cores with the default argon2.
    parser.add_argument("--seconds", type=float, default=15, help="length of each load")
    parser.add_argument(
        "--limit-seconds", type=float, default=10, help="length of each argon2 limit run"
    )
    parser.add_argument(
        "--probe-seconds",
        type=float,
        default=4,
        help="length of the argon2 limit runs around each sign-up and log-in figure",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rejection-concurrency", type=int, default=32)
    parser.add_argument("--verify-concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument(
        "--verify-accounts", type=int, default=1000, help="accounts whose tokens /verify gets"
    )
    parser.add_argument(
        "--member-companies",
        type=int,
        nargs="+",
        default=[10, 10000],
        help="members of each company whose member list's first page is measured",
    )
    parser.add_argument("--members-concurrency", type=int, default=8)
    parser.add_argument(
        "--rounds", type=int, default=5, help="turns of rejection path and floor, each"
    )
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--accounts", type=int, default=32, help="accounts the log-in load uses")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="default",
        help="argon2 parameters of the service (bench/profiles.py); --set ARGON2_* wins",
    )
    parser.add_argument(
        "--name",
        default=None,
        help="file name stem of the results (default: latest[-owasp][-postgres])",
    )
    parser.add_argument("--tool", choices=["wrk", "asyncio"], default=None)
    parser.add_argument(
        "--smoke", action="store_true", help="tiny, quick run that checks the harness"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the service (e.g. WEB_CONCURRENCY=3)",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.limit_seconds, args.concurrency = 1, 1, [1, 2]
        args.probe_seconds = 0.5
        SETTLE_WINDOW["seconds"] = 0.25
        args.rejection_concurrency, args.burst, args.accounts = 2, 8, 2
        args.verify_concurrency, args.verify_accounts = [2], 10
        args.member_companies, args.members_concurrency = [10, 60], 2
        args.rounds = 1
    return args


def main(argv=None):
    """Run everything, print the table, write the results."""
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    args.work = tempfile.mkdtemp(prefix="lumyri-bench-")
    tool = args.tool or load_tool()
    overrides = settings_of(args.profile)
    if args.smoke:
        overrides.update(ARGON2_TIME_COST="1", ARGON2_MEMORY_COST="1024", ARGON2_PARALLELISM="1")
    overrides.update(setting.split("=", 1) for setting in args.set)
    database_url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{args.work}/bench.db"
    if args.name is None:
        args.name = "latest" + "-owasp" * (args.profile == "owasp")
        args.name += "-postgres" * database_url.startswith("postgres")
    sink = smtp_sink() if not os.environ.get("BENCH_SMTP_URL") else contextlib.nullcontext(None)
    with sink as sink_url:
        if sink_url:
            overrides.setdefault("SMTP_URL", sink_url)
        return run_all(args, tool, overrides, database_url)


def run_all(args, tool, overrides, database_url):
    """Every figure against one service configuration; print and write the report."""
    env = service_env(database_url, overrides)
    params = argon2_params(env)
    workers = int(env.get("WEB_CONCURRENCY", cores()))
    print(f"argon2 {params} on {cores()} cores; load tool: {tool}", flush=True)
    if database_url.startswith("postgres"):
        ACCOUNTED["database_url"] = database_url
    bare = {mode: [bare_hash_cpu(mode, params, args.limit_seconds / 2)] for mode in MODES}
    load_average = [os.getloadavg()]
    limits = {
        "hash": argon2_limit("hash", params, args.limit_seconds),
        "verify": argon2_limit("verify", params, args.limit_seconds),
    }
    results = {}
    tag = secrets.token_hex(3)
    measure_service(args, env, tag, results, tool)
    # The limit again at the end, for the table and the plot: the machine's speed drifts
    # during a run (it is shared), so each figure's ratio uses the limit around it.
    after = {mode: argon2_limit(mode, params, args.limit_seconds) for mode in limits}
    for mode in MODES:
        bare[mode].append(bare_hash_cpu(mode, params, args.limit_seconds / 2))
    load_average.append(os.getloadavg())
    limit_runs = {mode: [limits[mode], after[mode]] for mode in limits}
    limits = {mode: sum(runs) / 2 for mode, runs in limit_runs.items()}
    ratio = ratios(results, env, workers)
    report = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": machine(),
        "tool": tool,
        "database": "postgres" if database_url.startswith("postgres") else "sqlite",
        "argon2": params,
        "profile": args.profile if argon2_params(env) == PROFILES[args.profile] else "custom",
        "gunicorn": {
            "workers": workers,
            "worker_class": env.get("GUNICORN_WORKER_CLASS", "gthread"),
            "threads": int(env.get("GUNICORN_THREADS", 4)),
        },
        "settings": overrides,
        "concurrency": args.concurrency,
        "limits": limits,
        "limit_runs": limit_runs,
        "results": results,
        "ratios": ratio,
        "load_average": load_average,
        "cpu": cpu_report(results, bare),
    }
    report["targets"] = verdicts(results, ratio)
    if report["profile"] == "owasp":
        report["targets"].update(cpu_verdicts(report["cpu"]))
    text = markdown(report)
    print(text)
    stem = os.path.join(args.out, args.name)
    with open(stem + ".json", "w") as handle:
        json.dump(report, handle, indent=2)
    with open(stem + ".md", "w") as handle:
        handle.write(text)
    plot(report, stem + ".png")
    print(f"written: {stem}.json, .md, .png")
    return report


if __name__ == "__main__":
    main()

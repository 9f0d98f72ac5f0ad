"""Load generators for the benchmark: wrk when installed, else a Python asyncio client.

Both send requests (POSTs of a JSON body template, or requests with bearer tokens) for a
bounded time, a connection per request (the service closes each), to a loopback address,
and report throughput, p50/p90/p99 latency and the number of
answers that were not the expected status.
"""

import asyncio
import itertools
import json
import os
import shutil
import statistics
import subprocess
import time

WRK_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk", "post.lua")
WRK_BEARER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk", "bearer.lua")


def load_tool():
    """'wrk' when the Debian package is installed, else 'asyncio'."""
    return "wrk" if shutil.which("wrk") else "asyncio"


def fill(template, tag, thread, counter, accounts):
    """The body of one request (see wrk/post.lua for the placeholders)."""
    fresh = f"a{tag}-{thread}-{counter}@bench.example"
    account = f"login-{tag}-{(counter * 7 + thread) % accounts}@bench.example"
    return template.replace("{{EMAIL}}", fresh).replace("{{ACCOUNT}}", account)


def run_load(port, path, template, expected, concurrency, seconds, tag, accounts=1, tool=None):
    """Run one load and return its figures."""
    tool = tool or load_tool()
    if tool == "wrk":
        return _run_wrk(port, path, template, expected, concurrency, seconds, tag, accounts)
    return asyncio.run(
        _run_asyncio(port, path, template, expected, concurrency, seconds, tag, accounts)
    )


def run_bearer_load(
    port, method, path, tokens_file, expected, concurrency, seconds, body="", tool=None
):
    """Requests of `path` (GET, or PATCH with a JSON body, ...) with a bearer token taken
    in turn from `tokens_file`; its figures."""
    tool = tool or load_tool()
    if tool == "wrk":
        script_args = [WRK_BEARER_SCRIPT, method, path, str(expected), tokens_file, body]
        return _wrk(port, concurrency, seconds, script_args)
    with open(tokens_file) as handle:
        tokens = [line.strip() for line in handle if line.strip()]
    return asyncio.run(
        _run_asyncio_bearer(port, method, path, body, tokens, expected, concurrency, seconds)
    )


def _run_wrk(port, path, template, expected, concurrency, seconds, tag, accounts):
    """wrk with the Lua script; its done() prints one JSON line."""
    script_args = [WRK_SCRIPT, path, str(expected), template, tag, str(accounts)]
    return _wrk(port, concurrency, seconds, script_args)


def _wrk(port, concurrency, seconds, script_args):
    """Run wrk with a Lua script and its arguments; read the JSON line it prints."""
    script, *args = script_args
    command = [
        "wrk",
        f"-t{min(2, concurrency)}",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        script,
        f"http://127.0.0.1:{port}",
        "--",
        *args,
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((line for line in run.stdout.splitlines() if line.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {run.stderr.strip() or run.stdout.strip()}")
    raw = json.loads(line[len("WRKJSON ") :])
    elapsed = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "throughput": raw["requests"] / elapsed,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "unexpected": raw["unexpected"] + raw["socket_errors"],
    }


async def _one_request(reader, writer, path, body, token=None, method="POST"):
    """Send one request (a POST of a JSON body by default; with a token, its bearer
    header, and a body only if one is given) on an open connection and read the status
    (and the body)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if token is not None:
        head += f"Authorization: Bearer {token}\r\n"
    payload = body.encode()
    if payload or token is None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    writer.write(head.encode() + b"\r\n" + payload)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(
        (
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        ),
        0,
    )
    await reader.readexactly(length)
    return status


async def _client(port, deadline, results, request_of, first=1):
    """One client sending requests until the deadline, a connection each (the service
    and the floor answer with Connection: close, as gunicorn.conf.py has them).
    `request_of(counter)` gives (method, path, body, token or None)."""
    for counter in itertools.count(first):
        if time.monotonic() >= deadline:
            return
        method, path, body, token = request_of(counter)
        started = time.perf_counter()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                status = await asyncio.wait_for(
                    _one_request(reader, writer, path, body, token, method), 30
                )
            finally:
                writer.close()
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            status = None
        results.append((time.perf_counter() - started, status))


async def _run_asyncio_bearer(port, method, path, body, tokens, expected, concurrency, seconds):
    """`concurrency` clients of bearer requests (the tokens in turn) for `seconds`."""
    results = []
    started = time.monotonic()
    deadline = started + seconds

    def request_of(counter):
        return method, path, body, tokens[counter % len(tokens)]

    await asyncio.gather(
        *(_client(port, deadline, results, request_of, n) for n in range(concurrency))
    )
    return summarise(results, expected, time.monotonic() - started)


async def _run_asyncio(port, path, template, expected, concurrency, seconds, tag, accounts):
    """`concurrency` clients of POSTs of the template for `seconds`."""
    results = []
    started = time.monotonic()
    deadline = started + seconds

    def client(number):
        def request_of(counter):
            return "POST", path, fill(template, tag, number, counter, accounts), None

        return _client(port, deadline, results, request_of)

    await asyncio.gather(*(client(n) for n in range(concurrency)))
    return summarise(results, expected, time.monotonic() - started)


def summarise(results, expected, elapsed):
    """Throughput and latency percentiles of (seconds, status) pairs."""
    latencies = sorted(seconds for seconds, _ in results) or [0.0]
    cuts = (
        statistics.quantiles(latencies, n=100, method="inclusive")
        if len(latencies) > 1
        else [latencies[0]] * 99
    )
    return {
        "requests": len(results),
        "throughput": len(results) / elapsed,
        "p50_ms": cuts[49] * 1000,
        "p90_ms": cuts[89] * 1000,
        "p99_ms": cuts[98] * 1000,
        "unexpected": sum(1 for _, status in results if status != expected),
    }


async def burst(port, path, template, count, tag):
    """`count` requests at once, each on its own connection; their statuses."""

    async def one(number):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await _one_request(reader, writer, path, fill(template, tag, number, 0, 1))
        finally:
            writer.close()

    return await asyncio.gather(*(one(n) for n in range(count)))

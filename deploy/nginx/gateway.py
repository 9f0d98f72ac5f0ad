"""`make gateway`: render the nginx configuration and run nginx in the foreground with it.

Settings (environment): GATEWAY_HOST (127.0.0.1), GATEWAY_PORT (8080), the service's
instances GATEWAY_UPSTREAMS (comma-separated host:port; when unset, HOST:PORT alone,
127.0.0.1:8000), PLATFORM_UPSTREAM (http://127.0.0.1:9000), GATEWAY_UPSTREAM_TIMEOUT
(30s), and the passive checks GATEWAY_MAX_FAILS (2) and GATEWAY_FAIL_TIMEOUT (5s).

Two things are rendered here rather than written in the template, because nginx's
inheritance makes them easy to get wrong there: a location that sets any
`proxy_set_header` (or `error_page`) of its own inherits none from the server.
- FORWARDED_HEADERS follow every `proxy_pass` line of the template, so each location that
  passes a request on sets all of them itself;
- the error pages (gateway_errors) are set once, at server level, and no location may set
  one: every answer nginx makes itself is the service's envelope, from app.errors.
"""

import os
import re
import shutil
import sys
import tempfile
from typing import NamedTuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TEMPLATE = os.path.join(HERE, "lumyri-gateway.conf.template")
PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")
PROXY_PASS = re.compile(r"^(?P<indent>[ \t]*)proxy_pass\s[^;]*;$", re.MULTILINE)
SERVER_INDENT = " " * 8
DOUBLE = '"'
ERRORS_PATH = "/_lumyri_errors/"
DEFAULTS = {
    "GATEWAY_HOST": "127.0.0.1",
    "GATEWAY_PORT": "8080",
    "HOST": "127.0.0.1",
    "PORT": "8000",
    "PLATFORM_UPSTREAM": "http://127.0.0.1:9000",
    "GATEWAY_UPSTREAM_TIMEOUT": "30s",
    "GATEWAY_MAX_FAILS": "2",
    "GATEWAY_FAIL_TIMEOUT": "5s",
}
# One instance of GATEWAY_UPSTREAMS: a host name, an IPv4 address or a bracketed IPv6
# one, and a port.
UPSTREAM = re.compile(r"(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})")
DURATION = re.compile(r"[0-9]{1,6}(ms|s|m)?")

# Sent with every request the gateway passes on: to the service, to its verify check and
# to /platform/. The client's address and scheme are set, not appended to, and whatever a
# client sent in these is dropped (nginx sends no header set to ""): the service, run with
# TRUSTED_PROXIES=1, and the platform's services see the real client. X-Forwarded-Port and
# -Prefix go too: Werkzeug's ProxyFix, among others, can be told to believe them.
FORWARDED_HEADERS = (
    ("Host", "$host"),
    ("Connection", '""'),
    ("X-Forwarded-For", "$remote_addr"),
    ("X-Forwarded-Proto", "$scheme"),
    ("Forwarded", '""'),
    ("X-Real-IP", '""'),
    ("X-Forwarded-Host", '""'),
    ("X-Forwarded-Port", '""'),
    ("X-Forwarded-Prefix", '""'),
)

# The methods the gateway passes on: a 405 it answers itself (TRACE) says so in `Allow`.
ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"


class GatewayError(NamedTuple):
    """An answer nginx makes itself: the status nginx gives it, and what is sent instead."""

    nginx_status: int
    status: int
    error: object  # an app.errors.APIError


def gateway_errors():
    """Every status nginx answers with itself, and the contract's error it becomes."""
    sys.path.insert(0, ROOT)
    from app import errors

    unavailable = errors.ServiceUnavailable()
    answers = [
        # A broken request line, header, Host or chunked body; a smuggling attempt.
        errors.BadRequest(),
        errors.InvalidToken(),  # the verify check refused the token
        errors.NotFound(),  # a path the gateway does not pass on, or an internal one
        errors.MethodNotAllowed(headers={"Allow": ALLOWED_METHODS}),  # TRACE
        errors.PayloadTooLarge(),
        errors.URITooLong(),
        errors.NotImplementedByServer(),  # an unknown Transfer-Encoding
        errors.HTTPVersionNotSupported(),
    ]
    return [
        *(GatewayError(error.status, error.status, error) for error in answers),
        # nginx's own code for headers over large_client_header_buffers (sent as a 400).
        GatewayError(494, 431, errors.RequestHeaderFieldsTooLarge()),
        # The service (or its verify check) cannot be reached, failed or is too slow: a
        # 500 here is the check's failure (auth_request's answer to anything but 2xx/401:
        # the service unreachable, a 5xx, a timeout), which the contract answers with 503.
        GatewayError(500, 503, unavailable),
        GatewayError(502, 502, unavailable),
        GatewayError(503, 503, unavailable),
        GatewayError(504, 504, unavailable),
    ]


def nginx_string(name, value, quote):
    """value, checked to be written between `quote`s in nginx's configuration."""
    if quote in value or re.search(r"[$\\\n]", value):  # would end it or interpolate
        raise ValueError(f"{name} cannot be written in nginx's configuration: {value!r}")
    return f"{quote}{value}{quote}"


def error_pages(answers):
    """The server-level error_page lines: each status to the location that answers it."""
    return "\n".join(
        f"{SERVER_INDENT}error_page {answer.nginx_status} = {ERRORS_PATH}{answer.status};"
        for answer in answers
    )


def error_locations(answers):
    """One internal location per status answered, returning that error's envelope (not a
    named one: nginx cannot go to one for a request whose request line it refused)."""
    blocks = {}
    for answer in answers:
        headers = {"X-Content-Type-Options": "nosniff", **answer.error.headers}
        body = nginx_string(answer.error.code, answer.error.body().strip(), "'")
        lines = [f"location = {ERRORS_PATH}{answer.status} {{", "    internal;"]
        for name, value in headers.items():
            lines.append(f"    add_header {name} {nginx_string(name, value, DOUBLE)} always;")
        lines += [f"    return {answer.status} {body};", "}"]
        blocks[answer.status] = "\n".join(SERVER_INDENT + line for line in lines)
    return "\n\n".join(blocks.values())


def with_forwarded_headers(template):
    """The template with FORWARDED_HEADERS set after each of its proxy_pass lines."""

    def add(match):
        indent = match.group("indent")
        headers = (f"{indent}proxy_set_header {name} {value};" for name, value in FORWARDED_HEADERS)
        return "\n".join([match.group(0), *headers])

    return PROXY_PASS.sub(add, template)


def check_template(template):
    """Refuse a template that sets what is rendered here (see the module's docstring)."""
    directives = [line.strip() for line in template.splitlines()]
    directives = [line for line in directives if line and not line.startswith("#")]
    forwarded = {name.lower() for name, _ in FORWARDED_HEADERS}
    for line in directives:
        words = line.split()
        if words[0] == "error_page" or (
            words[0] == "proxy_set_header" and words[1].lower() in forwarded
        ):
            raise ValueError(f"the template must not set this itself (gateway.py does): {line}")


def upstreams(environ):
    """The service's instances: GATEWAY_UPSTREAMS, or HOST:PORT alone when it is unset."""
    raw = (environ.get("GATEWAY_UPSTREAMS") or "").strip()
    if not raw:
        host = environ.get("HOST") or DEFAULTS["HOST"]
        raw = f"{host}:{environ.get('PORT') or DEFAULTS['PORT']}"
    addresses = [item.strip() for item in raw.split(",") if item.strip()]
    for address in addresses:
        match = UPSTREAM.fullmatch(address)
        if match is None or not 0 < int(match.group("port")) < 65536:
            raise ValueError(f"GATEWAY_UPSTREAMS: not a host:port: {address!r}")
    if len(set(addresses)) != len(addresses):
        raise ValueError(f"GATEWAY_UPSTREAMS names an instance twice: {raw!r}")
    return addresses


def upstream_servers(environ, values):
    """The `server` lines of the upstream block, with the passive checks."""
    if not values["GATEWAY_MAX_FAILS"].isdigit():
        raise ValueError(f"GATEWAY_MAX_FAILS: not a number: {values['GATEWAY_MAX_FAILS']!r}")
    if not DURATION.fullmatch(values["GATEWAY_FAIL_TIMEOUT"]):
        raise ValueError(f"GATEWAY_FAIL_TIMEOUT: not a time: {values['GATEWAY_FAIL_TIMEOUT']!r}")
    checks = (
        f"max_fails={values['GATEWAY_MAX_FAILS']} fail_timeout={values['GATEWAY_FAIL_TIMEOUT']}"
    )
    lines = [f"server {address} {checks};" for address in upstreams(environ)]
    return f"\n{SERVER_INDENT}".join(lines)


def settings(environ, runtime_dir):
    """Every placeholder's value."""
    values = {name: environ.get(name) or default for name, default in DEFAULTS.items()}
    values["UPSTREAM_SERVERS"] = upstream_servers(environ, values)
    values["PLATFORM_UPSTREAM"] = values["PLATFORM_UPSTREAM"].rstrip("/")
    values["RUNTIME_DIR"] = runtime_dir
    answers = gateway_errors()
    values["ERROR_PAGES"] = error_pages(answers).strip()
    values["ERROR_LOCATIONS"] = error_locations(answers).strip()
    return values


def render(environ, runtime_dir):
    """Write nginx.conf into runtime_dir; return its path."""
    with open(TEMPLATE, encoding="utf-8") as handle:
        template = handle.read()
    check_template(template)
    values = settings(environ, runtime_dir)
    text = PLACEHOLDER.sub(lambda match: values[match.group(1)], with_forwarded_headers(template))
    path = os.path.join(runtime_dir, "nginx.conf")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def nginx_binary():
    """nginx on PATH, or where Debian puts it (/usr/sbin is not on every user's PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def command(config_path, runtime_dir):
    """The nginx command line: foreground, its own prefix, errors on stderr."""
    binary = nginx_binary()
    if binary is None:
        raise SystemExit("nginx is not installed (Debian: apt-get install nginx)")
    return [binary, "-p", runtime_dir, "-c", config_path, "-e", "stderr", "-g", "daemon off;"]


def main():
    """Render and exec nginx (it replaces this process)."""
    # make cluster gives the gateway a folder of its own (removed when it stops).
    runtime_dir = os.environ.get("GATEWAY_RUNTIME_DIR") or tempfile.mkdtemp(
        prefix="lumyri-gateway-"
    )
    try:
        config_path = render(os.environ, runtime_dir)
    except ValueError as error:
        raise SystemExit(f"gateway: refusing to start: {error}") from None
    argv = command(config_path, runtime_dir)
    print(
        f"gateway: nginx on {os.environ.get('GATEWAY_PORT') or DEFAULTS['GATEWAY_PORT']}, "
        f"config {config_path}",
        file=sys.stderr,
        flush=True,
    )
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()

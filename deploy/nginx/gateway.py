"""`make gateway`: render the nginx configuration and run nginx in the foreground with it.

Settings (environment): GATEWAY_HOST (127.0.0.1), GATEWAY_PORT (8080), HOST and PORT of
the service (127.0.0.1, 8000), PLATFORM_UPSTREAM (http://127.0.0.1:9000),
GATEWAY_UPSTREAM_TIMEOUT (30s). The error bodies the gateway answers itself are the
service's own envelopes, from app.errors.
"""

import os
import re
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TEMPLATE = os.path.join(HERE, "lumyri-gateway.conf.template")
PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")
DEFAULTS = {
    "GATEWAY_HOST": "127.0.0.1",
    "GATEWAY_PORT": "8080",
    "HOST": "127.0.0.1",
    "PORT": "8000",
    "PLATFORM_UPSTREAM": "http://127.0.0.1:9000",
    "GATEWAY_UPSTREAM_TIMEOUT": "30s",
}


def error_bodies():
    """The envelopes of the errors the gateway answers itself, as one-line strings."""
    sys.path.insert(0, ROOT)
    from app.errors import InvalidToken, NotFound, PayloadTooLarge, ServiceUnavailable

    bodies = {
        "NOT_FOUND_BODY": NotFound().body(),
        "INVALID_TOKEN_BODY": InvalidToken().body(),
        "PAYLOAD_TOO_LARGE_BODY": PayloadTooLarge().body(),
        "SERVICE_UNAVAILABLE_BODY": ServiceUnavailable().body(),
    }
    for name, body in bodies.items():
        if re.search(r"['$\\]", body):  # would end nginx's quoted string or interpolate
            raise ValueError(f"{name} cannot be written in nginx's configuration: {body!r}")
    return {name: body.strip() for name, body in bodies.items()}


def settings(environ, runtime_dir):
    """Every placeholder's value."""
    values = {name: environ.get(name) or default for name, default in DEFAULTS.items()}
    values["SERVICE_ADDRESS"] = f"{values['HOST']}:{values['PORT']}"
    values["PLATFORM_UPSTREAM"] = values["PLATFORM_UPSTREAM"].rstrip("/")
    values["RUNTIME_DIR"] = runtime_dir
    values.update(error_bodies())
    return values


def render(environ, runtime_dir):
    """Write nginx.conf into runtime_dir; return its path."""
    with open(TEMPLATE, encoding="utf-8") as handle:
        template = handle.read()
    values = settings(environ, runtime_dir)
    text = PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
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
    runtime_dir = tempfile.mkdtemp(prefix="lumyri-gateway-")
    config_path = render(os.environ, runtime_dir)
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

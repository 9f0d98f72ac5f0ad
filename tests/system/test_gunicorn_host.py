"""Several gunicorn instances on one host, and what gunicorn says at start-up."""

import json
import time

import pytest

from tests.gunicorn_rig import run_server

pytestmark = pytest.mark.e2e


def sqlite_url(folder, name):
    """A SQLite file of its own for one instance."""
    return f"sqlite:///{folder / name}"


def test_two_instances_share_no_control_socket(tmp_path):
    """gunicorn 27's default control socket, ~/.gunicorn/gunicorn.ctl, would be one path
    for every instance of a user: it is off unless an instance is given its own."""
    home = tmp_path / "home"
    home.mkdir()
    with run_server(sqlite_url(tmp_path, "a.db"), tmp_path, HOME=str(home)) as first:
        with run_server(sqlite_url(tmp_path, "b.db"), tmp_path, HOME=str(home)) as second:
            assert first.request("GET", "/healthz")[0] == 200
            assert second.request("GET", "/healthz")[0] == 200
    assert not (home / ".gunicorn").exists()


def wait_for_socket(path, seconds=10):
    """gunicorn opens its control socket in a thread of its own, soon after serving."""
    deadline = time.monotonic() + seconds
    while not path.is_socket() and time.monotonic() < deadline:
        time.sleep(0.1)
    return path.is_socket()


def test_each_instance_may_have_a_control_socket_of_its_own(tmp_path):
    own = {name: tmp_path / f"{name}.ctl" for name in ("a", "b")}
    with run_server(
        sqlite_url(tmp_path, "b.db"), tmp_path, GUNICORN_CONTROL_SOCKET=str(own["b"])
    ) as second:
        with run_server(
            sqlite_url(tmp_path, "a.db"), tmp_path, GUNICORN_CONTROL_SOCKET=str(own["a"])
        ):
            assert wait_for_socket(own["a"]) and wait_for_socket(own["b"])
        # The first one stopped: the second's socket is still there, and it still serves.
        assert own["b"].is_socket()
        assert second.request("GET", "/healthz")[0] == 200


def start_up_warnings(log_path):
    """The WARNING lines gunicorn's master wrote at start-up."""
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    return [r["message"] for r in records if r["level"] == "WARNING"]


@pytest.mark.parametrize(
    ("settings", "warned"),
    [
        ({"WEB_CONCURRENCY": "2"}, True),
        ({"WEB_CONCURRENCY": "1"}, False),
        ({"WEB_CONCURRENCY": "2", "RATELIMIT_ENABLED": "false"}, False),
        ({"WEB_CONCURRENCY": "2", "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0"}, False),
    ],
    ids=["memory-2-workers", "memory-1-worker", "limits-off", "redis"],
)
def test_per_worker_limits_are_announced_in_production(tmp_path, settings, warned):
    settings = {"RATELIMIT_ENABLED": "true", **settings}
    with run_server(sqlite_url(tmp_path, "w.db"), tmp_path, **settings) as server:
        messages = start_up_warnings(server.log_path)
    named = [m for m in messages if "RATELIMIT_STORAGE_URI" in m]
    assert bool(named) == warned, messages
    if warned:
        assert "per worker" in named[0] and "memory://" in named[0]

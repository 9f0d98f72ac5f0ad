"""Request ids, JSON request log lines and Prometheus metrics."""

import json
import logging
import os
import re

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from app.extensions import db
from app.observability import JsonFormatter, new_request_id
from tests.helpers import LOGIN_PATH, PASSWORD, fresh_email, metric_sample, signup_body

MADE_ID = re.compile(r"[0-9a-f]{32}")  # a request id the service made


class TestRequestId:
    def test_a_sane_one_is_echoed(self, client):
        response = client.get("/healthz", headers={"X-Request-ID": "abc-123_X.y"})
        assert response.headers["X-Request-ID"] == "abc-123_X.y"

    @pytest.mark.parametrize("given", [None, "", "has space", "a" * 129, "semi;colon", "é"])
    def test_otherwise_one_is_made(self, client, given):
        headers = {"X-Request-ID": given} if given is not None else {}
        response = client.get("/healthz", headers=headers)
        assert MADE_ID.fullmatch(response.headers["X-Request-ID"])

    def test_errors_carry_it_too(self, client):
        response = client.post("/api/v1/auth/admin/signup", data="x", content_type="text/plain")
        assert response.status_code == 415 and response.headers["X-Request-ID"]

    def test_each_request_gets_its_own(self, client):
        assert (
            client.get("/healthz").headers["X-Request-ID"]
            != client.get("/healthz").headers["X-Request-ID"]
        )

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_forked_workers_make_different_ids(self):
        """gunicorn forks its workers from one loaded app: each must draw its own ids."""
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            try:
                os.write(write, new_request_id().encode())
            finally:
                os._exit(0)  # never go on running the test session in the child
        os.close(write)
        os.waitpid(child, 0)
        with os.fdopen(read) as pipe:
            childs = pipe.read()
        assert MADE_ID.fullmatch(childs)
        assert childs != new_request_id()


class TestRequestLog:
    def test_one_json_line_per_request(self, api, caplog):
        caplog.set_level(logging.INFO, logger="app.access")
        response = api.signup(
            "admin", signup_body(password=PASSWORD), headers={"X-Request-ID": "req-42"}
        )
        lines = [r for r in caplog.records if r.name == "app.access"]
        assert len(lines) == 1
        line = json.loads(JsonFormatter().format(lines[0]))
        assert line["request_id"] == "req-42"
        assert (line["method"], line["path"], line["status"]) == (
            "POST",
            "/api/v1/auth/admin/signup",
            201,
        )
        assert line["duration_ms"] >= 0 and line["level"] == "INFO"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["time"])
        text = JsonFormatter().format(lines[0])
        assert PASSWORD not in text and response.get_json()["data"]["access_token"] not in text

    def test_time_is_the_records_own_across_seconds(self):
        """The formatter keeps one second's text: a record of another second (later, or
        made earlier and written late) still shows its own time, to the millisecond."""
        formatter = JsonFormatter()
        times = []
        for second, msecs in (
            (1_700_000_000, 123),
            (1_700_000_000, 999),
            (1_700_000_001, 500),
            (1_699_999_999, 0),
        ):
            record = logging.LogRecord("app.access", logging.INFO, "", 0, "x", (), None)
            record.created, record.msecs = second + msecs / 1000, msecs
            times.append(json.loads(formatter.format(record))["time"])
        assert times == [
            "2023-11-14T22:13:20.123+00:00",
            "2023-11-14T22:13:20.999+00:00",
            "2023-11-14T22:13:21.500+00:00",
            "2023-11-14T22:13:19.000+00:00",
        ]

    def test_records_keep_what_gunicorn_lines_show(self, app):
        """The app is built (fixture), and gunicorn's own lines still format: they show
        the process id, so records must keep gathering it."""
        from gunicorn.glogging import Logger

        record = logging.getLogger("gunicorn.error").makeRecord(
            "gunicorn.error", logging.INFO, "", 0, "Booting worker with pid: %s", (7,), None
        )
        line = logging.Formatter(Logger.error_fmt, Logger.datefmt).format(record)
        assert f"[{os.getpid()}] [INFO] Booting worker with pid: 7" in line

    def test_other_log_lines_carry_the_request_id(self, app, client, caplog):
        @app.get("/boom")
        def boom():
            raise RuntimeError("boom")

        client.get("/boom", headers={"X-Request-ID": "req-boom"})
        error = next(r for r in caplog.records if r.name == "app.errors")
        assert json.loads(JsonFormatter().format(error))["request_id"] == "req-boom"


class TestMetrics:
    def test_exposed_in_prometheus_text_format(self, client):
        response = client.get("/metrics")
        assert response.status_code == 200
        # Exactly prometheus_client's type, each parameter once (Prometheus 3 refuses a
        # repeated charset).
        assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
        assert response.headers["Content-Type"].count("charset") == 1
        names = {
            family.name
            for family in text_string_to_metric_families(response.get_data(as_text=True))
        }
        assert {
            "lumyri_http_requests",
            "lumyri_http_request_duration_seconds",
            "lumyri_signups",
            "lumyri_password_hash_seconds",
        } <= names

    def test_requests_counted_by_endpoint_and_status(self, client):
        labels = {"method": "GET", "endpoint": "health.healthz", "status": "200"}
        before = metric_sample(client, "lumyri_http_requests_total", **labels)
        for _ in range(3):
            client.get("/healthz")
        assert metric_sample(client, "lumyri_http_requests_total", **labels) == before + 3
        unmatched = {"method": "GET", "endpoint": "unmatched", "status": "404"}
        before_404 = metric_sample(client, "lumyri_http_requests_total", **unmatched)
        client.get("/no/such/path/1")
        client.get("/no/such/path/2")
        assert metric_sample(client, "lumyri_http_requests_total", **unmatched) == before_404 + 2

    def test_made_up_methods_are_counted_as_other(self, client):
        """A client cannot create new time series by inventing HTTP methods."""
        other = {"method": "OTHER", "endpoint": "unmatched", "status": "405"}
        before = metric_sample(client, "lumyri_http_requests_total", **other)
        for method in ("BREW", "WHEN", "XYZZY"):
            client.open("/healthz", method=method)
        assert metric_sample(client, "lumyri_http_requests_total", **other) == before + 3
        text = client.get("/metrics").get_data(as_text=True)
        assert "BREW" not in text and "XYZZY" not in text

    def test_latency_histogram(self, client):
        labels = {"method": "GET", "endpoint": "health.healthz", "status": "200"}
        before = metric_sample(client, "lumyri_http_request_duration_seconds_count", **labels)
        client.get("/healthz")
        assert (
            metric_sample(client, "lumyri_http_request_duration_seconds_count", **labels)
            == before + 1
        )

    def test_signups_by_role_and_outcome(self, app, api, database_url):
        client = api.client

        def count(role, outcome):
            return metric_sample(client, "lumyri_signups_total", role=role, outcome=outcome)

        before = {
            (r, o): count(r, o)
            for r in ("admin", "customer")
            for o in ("created", "duplicate", "invalid", "rate_limited")
        }
        email = fresh_email()
        api.signup("admin", signup_body(email=email))
        api.signup("customer", signup_body(email=email))
        api.signup("customer", {"email": "bad"})
        limited = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": database_url,
                "RATELIMIT_ENABLED": True,
                "RATELIMIT_SIGNUP": "1/minute",
                "RATELIMIT_KEY_PREFIX": fresh_email(),
            }
        )
        limited_client = limited.test_client()
        limited_client.post("/api/v1/auth/admin/signup", json=signup_body())
        limited_client.post("/api/v1/auth/admin/signup", json=signup_body())
        with limited.app_context():
            db.engine.dispose()
        assert count("admin", "created") == before[("admin", "created")] + 2
        assert count("customer", "duplicate") == before[("customer", "duplicate")] + 1
        assert count("customer", "invalid") == before[("customer", "invalid")] + 1
        assert count("admin", "rate_limited") == before[("admin", "rate_limited")] + 1

    def test_replays_are_counted_as_replayed_not_created(self, api):
        client = api.client

        def counts():
            return {
                outcome: metric_sample(
                    client, "lumyri_signups_total", role="customer", outcome=outcome
                )
                for outcome in ("created", "replayed", "duplicate")
            }

        before = counts()
        body = signup_body()
        for _ in range(5):
            response = api.signup("customer", body, headers={"Idempotency-Key": "count-me"})
            assert response.status_code == 201
        taken = signup_body(email=body["email"])
        for _ in range(3):
            response = api.signup("customer", taken, headers={"Idempotency-Key": "count-409"})
            assert response.status_code == 409
        after = counts()
        assert after["created"] == before["created"] + 1
        assert after["replayed"] == before["replayed"] + 4 + 2
        assert after["duplicate"] == before["duplicate"] + 1

    def test_password_hash_time(self, api):
        before = metric_sample(api.client, "lumyri_password_hash_seconds_count")
        api.signup("customer")
        assert metric_sample(api.client, "lumyri_password_hash_seconds_count") == before + 1

    def test_argon2_cpu_is_counted_apart_by_operation(self, api):
        """The thread's CPU in argon2: a sign-up's hash, a log-in's verify (also a wrong
        password's, and the dummy verify of an unknown address)."""

        def cpu(operation):
            name = "lumyri_password_hash_cpu_seconds_total"
            return metric_sample(api.client, name, operation=operation)

        body = signup_body()
        hashed, verified = cpu("hash"), cpu("verify")
        assert api.signup("customer", body).status_code == 201
        spent = cpu("hash") - hashed
        assert spent > 0 and cpu("verify") == verified
        for password in (body["password"], "Wrong@Pass9"):
            api.client.post(LOGIN_PATH, json={"email": body["email"], "password": password})
        api.client.post(LOGIN_PATH, json={"email": fresh_email(), "password": "Wrong@Pass9"})
        assert cpu("hash") - hashed == spent
        assert cpu("verify") - verified > 0

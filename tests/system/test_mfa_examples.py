"""The examples/ scripts of two-factor against gunicorn (SQLite and Postgres): set-up,
confirmation, a log-in's two steps, new recovery codes and disabling, each answer
checked. Codes are made with pyotp from the set-up's secret, against the real clock."""

import contextlib
import json
import re
import time

import pyotp
import pytest

from tests.fixtures import postgres_schema
from tests.gunicorn_rig import run_server
from tests.helpers import PASSWORD, fresh_email, run_example

pytestmark = pytest.mark.e2e


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def server(request, tmp_path_factory):
    """A fresh database served by gunicorn."""
    if request.param == "sqlite":
        database = contextlib.nullcontext(
            f"sqlite:///{tmp_path_factory.mktemp('mfa') / 'lumyri.db'}"
        )
    else:
        database = postgres_schema(request.getfixturevalue("postgres_server"))
    with database as database_url:
        with run_server(database_url, tmp_path_factory.mktemp("gunicorn")) as server:
            yield server


def run_json(server, script, *args, **env):
    """A script's printed answer, parsed."""
    return json.loads(run_example(server, script, *args, **env))


def test_the_curl_walk_through_of_two_factor(server):
    email = fresh_email("mfa")
    token = run_json(server, "customer-signup.sh", EMAIL=email)["data"]["access_token"]
    assert run_json(server, "mfa-status.sh", token)["data"] == {
        "totp": False,
        "recovery_codes_left": 0,
    }
    setup = run_json(server, "mfa-setup.sh", token, PASSWORD=PASSWORD)["data"]
    assert setup["otpauth_uri"] == (
        f"otpauth://totp/Lumyri:{email}?secret={setup['secret']}&issuer=Lumyri"
    )
    assert setup["qr_svg"].startswith("<svg")
    totp = pyotp.TOTP(setup["secret"])
    confirmed = run_json(server, "mfa-confirm.sh", token, CODE=totp.now())["data"]
    codes, token = confirmed["recovery_codes"], confirmed["access_token"]
    assert len(codes) == 10 and all(re.fullmatch(r"[a-z0-9]{5}-[a-z0-9]{5}", c) for c in codes)

    refused = run_json(server, "login.sh", EMAIL=email)
    assert refused["error"]["code"] == "MFA_REQUIRED"
    next_code = totp.at(time.time() + 30)  # the confirmation used this step's
    logged_in = run_json(
        server, "login-mfa.sh", MFA_TOKEN=refused["error"]["mfa_token"], CODE=next_code
    )
    assert logged_in["error"] is None and logged_in["data"]["user"]["email"] == email
    token = logged_in["data"]["access_token"]
    assert run_json(server, "mfa-status.sh", token)["data"] == {
        "totp": True,
        "recovery_codes_left": 10,
    }

    renewed = run_json(
        server, "mfa-recovery-codes.sh", token, PASSWORD=PASSWORD, CODE=codes[0].upper()
    )["data"]["recovery_codes"]
    assert len(renewed) == 10 and not set(renewed) & set(codes)
    status = run_example(server, "mfa-disable.sh", token, PASSWORD=PASSWORD, CODE=renewed[0])
    assert status.strip() == "204"
    assert run_json(server, "mfa-status.sh", token)["data"]["totp"] is False
    assert run_json(server, "login.sh", EMAIL=email)["error"] is None

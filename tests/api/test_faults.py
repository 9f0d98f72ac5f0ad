"""Database faults: with Postgres cut off behind a proxy, or the network to it gone silent,
the service answers 503 in bounded time, writes nothing half-way, and serves again once
the database is back."""

import logging
import threading
import time

import pytest
import sqlalchemy as sa

from app import create_app, identity, mail
from app.extensions import db
from app.models import Company, SigningCredential, User
from tests.fixtures import proxied_postgres
from tests.helpers import Api, bearer, error_of, signup_body

pytestmark = pytest.mark.postgres
BOUND_SECONDS = 5  # the contract: a 503 within 5 s
MEASURED_BOUND_SECONDS = 4.5  # what the tests hold the service to, timing it themselves
HANG_SECONDS = 10  # a request still unanswered by then has hung: the test fails, not waits
RECOVERY_SECONDS = 5  # the database is tried again every second once it went silent
VERIFY_PATH = "/api/v1/auth/verify"


@pytest.fixture
def proxied(request, postgres_server):
    """(app, api, proxy, direct URL): the app reaches a fresh schema through the proxy.
    Settings may be given as the fixture's parameter; /verify keeps no cache, so every
    check asks the database."""
    with proxied_postgres(postgres_server) as (direct_url, proxied_url, proxy):
        settings = {"SQLALCHEMY_DATABASE_URI": proxied_url, "TOKEN_CACHE_SECONDS": 0}
        app = create_app({**settings, **getattr(request, "param", {})})
        try:
            yield app, Api(app.test_client()), proxy, direct_url
        finally:
            with app.app_context():
                db.engine.dispose()


def rows(direct_url):
    """(users, companies, credentials) counted straight on the server, not via the proxy."""
    engine = sa.create_engine(direct_url)
    try:
        with engine.connect() as connection:
            return tuple(
                connection.scalar(sa.select(sa.func.count()).select_from(model.__table__))
                for model in (User, Company, SigningCredential)
            )
    finally:
        engine.dispose()


def timed(call):
    """(result, seconds), the call made in a thread of its own: one that hangs fails the
    test after HANG_SECONDS instead of hanging it."""
    outcome = {}

    def run():
        started = time.monotonic()
        try:
            outcome["result"] = call()
        finally:
            outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_SECONDS)
    if "seconds" not in outcome:
        pytest.fail(f"no answer within {HANG_SECONDS} s")
    return outcome["result"], outcome["seconds"]


def assert_unavailable(response, seconds):
    """503 SERVICE_UNAVAILABLE in the envelope, well within the contract's bound."""
    assert response.status_code == 503
    assert error_of(response)["code"] == "SERVICE_UNAVAILABLE"
    assert seconds < MEASURED_BOUND_SECONDS < BOUND_SECONDS


def recovers(api):
    """/readyz answers 200 again soon after the database is back."""
    deadline = time.monotonic() + RECOVERY_SECONDS
    while api.client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "not ready again after the database came back"
        time.sleep(0.1)


@pytest.mark.parametrize("blackhole", [False, True], ids=["refused", "blackholed"])
def test_cut_database_gives_503_then_recovers(proxied, blackhole):
    app, api, proxy, direct_url = proxied
    assert api.signup("admin").status_code == 201
    assert rows(direct_url) == (1, 1, 1)

    proxy.cut(blackhole=blackhole)
    assert_unavailable(*timed(lambda: api.signup("admin")))
    assert_unavailable(*timed(lambda: api.client.get("/readyz")))
    assert_unavailable(*timed(lambda: api.login("someone@example.org")))
    assert api.client.get("/healthz").status_code == 200
    assert rows(direct_url) == (1, 1, 1)

    proxy.restore()
    recovers(api)
    assert api.signup("admin").status_code == 201
    assert rows(direct_url) == (2, 2, 2)


@pytest.mark.parametrize("fault", ["refused", "partitioned"])
def test_cut_in_the_middle_of_the_transaction_leaves_nothing(proxied, fault):
    """Cut as the sign-up's transaction commits: every row is written, the COMMIT never
    reaches the server (refused) or goes into the silence (partitioned)."""
    app, api, proxy, direct_url = proxied
    wrote = []

    def note_writes(conn, cursor, statement, *args):
        wrote.append(statement.lstrip().upper().startswith("INSERT"))

    def cut_at_commit(conn):
        if any(wrote):
            wrote.clear()
            proxy.cut() if fault == "refused" else proxy.partition()

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", note_writes)
    sa.event.listen(engine, "commit", cut_at_commit)
    try:
        assert_unavailable(*timed(lambda: api.signup("admin", signup_body())))
    finally:
        sa.event.remove(engine, "before_cursor_execute", note_writes)
        sa.event.remove(engine, "commit", cut_at_commit)
    assert rows(direct_url) == (0, 0, 0)
    proxy.restore()
    recovers(api)
    assert api.signup("admin").status_code == 201
    assert rows(direct_url) == (1, 1, 1)


def test_a_held_lock_gives_503_in_bounded_time(proxied):
    """A write blocked by another transaction's lock gives up within the bound."""
    app, api, proxy, direct_url = proxied
    engine = sa.create_engine(direct_url)
    try:
        with engine.connect() as locker:
            locker.execute(sa.text("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"))
            assert_unavailable(*timed(lambda: api.signup("customer")))
            locker.rollback()
    finally:
        engine.dispose()
    assert api.signup("customer").status_code == 201


# A partition: the connections in the pool stay open and hear nothing, new ones are
# accepted and never answered. Each request's waits on the database together end within
# its database time (DB_REQUEST_TIMEOUT_MS, 3 s), however many it makes; then the other
# requests are answered at once until the database answers again.


def signed_up(api):
    """(e-mail, token) of a new customer."""
    body = signup_body()
    response = api.signup("customer", body)
    assert response.status_code == 201
    return body["email"], response.get_json()["data"]["access_token"]


def requests_of(api, email, token):
    """The requests a partition must not hang, by name."""
    return {
        "me": lambda: api.me(token),
        "verify": lambda: api.client.get(VERIFY_PATH, headers=bearer(token)),
        "signup": lambda: api.signup("customer"),
        "login": lambda: api.login(email),
        "readyz": lambda: api.client.get("/readyz"),
    }


def warm(api, email, token):
    """Every request once, so that the pool holds open connections the partition keeps."""
    for name, call in requests_of(api, email, token).items():
        assert call().status_code in (200, 201), name


@pytest.mark.parametrize(
    ("name", "pool"),
    [(name, "pooled") for name in ("me", "verify", "signup", "login", "readyz")]
    + [("signup", "empty"), ("readyz", "empty")],
)
def test_partition_gives_503_in_bounded_time_then_recovers(proxied, name, pool):
    """The first request to meet the silence waits its own time out (on a pooled
    connection, or connecting anew), the next one is answered at once."""
    app, api, proxy, direct_url = proxied
    email, token = signed_up(api)
    warm(api, email, token)
    if pool == "empty":
        with app.app_context():
            db.engine.dispose()
    counted = rows(direct_url)

    proxy.partition()
    call = requests_of(api, email, token)[name]
    assert_unavailable(*timed(call))
    response, seconds = timed(call)
    assert_unavailable(response, seconds)
    assert seconds < 0.5  # the process knows the database is silent: no second wait
    assert api.client.get("/healthz").status_code == 200

    proxy.restore()
    recovers(api)
    assert rows(direct_url) == counted
    assert call().status_code in (200, 201)


def test_concurrent_requests_during_a_partition_all_answer_in_time(proxied):
    app, api, proxy, direct_url = proxied
    email, token = signed_up(api)
    warm(api, email, token)
    clients = [Api(app.test_client()) for _ in range(10)]

    proxy.partition()
    answers = []

    def one(client, name):
        answers.append((name, *timed(requests_of(client, email, token)[name])))

    names = ["me", "verify", "signup", "login", "readyz"] * 2
    threads = [threading.Thread(target=one, args=pair) for pair in zip(clients, names, strict=True)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    health, seconds = timed(lambda: api.client.get("/healthz"))
    assert health.status_code == 200 and seconds < 0.5
    for thread in threads:
        thread.join(HANG_SECONDS + 1)
    assert len(answers) == len(names)
    for name, response, seconds in answers:
        assert response.status_code == 503, name
        assert_unavailable(response, seconds)

    proxy.restore()
    recovers(api)
    assert api.me(token).status_code == 200


def test_verify_asks_the_database_once(proxied, monkeypatch):
    """/verify's fast path meets the database failure and hands it to the view, which
    answers 503 without asking again (it used to wait twice)."""
    app, api, proxy, direct_url = proxied
    email, token = signed_up(api)
    asked = []
    real_identify = identity.identify

    def counted(token):
        asked.append(token)
        return real_identify(token)

    monkeypatch.setattr(identity, "identify", counted)
    proxy.cut()
    assert_unavailable(*timed(lambda: api.client.get(VERIFY_PATH, headers=bearer(token))))
    assert len(asked) == 1


@pytest.mark.parametrize(
    "proxied",
    [{"DB_REQUEST_TIMEOUT_MS": 1000, "MAIL_POLL_SECONDS": 0.05}],
    indirect=True,
    ids=["1s-budget"],
)
def test_mail_sender_backs_off_during_a_partition(proxied, monkeypatch, caplog):
    """The sender's round ends within its database time, then its pauses double (0.05 s
    polls would be 60 rounds in 3 s) and it says so once; it works again afterwards."""
    app, api, proxy, direct_url = proxied
    sender = app.extensions[mail.EXTENSION_KEY]
    rounds = []
    real_deliver = sender.deliver_due

    def deliver_due():
        rounds.append(time.monotonic())
        return real_deliver()

    monkeypatch.setattr(sender, "deliver_due", deliver_due)
    sender.start()
    try:
        time.sleep(0.3)
        assert len(rounds) >= 3  # polling every 0.05 s while the database answers
        caplog.set_level(logging.INFO, logger="app.mail")
        proxy.partition()
        cut_at = time.monotonic()
        time.sleep(3)
        during = [moment for moment in rounds if moment >= cut_at]
        assert 2 <= len(during) <= 8, during  # not stuck on the silence, not spinning
        warnings = [r for r in caplog.records if r.name == "app.mail" and r.levelname == "WARNING"]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]

        proxy.restore()
        deadline = time.monotonic() + RECOVERY_SECONDS
        while not any("working again" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the sender did not work again"
            sender.wake()  # what a committed mail does; its pause may be long by now
            time.sleep(0.1)
    finally:
        sender.stop()

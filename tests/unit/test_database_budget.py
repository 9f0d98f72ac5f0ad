"""The Postgres budget of database time and the Outage, without a server: who waits, who
is answered at once, and when the outage ends. (The partition itself: tests/api/
test_faults.py in-process, tests/system/test_partition.py under gunicorn.)"""

import threading
import time

import pytest

from app import postgres_budget
from app.postgres_budget import BUDGET, Outage, RequestBudget, Unreachable


def in_other_thread(call):
    """What `call` returns, or the exception it raises, in a thread of its own."""
    outcome = []

    def run():
        try:
            outcome.append(call())
        except Exception as error:  # noqa: BLE001 - handed back to the test
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(5)
    return outcome[0]


def test_a_request_gets_its_budget_and_leaves_none_behind():
    seen = []

    def app(environ, start_response):
        seen.append(BUDGET.left)
        BUDGET.left -= 1.25  # what its waits took
        return [b""]

    assert RequestBudget(app, 3.0)({}, None) == [b""]
    assert seen == [3.0] and BUDGET.left is None


def test_the_budget_block_nests_and_restores():
    with postgres_budget.budget(2.0):
        assert BUDGET.left == 2.0
        with postgres_budget.budget(0.5):
            assert BUDGET.left == 0.5
        assert BUDGET.left == 2.0
    assert BUDGET.left is None


def test_a_request_out_of_time_on_answers_is_no_outage():
    outage = Outage(patience=3.0)
    outage.failed(waited=0.2)  # the last of its time ran out on a slow answer
    assert outage.retry_at == 0
    outage.admit()


def test_silence_opens_an_outage_with_one_prober_per_second(monkeypatch):
    monkeypatch.setattr(postgres_budget, "PROBE_SECONDS", 0.2)
    outage = Outage(patience=3.0)
    outage.failed(waited=3.0)
    with pytest.raises(Unreachable):
        outage.admit()  # this thread too: no one tries before the next probe is due
    time.sleep(0.25)
    outage.admit()  # this thread probes ...
    outage.admit()  # ... as often as it needs within its request
    assert isinstance(in_other_thread(outage.admit), Unreachable)  # the others may not
    outage.answered()
    assert outage.retry_at == 0
    assert in_other_thread(outage.admit) is None


def test_a_failed_probe_keeps_the_outage_and_frees_the_turn(monkeypatch):
    monkeypatch.setattr(postgres_budget, "PROBE_SECONDS", 0.2)
    outage = Outage(patience=3.0)
    outage.failed(waited=3.0)
    time.sleep(0.25)
    outage.admit()
    outage.failed(waited=0.01)  # the probe was refused at once: still an outage
    assert outage.retry_at and outage.prober is None
    time.sleep(0.25)
    assert in_other_thread(outage.admit) is None  # another thread's turn


def test_half_the_budget_counts_as_silence_when_the_budget_is_short():
    outage = Outage(patience=1.0)
    outage.failed(waited=0.6)
    assert outage.retry_at

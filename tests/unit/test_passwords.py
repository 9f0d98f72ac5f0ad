"""The passwords module: argon2id with the configured parameters, NFKC, rehash checks,
and the cap on hashes in flight."""

import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor

import pytest
from argon2 import PasswordHasher

from app import create_app, passwords
from tests.helpers import PASSWORD


def make_app(**argon2):
    """An app (no database needed) with the given ARGON2_* settings."""
    return create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", **argon2})


def test_hash_is_argon2id_with_configured_parameters():
    app = make_app(ARGON2_TIME_COST=2, ARGON2_MEMORY_COST=64, ARGON2_PARALLELISM=1)
    with app.app_context():
        hashed = passwords.hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$v=19$m=64,t=2,p=1$")
    assert PASSWORD not in hashed


def test_verify():
    with make_app().app_context():
        hashed = passwords.hash_password(PASSWORD)
        assert passwords.verify_password(hashed, PASSWORD)
        assert not passwords.verify_password(hashed, PASSWORD.lower())
        assert not passwords.verify_password(hashed, " " + PASSWORD)
        assert not passwords.verify_password("not a hash", PASSWORD)


def test_nfkc_is_applied_on_both_sides():
    with make_app().app_context():
        hashed = passwords.hash_password("Ｐassword@１２３")  # full-width P, 1, 2, 3
        assert passwords.verify_password(hashed, "Password@123")


def test_same_password_hashes_differently():
    with make_app().app_context():
        assert passwords.hash_password(PASSWORD) != passwords.hash_password(PASSWORD)


def test_needs_rehash_when_parameters_change():
    with make_app(ARGON2_TIME_COST=1).app_context():
        old = passwords.hash_password(PASSWORD)
        assert not passwords.needs_rehash(old)
    with make_app(ARGON2_TIME_COST=2).app_context():
        assert passwords.needs_rehash(old)
        assert passwords.verify_password(old, PASSWORD)


def test_hashes_in_flight_are_capped_per_process(monkeypatch):
    """A burst of 12 concurrent hashes never has more than ARGON2_MAX_CONCURRENT running."""
    app = make_app(ARGON2_MAX_CONCURRENT=2)
    running, peak, lock = [0], [0], threading.Lock()
    real_hash = PasswordHasher.hash

    def slow_hash(self, password, **kwargs):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return real_hash(self, password, **kwargs)

    monkeypatch.setattr(PasswordHasher, "hash", slow_hash)

    def hash_in_context(_):
        with app.app_context():
            return passwords.hash_password(PASSWORD)

    with ThreadPoolExecutor(max_workers=12) as pool:
        hashes = list(pool.map(hash_in_context, range(12)))
    assert len(set(hashes)) == 12
    assert peak[0] == 2


def test_verification_takes_a_slot_too():
    app = make_app(ARGON2_MAX_CONCURRENT=1)
    with app.app_context():
        hashed = passwords.hash_password(PASSWORD)
        gate = app.extensions[passwords.GATE_KEY]
        assert gate.acquire(blocking=False)
        try:
            done = []
            worker = threading.Thread(
                target=lambda: done.append(_verify_in(app, hashed)), daemon=True
            )
            worker.start()
            worker.join(0.3)
            assert done == []  # waiting for the slot
        finally:
            gate.release()
        worker.join(5)
        assert done == [True]


def _verify_in(app, hashed):
    """Verify in a fresh app context (another thread)."""
    with app.app_context():
        return passwords.verify_password(hashed, PASSWORD)


def test_hash_slots_go_to_waiters_in_arrival_order():
    """A freed slot goes to the longest waiter, never to a later caller (no barging)."""
    gate = passwords.HashGate(1)
    assert gate.acquire()
    order, threads = [], []
    for number in range(5):
        thread = threading.Thread(target=_take_and_record, args=(gate, number, order))
        thread.start()
        threads.append(thread)
        _wait_for(lambda n=number: gate.waiting == n + 1)
    gate.release()
    assert gate.acquire() is True  # a caller after the five: served after them
    assert order == [0, 1, 2, 3, 4]
    gate.release()
    for thread in threads:
        thread.join(5)
    assert not gate.waiting


def test_a_freed_slot_is_not_taken_by_a_newcomer():
    """While someone waits, a non-blocking newcomer is refused even at the hand-over."""
    gate = passwords.HashGate(1)
    gate.acquire()
    order = []
    waiter = threading.Thread(target=_take_and_record, args=(gate, "waiter", order, 0.2))
    waiter.start()
    _wait_for(lambda: gate.waiting == 1)
    gate.release()
    assert gate.acquire(blocking=False) is False  # the slot went to the waiter
    waiter.join(5)
    assert order == ["waiter"]
    assert gate.acquire(blocking=False) is True


def _take_and_record(gate, name, order, hold=0.0):
    """Take a slot, note who got it, hold it a moment, give it back."""
    with gate:
        order.append(name)
        time.sleep(hold)


def _wait_for(condition, seconds=5):
    """Poll until `condition()` holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_slot_comes_back_when_the_holder_raises():
    gate = passwords.HashGate(1)
    with pytest.raises(RuntimeError):
        with gate:
            raise RuntimeError("hash failed")
    assert gate.acquire(blocking=False) is True
    gate.release()


def test_releasing_more_than_acquired_is_an_error():
    gate = passwords.HashGate(1)
    with pytest.raises(ValueError):
        gate.release()


class InterruptedTurn:
    """A waiter's turn lock whose wait ends in KeyboardInterrupt: at once (still queued),
    or only once the slot has been handed over (`after_hand_over`)."""

    after_hand_over = False

    def __init__(self):
        self.lock, self.calls = threading.Lock(), 0

    def acquire(self):
        self.calls += 1
        if self.calls == 2:  # the first acquire locks the turn, the second is the wait
            if self.after_hand_over:
                self.lock.acquire()
            raise KeyboardInterrupt
        return self.lock.acquire()

    def release(self):
        self.lock.release()


@pytest.mark.parametrize("after_hand_over", [False, True], ids=["still-queued", "handed-over"])
def test_an_interrupted_waiter_never_loses_a_slot(monkeypatch, after_hand_over):
    """A KeyboardInterrupt while waiting (a CLI command, say) takes the caller out of the
    queue, or, if the slot was handed to it meanwhile, passes the slot on."""
    gate = passwords.HashGate(1)
    gate.acquire()  # another caller holds the only slot
    turn = type("Turn", (InterruptedTurn,), {"after_hand_over": after_hand_over})
    # Only the gate's turn locks are replaced, not threading.Lock everywhere.
    monkeypatch.setattr(passwords, "threading", types.SimpleNamespace(Lock=turn))
    holder = threading.Thread(target=_release_once_waited_for, args=(gate,))
    if after_hand_over:
        holder.start()
    with pytest.raises(KeyboardInterrupt):
        gate.acquire()
    if after_hand_over:
        holder.join(5)
    else:
        assert gate.waiting == 0
        gate.release()  # the holder is done
    assert gate.acquire(blocking=False) is True  # the slot is free again...
    gate.release()
    with pytest.raises(ValueError):  # ...and there is still one slot, not two
        gate.release()


def _release_once_waited_for(gate):
    """Hold the slot until someone waits for it, then hand it over."""
    _wait_for(lambda: gate.waiting == 1)
    gate.release()

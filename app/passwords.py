"""Password hashing with argon2id (argon2-cffi); the only module that touches password bytes."""

import secrets
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, current_app

from app.metrics import PASSWORD_HASH_CPU_SECONDS, PASSWORD_HASH_SECONDS

EXTENSION_KEY = "lumyri_password_hasher"
DUMMY_HASH_KEY = "lumyri_dummy_password_hash"
GATE_KEY = "lumyri_password_hash_gate"


def init_app(app: Flask) -> None:
    """Build the app's argon2id hasher from its ARGON2_* settings, and the dummy hash
    that failed log-ins for unknown e-mails are checked against (made once, at start-up,
    so the first such log-in is not slower than the rest)."""
    hasher = PasswordHasher(
        time_cost=app.config["ARGON2_TIME_COST"],
        memory_cost=app.config["ARGON2_MEMORY_COST"],
        parallelism=app.config["ARGON2_PARALLELISM"],
    )
    app.extensions[EXTENSION_KEY] = hasher
    app.extensions[DUMMY_HASH_KEY] = hasher.hash(secrets.token_urlsafe(24))
    # Each hash in flight holds ARGON2_MEMORY_COST KiB: cap them per process, so a burst
    # of requests waits its turn instead of exhausting memory.
    app.extensions[GATE_KEY] = HashGate(app.config["ARGON2_MAX_CONCURRENT"])


class HashGate:
    """At most `slots` holders at once; the others wait and get in in arrival order.

    threading.Semaphore lets a newcomer take a slot freed while earlier callers are still
    waking up; here a freed slot is handed straight to the longest waiter. Together with
    one queue for the whole instance (gunicorn.conf.py) that keeps waits even under load
    (bench/README.md, "Fair waits").
    """

    def __init__(self, slots: int) -> None:
        self._lock = threading.Lock()
        self._slots = slots
        self._free = slots
        self._waiters: deque[threading.Lock] = deque()

    @property
    def waiting(self) -> int:
        """How many callers are waiting for a slot."""
        return len(self._waiters)

    def acquire(self, blocking: bool = True) -> bool:
        """Take a slot, waiting for it in turn; False when not blocking and none is free."""
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return True
            if not blocking:
                return False
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        try:
            turn.acquire()  # released by the holder that hands its slot over
        except BaseException:
            self._give_up(turn)
            raise
        return True

    def _give_up(self, turn: threading.Lock) -> None:
        """A waiter interrupted (KeyboardInterrupt, say): leave the queue, or pass on the
        slot if it was handed over meanwhile, so that no slot is ever lost."""
        with self._lock:
            if turn in self._waiters:
                self._waiters.remove(turn)
                return
        self.release()

    def release(self) -> None:
        """Hand the slot to the longest waiter, or free it."""
        with self._lock:
            if self._waiters:
                self._waiters.popleft().release()
            elif self._free < self._slots:
                self._free += 1
            else:
                raise ValueError("HashGate released more often than acquired")

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _hasher() -> PasswordHasher:
    """Return the current app's hasher."""
    hasher: PasswordHasher = current_app.extensions[EXTENSION_KEY]
    return hasher


@contextmanager
def _hash_slot(operation: str) -> Iterator[None]:
    """Wait for one of the process's hashing slots; the CPU the block takes on this
    thread (argon2's, measured apart from the request's other work) is counted."""
    with current_app.extensions[GATE_KEY]:
        started = time.thread_time()
        try:
            yield
        finally:
            PASSWORD_HASH_CPU_SECONDS.labels(operation).inc(time.thread_time() - started)


def _normalise(password: str) -> str:
    """NFKC-normalise, the same way at sign-up and at login; never trim or case-fold."""
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    """Return an argon2id hash of the password."""
    with _hash_slot("hash"):
        started = time.perf_counter()
        password_hash = _hasher().hash(_normalise(password))
        PASSWORD_HASH_SECONDS.observe(time.perf_counter() - started)
        return password_hash


def verify_password(password_hash: str, password: str) -> bool:
    """Return True when the password matches the hash; never raises for a mismatch."""
    try:
        with _hash_slot("verify"):
            return _hasher().verify(password_hash, _normalise(password))
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Return True when the hash was made with other parameters than today's."""
    return _hasher().check_needs_rehash(password_hash)


def verify_against_dummy(password: str) -> bool:
    """Spend the time of a real verification when no account matches, so a failed log-in
    takes as long for an unknown e-mail as for a wrong password. Always False."""
    verify_password(current_app.extensions[DUMMY_HASH_KEY], password)
    return False

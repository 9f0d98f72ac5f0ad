"""One cache of compiled SQL for every app the tests build, instead of one per engine.

SQLAlchemy caches each statement's compiled form per engine, keyed by the engine's
dialect object among others. The suite builds an app, so an engine, per test: each test
compiled again every statement it ran, 10-15 ms of a test that signs up twice.

`SHARED` is passed as the engines' documented `compiled_cache` execution option. It keys
an entry by the dialect's class and server version instead of the dialect object, so an
engine reuses what an engine of the same database kind compiled before. Every test app
builds its engines from the same settings, so their dialects compile alike
(`tests/unit/test_compiled_statements.py` checks that statements run the same through
it). Settings that change how a dialect compiles (paramstyle, label_length, a JSON
serializer) are not in the key: an app built with other engine options than the testing
config's must not take `engine_options`. A key that does not start with a dialect is used
as it is.
"""

import threading

from sqlalchemy.engine import Dialect


class AcrossEngines:
    """The mapping SQLAlchemy reads (`get`) and fills (`[key] = compiled`)."""

    def __init__(self):
        self.entries = {}
        self.lock = threading.Lock()

    @staticmethod
    def _key(key):
        if isinstance(key, tuple) and key and isinstance(key[0], Dialect):
            dialect = key[0]
            return (type(dialect), dialect.server_version_info, *key[1:])
        return key

    def get(self, key, default=None):
        return self.entries.get(self._key(key), default)

    def __setitem__(self, key, compiled):
        with self.lock:
            self.entries[self._key(key)] = compiled

    def __len__(self):
        return len(self.entries)


SHARED = AcrossEngines()


def engine_options(options):
    """`options` (SQLALCHEMY_ENGINE_OPTIONS) with the shared cache of compiled SQL."""
    execution = {**(options.get("execution_options") or {}), "compiled_cache": SHARED}
    return {**options, "execution_options": execution}

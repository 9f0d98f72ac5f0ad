"""The suite's set-up: the fixtures (tests/fixtures.py) and the garbage collector."""

import gc


def pytest_configure(config):
    """Load the fixtures where tests run: everywhere but pytest-xdist's controller."""
    # pytest-xdist's own test for "this process hands the tests out to workers"
    # (`-n` or `--tx`; not with --collect-only, where it collects them itself).
    controller = (
        not hasattr(config, "workerinput")
        and config.getoption("dist", "no") != "no"
        and bool(config.getoption("tx", None))
        and not config.getoption("collectonly")
    )
    if not controller:
        config.pluginmanager.import_plugin("tests.fixtures")


# The garbage collector: each test's app lives through a few collections and is promoted
# to the oldest generation, so full collections came often and walked every object
# the imports made (16 s of `make test-fast`'s CPU). Collect less often, and leave out
# of it what exists once the tests are collected (gc.freeze).
gc.set_threshold(10_000, 10, 10)


def pytest_collection_finish(session):
    """Freeze what the imports and collection made (the gc module's documented use)."""
    gc.collect()
    gc.freeze()

"""Build each URL rule's `url_for` function once per test process, not once per app.

Werkzeug compiles a Python function for every rule it binds to a map (`Rule.compile` ->
`Rule._compile_builder`: an AST, then `compile()`), twice per rule: about 0.7 ms a rule
here, 30 of the 39 ms `create_app` takes. The suite builds an app per test (about 1,900
apps in `make test-fast`), so that was a third of its CPU time.

The function depends only on the rule's parsed parts (its `_trace`), its defaults and
`append_unknown`; it reaches the rule's converters through the `self` it is bound to.
So a rule without defaults can take the function compiled for an equal rule before
(`tests/unit/test_route_builders.py` checks that the URLs built are werkzeug's own).
Rules with defaults compile as usual. If a werkzeug release renames what this wraps,
`install` changes nothing and test_the_memo_is_installed_by_the_suite fails, to say so.
"""

from werkzeug.routing.rules import Rule

_compiled = {}


def install():
    """Memoise `Rule._compile_builder` for rules without defaults (idempotent)."""
    original = Rule.__dict__.get("_compile_builder")
    if original is None or getattr(original, "memoised", False):
        return

    def _compile_builder(self, append_unknown=True):
        if self.defaults:
            return original(self, append_unknown)
        key = (self.rule, tuple(self._trace), append_unknown)
        function = _compiled.get(key)
        if function is None:
            function = _compiled[key] = original(self, append_unknown)
        return function

    _compile_builder.memoised = True
    _compile_builder.__wrapped__ = original
    Rule._compile_builder = _compile_builder

"""The suite's memo of werkzeug's URL builders (tests/route_builders.py) builds the URLs
werkzeug builds without it."""

import pytest
from werkzeug.routing import Map, Rule
from werkzeug.routing.rules import Rule as RuleClass

from tests import route_builders

RULES = [
    ("/api/v1/auth/company/members/<member_id>", {"member_id": "ab/c d"}),
    (
        "/api/v1/auth/company/roles/<uuid:role_id>",
        {"role_id": "00000000-0000-4000-8000-000000000000"},
    ),
    ("/static/<path:filename>", {"filename": "a b/ü.txt"}),
    ("/api/v1/auth/me", {}),
    ("/api/v1/auth/me", {"page": "2", "q": "x y"}),  # unknown values: a query string
]


def urls(rules):
    """Every rule's URL, built through a map of its own, relative and with the query."""
    built = []
    for path, values in rules:
        adapter = Map([Rule(path, endpoint="e")]).bind("example.org")
        built.append(adapter.build("e", values))
        built.append(adapter.build("e", values, force_external=True))
    return built


def test_the_memo_is_installed_by_the_suite():
    assert getattr(RuleClass._compile_builder, "memoised", False)


def test_memoised_builders_build_what_werkzeug_builds(monkeypatch):
    memoised = urls(RULES) + urls(RULES)  # the second round takes the memo's functions
    monkeypatch.setattr(RuleClass, "_compile_builder", RuleClass._compile_builder.__wrapped__)
    assert memoised == urls(RULES) * 2


def test_rules_with_defaults_are_compiled_each_time():
    first = Map([Rule("/page/<int:n>", endpoint="e", defaults={"n": 1})]).bind("x")
    second = Map([Rule("/page/<int:n>", endpoint="e", defaults={"n": 2})]).bind("x")
    assert first.build("e", {}) == "/page/1"
    assert second.build("e", {}) == "/page/2"


@pytest.mark.parametrize("append_unknown", [True, False])
def test_a_builder_is_compiled_once_per_rule_and_kind(append_unknown):
    rule = Rule("/only/<here>", endpoint="e")
    Map([rule])
    again = Rule("/only/<here>", endpoint="e")
    Map([again])
    assert again._compile_builder(append_unknown) is rule._compile_builder(append_unknown)
    assert route_builders._compiled

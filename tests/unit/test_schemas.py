"""The sign-up field rules, one by one (no database)."""

import pytest
from marshmallow import ValidationError

from app.schemas import SIGNUP_SCHEMA, USER_SCHEMA
from tests.helpers import PASSWORD

VALID = {"first_name": "Admin", "last_name": "Test", "email": "a@example.org", "password": PASSWORD}


def errors_for(**changes):
    """The schema's error messages for a valid body with some fields changed."""
    body = {**VALID, **changes}
    try:
        SIGNUP_SCHEMA.load(body)
    except ValidationError as error:
        return error.messages
    return {}


def test_valid_body_loads():
    assert SIGNUP_SCHEMA.load(VALID) == VALID


def test_unknown_fields_are_dropped():
    loaded = SIGNUP_SCHEMA.load({**VALID, "role": "Admin", "id": "x", "state": "ACTIVED"})
    assert set(loaded) == {"first_name", "last_name", "email", "password"}


@pytest.mark.parametrize("field", ["first_name", "last_name"])
class TestNames:
    def test_trimmed(self, field):
        assert SIGNUP_SCHEMA.load({**VALID, field: "  Ada \n"})[field] == "Ada"

    @pytest.mark.parametrize("value", ["", " ", "\t\n "])
    def test_empty_after_trimming(self, field, value):
        assert errors_for(**{field: value}) == {field: ["Must not be empty."]}

    def test_100_characters_allowed(self, field):
        assert errors_for(**{field: "é" * 100}) == {}

    def test_101_characters_refused(self, field):
        assert errors_for(**{field: "a" * 101}) == {field: ["Must be at most 100 characters."]}

    def test_length_counts_code_points_after_trimming(self, field):
        assert errors_for(**{field: "  " + "😀" * 100 + "  "}) == {}

    @pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9f"])
    def test_control_characters(self, field, char):
        expected = {field: ["Must not contain control characters."]}
        assert errors_for(**{field: f"Ad{char}a"}) == expected

    @pytest.mark.parametrize("value", ["\x1fBob\x1c", "A\x85", "\x1cA"])
    def test_control_characters_at_the_ends_are_refused_not_trimmed(self, field, value):
        assert errors_for(**{field: value}) == {field: ["Must not contain control characters."]}

    def test_unicode_white_space_is_trimmed(self, field):
        assert SIGNUP_SCHEMA.load({**VALID, field: "\u3000\u00a0Ada\u2003\r\n"})[field] == "Ada"

    def test_lone_surrogate(self, field):
        messages = errors_for(**{field: "Ad\ud800a"})[field]
        assert messages == ["Must be valid Unicode text (no lone surrogates)."]

    @pytest.mark.parametrize("value", ["Zoë", "李", "\u200bAda", "\u202eAda", "O'Brien"])
    def test_other_text_is_accepted(self, field, value):
        assert errors_for(**{field: value}) == {}

    def test_several_rules_at_once(self, field):
        messages = errors_for(**{field: "\x00" * 101})[field]
        assert messages == [
            "Must be at most 100 characters.",
            "Must not contain control characters.",
        ]


class TestEmail:
    def test_trimmed_and_lower_cased(self):
        assert (
            SIGNUP_SCHEMA.load({**VALID, "email": " Ab.C@Example.ORG "})["email"]
            == "ab.c@example.org"
        )

    @pytest.mark.parametrize(
        "value",
        [
            "plain",
            "a@",
            "@example.org",
            "a@@example.org",
            "a b@example.org",
            "a@example",
            "a@-x.org",
            "",
        ],
    )
    def test_invalid_syntax(self, value):
        messages = errors_for(email=value)["email"]
        assert len(messages) == 1 and messages[0].startswith("Not a valid e-mail address")

    def test_no_dns_lookup(self):
        assert errors_for(email="someone@surely-not-a-registered-domain-4815162342.com") == {}

    def test_idn_domain(self):
        assert SIGNUP_SCHEMA.load({**VALID, "email": "Jürgen@Bücher.Example"})["email"] == (
            "jürgen@bücher.example"
        )

    def test_254_characters_is_the_limit(self):
        local, label = "a" * 64, "b" * 60
        domain = ".".join([label, label, label, "c" * (254 - 65 - 3 * 61 - 4), "org"])
        address = f"{local}@{domain}"
        assert len(address) == 254
        assert errors_for(email=address) == {}
        assert errors_for(email=address + "x")["email"] == ["Must be at most 254 characters."]

    def test_over_long_and_invalid_reports_both(self):
        messages = errors_for(email="a" * 300)["email"]
        assert messages[0] == "Must be at most 254 characters."
        assert len(messages) == 2 and "@-sign" in messages[1]

    def test_control_character(self):
        assert "email" in errors_for(email="a\x00b@example.org")


class TestPassword:
    def test_nine_characters_is_enough(self):
        assert errors_for(password="Passw@rd1") == {}

    def test_eight_characters_is_too_few(self):
        assert errors_for(password="Passw@r1") == {"password": ["Must be more than 8 characters."]}

    def test_128_characters_allowed_129_refused(self):
        assert errors_for(password="Aa1!" * 32) == {}
        assert errors_for(password="Aa1!" * 32 + "x") == {
            "password": ["Must be at most 128 characters."]
        }

    @pytest.mark.parametrize(
        ("password", "message"),
        [
            ("password@123", "Must contain at least one upper-case letter."),
            ("PASSWORD@123", "Must contain at least one lower-case letter."),
            ("Password@abc", "Must contain at least one digit."),
            ("Password1234", "Must contain at least one special character."),
            ("Password 1234", "Must contain at least one special character."),
        ],
    )
    def test_each_rule_alone(self, password, message):
        assert errors_for(password=password) == {"password": [message]}

    def test_every_rule_at_once(self):
        assert errors_for(password="        ")["password"] == [
            "Must be more than 8 characters.",
            "Must contain at least one upper-case letter.",
            "Must contain at least one lower-case letter.",
            "Must contain at least one digit.",
            "Must contain at least one special character.",
        ]

    def test_not_trimmed(self):
        assert SIGNUP_SCHEMA.load({**VALID, "password": " Password@123 "})["password"] == (
            " Password@123 "
        )

    def test_unicode_letters_count(self):
        assert errors_for(password="Ünïcødé@123") == {}

    def test_lone_surrogate(self):
        assert errors_for(password="Password@123\udc00") == {
            "password": ["Must be valid Unicode text (no lone surrogates)."]
        }


def test_user_schema_never_dumps_a_password_or_hash():
    assert "password" not in USER_SCHEMA.fields and "password_hash" not in USER_SCHEMA.fields

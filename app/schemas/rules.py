"""The field types and text rules every request schema is built from: trimmed strings,
canonical e-mail addresses, passwords, link tokens, the profile's normalised fields."""

import re
from collections.abc import Callable, Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from app.email_address import EMAIL_MAX, LONE_SURROGATE, TRIM_CHARACTERS, canonical_email, checked

NAME_MAX = 100
PASSWORD_MIN = 9  # "more than 8 characters"
PASSWORD_MAX = 128

# A text rule's check: None when the value passes, else its message (or a list of them).
Check = Callable[[str], str | list[str] | None]


class TrimmedString(fields.String):
    """A string with surrounding white space removed before any rule runs."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip(TRIM_CHARACTERS)


class EmailAddress(fields.String):
    """An e-mail address in its canonical form (app.email_address) before any rule runs."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        return canonical_email(super()._deserialize(value, attr, data, **kwargs))


# Unicode's control characters (category Cc): C0 including NUL, DEL and C1.
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class Rules(validate.Validator):
    """A text field's rules, checked in one pass: its length bounds, then each check; the
    message of every broken rule, in that order, in one ValidationError.

    A list of marshmallow validators does the same, but raises and catches an exception
    for each broken rule, which was measurably slower on the rejection path
    (bench/README.md, "Figures behind the code's choices"). `min` and `max` are read by
    apispec as minLength and maxLength, as it reads them from validate.Length. A check
    returns None when the value passes, else its message (or a list of them).
    """

    equal = None  # no exact length (apispec asks)

    def __init__(
        self,
        *checks: Check,
        min: int | None = None,
        max: int | None = None,
        too_short: str | None = None,
        too_long: str | None = None,
    ) -> None:
        self.checks = checks
        self.min, self.max = min, max
        self.too_short = too_short or f"Must be at least {min} characters."
        self.too_long = too_long or f"Must be at most {max} characters."

    def __call__(self, value: str) -> str:
        errors: list[str] = []
        if self.min is not None and len(value) < self.min:
            errors.append(self.too_short)
        if self.max is not None and len(value) > self.max:
            errors.append(self.too_long)
        for check in self.checks:
            message = check(value)
            if message:
                errors.extend([message] if isinstance(message, str) else message)
        if errors:
            raise ValidationError(errors)
        return value


def _has_lone_surrogate(value: str) -> bool:
    """True when the text holds a UTF-16 surrogate that is not part of a character."""
    return LONE_SURROGATE.search(value) is not None


def lone_surrogates(value: str) -> str | None:
    """Lone surrogates cannot be stored or hashed as text."""
    if _has_lone_surrogate(value):
        return "Must be valid Unicode text (no lone surrogates)."
    return None


def control_characters(value: str) -> str | None:
    """NUL and the other C0/C1 control characters are refused."""
    if CONTROL_CHARACTER.search(value):
        return "Must not contain control characters."
    return None


def optional_email_syntax(value: str) -> str | None:
    """ "" or a valid address."""
    return None if value == "" else email_syntax(value)


def email_syntax(value: str) -> str | None:
    """The address as email-validator checks it, without DNS look-ups."""
    if _has_lone_surrogate(value):
        return None  # reported by its own rule
    normalised, error = checked(value)
    if normalised is not None:
        return None
    assert error is not None  # checked() gives a reason whenever it gives no address
    if len(value) > EMAIL_MAX and "too long" in error:
        return None  # the length rule says so already
    return f"Not a valid e-mail address: {error}"


def _is_special(char: str) -> bool:
    """Anything that is not a letter, a digit or white space."""
    return not (char.isalnum() or char.isspace())


# The kinds of character a password must contain, each with its message.
PASSWORD_CHARACTER_KINDS = (
    (str.isupper, "Must contain at least one upper-case letter."),
    (str.islower, "Must contain at least one lower-case letter."),
    (str.isdigit, "Must contain at least one digit."),
    (_is_special, "Must contain at least one special character."),
)


def missing_character_kinds(value: str) -> list[str]:
    """One message for each kind of character the password lacks, in the order above."""
    return [message for test, message in PASSWORD_CHARACTER_KINDS if not any(map(test, value))]


NOT_EMPTY = "Must not be empty."


def name_field() -> TrimmedString:
    """first_name / last_name: required, trimmed, 1-100 code points, no control characters."""
    return TrimmedString(
        required=True,
        validate=Rules(
            control_characters, lone_surrogates, min=1, max=NAME_MAX, too_short=NOT_EMPTY
        ),
    )


class RequestSchema(Schema):
    """A request body: keys not in the schema are ignored (nothing a client sends can
    choose a role, a company, a state or an id)."""

    class Meta:
        unknown = EXCLUDE


def email_field() -> EmailAddress:
    """A required, valid address, in its canonical form (sign-up, forgotten password)."""
    return EmailAddress(required=True, validate=Rules(lone_surrogates, email_syntax, max=EMAIL_MAX))


def new_password_field() -> fields.String:
    """A password being set (sign-up, reset, change): the strength rules."""
    return fields.String(
        required=True,
        load_only=True,
        validate=Rules(
            missing_character_kinds,
            lone_surrogates,
            min=PASSWORD_MIN,
            max=PASSWORD_MAX,
            too_short=f"Must be more than {PASSWORD_MIN - 1} characters.",
        ),
    )


PROOF_PASSWORD_MAX = 1024


def proof_password_field() -> fields.String:
    """A password given to prove who one is: only compared, any string up to 1,024."""
    return fields.String(
        required=True, load_only=True, validate=Rules(lone_surrogates, max=PROOF_PASSWORD_MAX)
    )


def link_token_field() -> fields.String:
    """The token of a link from a mail: a non-empty string. Whether it is good now
    (however long, whatever it holds) is the use case's INVALID_LINK."""
    return fields.String(required=True, load_only=True, validate=Rules(min=1, too_short=NOT_EMPTY))


class Normalised(TrimmedString):
    """Trimmed text that a library checks and normalises (app.profile_rules): its
    ValueError becomes the field's message; control characters are refused first."""

    def __init__(self, normalise: Callable[[str], str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.normalise = normalise

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        problem = control_characters(text) or lone_surrogates(text)
        if problem:
            raise ValidationError(problem)
        try:
            return self.normalise(text)
        except ValueError as error:
            raise ValidationError(str(error)) from None


class Refused(fields.Field[Any]):
    """A key that may not be sent here: its message says where it belongs."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(load_only=True, metadata={"description": message}, **kwargs)
        self.message = message

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        raise ValidationError(self.message)


def optional_text(maximum: int, description: str = "") -> TrimmedString:
    """Optional trimmed text of 0-`maximum` characters without control characters."""
    return TrimmedString(
        validate=Rules(control_characters, lone_surrogates, max=maximum),
        metadata={"description": description} if description else {},
    )


def optional_name() -> TrimmedString:
    """first_name / last_name when changed: the sign-up rules, not required."""
    return TrimmedString(
        validate=Rules(
            control_characters, lone_surrogates, min=1, max=NAME_MAX, too_short=NOT_EMPTY
        )
    )


PHONE_RULE = (
    '"" or a valid number (one that exists in its country\'s plan) in international '
    "form (+ and the country code); stored in E.164 (+14155550123)"
)
LANGUAGE_MAX = 64

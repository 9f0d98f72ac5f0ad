"""The field rules of the profile and the company (PATCH /me, PATCH /company), each
checked by a well-kept library rather than a regular expression: phone numbers by
phonenumbers, countries by pycountry (ISO 3166-1), language tags by langcodes (BCP 47
and the IANA registry), time zones by zoneinfo, URLs by urllib.parse.

Each normaliser takes the trimmed text and returns the stored form, or raises
ValueError with the message a client sees. `""` always clears the field."""

from __future__ import annotations

import functools
import zoneinfo
from urllib.parse import urlsplit

import langcodes
import phonenumbers
import pycountry

AVATAR_MAX = 2048


def phone(value: str) -> str:
    """A number that exists in its country's plan, in international form; stored E.164."""
    if value == "":
        return ""
    if not value.startswith("+"):
        raise ValueError("Must be in international form, starting with + and the country code.")
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError("Not a valid phone number.") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("Not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def country(value: str) -> str:
    """An officially assigned ISO 3166-1 alpha-2 code; stored upper-case."""
    if value == "":
        return ""
    if len(value) != 2 or not value.isascii() or pycountry.countries.get(alpha_2=value) is None:
        raise ValueError("Must be an ISO 3166-1 alpha-2 country code (e.g. FR).")
    return value.upper()


def avatar(value: str) -> str:
    """An absolute https:// URL of at most 2048 characters."""
    if value == "":
        return ""
    if len(value) > AVATAR_MAX:
        raise ValueError(f"Must be at most {AVATAR_MAX} characters.")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError("Must be an absolute https:// URL.") from None
    if parts.scheme.lower() != "https" or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError("Must be an absolute https:// URL.")
    return value


def canonical_case(tag: str) -> str:
    """BCP 47's case conventions (RFC 5646, 2.1.1): language lower-case, script title
    case, region upper-case, everything else lower-case (all of it after a singleton)."""
    parts, out, after_singleton = tag.split("-"), [], False
    for position, part in enumerate(parts):
        if position == 0 or after_singleton:
            out.append(part.lower())
        elif len(part) == 1:
            after_singleton = True
            out.append(part.lower())
        elif len(part) == 4 and part.isalpha():
            out.append(part.title())
        elif len(part) == 2 and part.isalpha():
            out.append(part.upper())
        else:
            out.append(part.lower())
    return "-".join(out)


def language(value: str) -> str:
    """A valid BCP 47 tag (well-formed, every subtag in the IANA registry); stored in
    canonical case (pt-BR)."""
    if value == "":
        return ""
    # langcodes also reads `en_US`; a BCP 47 tag has hyphens only.
    well_formed = value.isascii() and all(part.isalnum() for part in value.split("-"))
    if not well_formed or not langcodes.tag_is_valid(value):
        raise ValueError("Must be a valid BCP 47 language tag (e.g. en, pt-BR).")
    return canonical_case(value)


@functools.cache
def _time_zones() -> frozenset[str]:
    """The IANA time zone names the system (or tzdata) knows."""
    return frozenset(zoneinfo.available_timezones())


def timezone(value: str) -> str:
    """An IANA time zone name (Europe/Paris)."""
    if value == "":
        return ""
    if value not in _time_zones():
        raise ValueError("Must be an IANA time zone name (e.g. Europe/Paris).")
    return value

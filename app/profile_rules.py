"""The field rules of the profile and the company (PATCH /me, PATCH /company), each
checked by a well-kept library rather than a regular expression of our own: phone
numbers by phonenumbers, countries by pycountry (ISO 3166-1), language tags by langcodes
(BCP 47 and the IANA registry), time zones by the tzdata package's list of IANA names,
URLs by urllib.parse (and RFC 3986's grammar for the parts it splits out).

Each normaliser takes the trimmed text and returns the stored form, or raises
ValueError with the message a client sees. `""` always clears the field."""

from __future__ import annotations

import functools
import importlib.resources
import re
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


# RFC 3986's grammar for the parts urllib's parser splits out (section 3.3-3.5): a path
# of pchar and "/", a query or fragment of pchar, "/" and "?"; a host that is a DNS name
# (letters, digits, hyphens, dots) or a bracketed IPv6 literal (which urllib checks).
_PCHAR = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
_PATH = re.compile(rf"(?:{_PCHAR}|/)*")
_QUERY = re.compile(rf"(?:{_PCHAR}|[/?])*")
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
NOT_A_URL = "Must be an absolute https:// URL (RFC 3986)."


def _is_host(host: str) -> bool:
    """A DNS name of RFC 1123 labels (urllib has checked a bracketed IPv6 literal)."""
    if host.startswith("["):
        return host.endswith("]")
    labels = host.removesuffix(".").split(".")
    return len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


def avatar(value: str) -> str:
    """An absolute https:// URL of at most 2048 characters, exactly as RFC 3986 allows
    it (no quote, angle bracket, backslash, space or bad %-escape anywhere), with a host,
    a port in range if any, and no user or password in it; stored as given."""
    if value == "":
        return ""
    if len(value) > AVATAR_MAX:
        raise ValueError(f"Must be at most {AVATAR_MAX} characters.")
    try:
        parts = urlsplit(value)
        port = parts.port  # a port out of range (or not a number) raises here
    except ValueError:
        raise ValueError(NOT_A_URL) from None
    host = parts.netloc
    if port is not None or host.endswith(":"):  # an empty port is allowed (RFC 3986 3.2.3)
        host = host.rpartition(":")[0]
    if (
        parts.scheme.lower() != "https"
        or "@" in parts.netloc
        or port == 0
        or not host
        or not _is_host(host)
        or not _PATH.fullmatch(parts.path)
        or not _QUERY.fullmatch(parts.query)
        or not _QUERY.fullmatch(parts.fragment)  # a second "#" is not in it either
    ):
        raise ValueError(NOT_A_URL)
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
    """The IANA time zone names, from the tzdata package's list of its zones: not the
    host's zoneinfo folder, which also holds files such as `localtime`, `posixrules` and
    `Factory` that are not zone names."""
    zones = importlib.resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in zones.splitlines() if line.strip())


def timezone(value: str) -> str:
    """An IANA time zone name (Europe/Paris)."""
    if value == "":
        return ""
    if value not in _time_zones():
        raise ValueError("Must be an IANA time zone name (e.g. Europe/Paris).")
    return value

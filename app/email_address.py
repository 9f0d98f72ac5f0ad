"""E-mail addresses: the one form an address is stored in, and the one it is compared in.

Many spellings name one mailbox: `x@bücher.de` and `x@xn--bcher-kva.de`, fullwidth
letters, NFC and NFD, `ß` and `SS`. The stored form is email-validator's normalised
address (Unicode NFC, the domain as its IDNA U-label), lower-cased; the comparison form
(the `email_key` column, unique) is that form under NFKC and Unicode case folding, so
every spelling of one mailbox is one account and logs in.
"""

import functools
import re
import unicodedata

from email_validator import EmailNotValidError, validate_email

EMAIL_MAX = 254


def trimmed_white_space(last: int = 0xFFFF) -> str:
    """White space that trimming removes, among the code points up to `last`: Unicode
    white space, except the control characters Python also counts as space (U+001C to
    U+001F, U+0085), which must be refused, not hidden."""
    return "".join(
        char
        for char in map(chr, range(last + 1))
        if char.isspace() and (unicodedata.category(char) != "Cc" or char in "\t\n\v\f\r")
    )


# Unicode has no white space beyond the Basic Multilingual Plane, so only it is looked
# through (120 ms less at each start; tests/unit/test_email_address.py checks it).
TRIM_CHARACTERS = trimmed_white_space()
# A surrogate in a decoded str is always a lone one (JSON's pairs are joined on parsing).
LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


@functools.lru_cache(maxsize=256)
def checked(address: str) -> tuple[str | None, str | None]:
    """(normalised address, None) when email-validator accepts the address (no DNS),
    else (None, its reason). Cached: a sign-up asks twice (the stored form, the rule)."""
    if LONE_SURROGATE.search(address):
        return None, "lone surrogate"
    try:
        return validate_email(address, check_deliverability=False).normalized, None
    except EmailNotValidError as error:
        return None, str(error)


def canonical_email(address: str) -> str:
    """The stored and shown form: trimmed, normalised by the validator, lower-cased.
    Text that is no valid address (a log-in may send one) is only trimmed and lower-cased."""
    trimmed = address.strip(TRIM_CHARACTERS)
    normalised, _ = checked(trimmed)
    return unicodedata.normalize("NFC", (normalised or trimmed).lower())


def email_key(address: str) -> str:
    """The comparison form of a canonical address: NFKC with Unicode case folding
    (`STRASSE` and `straße`, fullwidth and plain letters are one)."""
    folded = unicodedata.normalize("NFKC", address).casefold()
    return unicodedata.normalize("NFKC", folded)

"""What app.email_address trims, taken from the whole of Unicode."""

import sys

from app.email_address import TRIM_CHARACTERS, trimmed_white_space


def test_the_trimmed_white_space_is_the_same_over_every_code_point():
    assert TRIM_CHARACTERS == trimmed_white_space(sys.maxunicode)
    assert "\u3000" in TRIM_CHARACTERS and "\t" in TRIM_CHARACTERS
    assert "\x85" not in TRIM_CHARACTERS and "\x1c" not in TRIM_CHARACTERS

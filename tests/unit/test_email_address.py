"""What app.email_address trims, taken from the whole of Unicode."""

import sys
import unicodedata

from app.email_address import TRIM_CHARACTERS


def test_the_trimmed_white_space_is_every_code_points_but_the_refused_controls():
    everywhere = "".join(
        char
        for char in map(chr, range(sys.maxunicode + 1))
        if char.isspace() and (unicodedata.category(char) != "Cc" or char in "\t\n\v\f\r")
    )
    assert TRIM_CHARACTERS == everywhere
    assert "\u3000" in TRIM_CHARACTERS and "\x85" not in TRIM_CHARACTERS

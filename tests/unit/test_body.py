"""The strict JSON body parser (no database)."""

import pytest

from app.api.body import MAX_DEPTH, parse_json_object
from app.errors import InvalidJSON


def nested(depth):
    """A JSON object whose arrays and objects nest `depth` levels in all."""
    return b'{"a": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_object_parses():
    assert parse_json_object(b'{"a": [1, {"b": null}], "c": "\\u00e9"}') == {
        "a": [1, {"b": None}],
        "c": "é",
    }


def test_integers_longer_than_python_converts_are_still_json():
    parsed = parse_json_object(b'{"big": ' + b"9" * 5000 + b', "small": 12}')
    assert parsed["small"] == 12 and str(parsed["big"]) == "9" * 5000


def test_depth_limit_is_inclusive():
    assert parse_json_object(nested(MAX_DEPTH)) == {"a": parse_json_object(nested(MAX_DEPTH))["a"]}
    with pytest.raises(InvalidJSON):
        parse_json_object(nested(MAX_DEPTH + 1))


def test_many_brackets_inside_strings_do_not_count():
    assert parse_json_object(b'{"a": "' + b"[" * 100 + b'"}') == {"a": "[" * 100}


def test_wide_but_shallow_is_fine():
    assert len(parse_json_object(b'{"a": [' + b",".join([b"[]"] * 500) + b"]}")["a"]) == 500


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1, "a": 2}',
        b'{"a": {"b": 1, "b": 1}}',
        b'{"a": NaN}',
        b'{"a": [Infinity]}',
        b"[" * 100000 + b"]" * 100000,
        b"\xef\xbb\xbf{}",
        b"{",
        b"",
        b"true",
    ],
)
def test_refused(raw):
    with pytest.raises(InvalidJSON):
        parse_json_object(raw)

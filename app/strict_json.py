"""The one JSON object hook of the service: a repeated key makes a text ambiguous (JSON
readers keep the last, others the first), so a request body, a token's header or payload
that repeats one is refused wherever it is read."""

from typing import Any


class RepeatedKey(ValueError):
    """A JSON object repeats a key."""


def object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads' object_pairs_hook: the object, or RepeatedKey when a key repeats."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise RepeatedKey()
    return result

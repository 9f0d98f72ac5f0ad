"""The cursors of the paged lists (members, invitations): opaque to clients, signed with
a key derived from SECRET_KEY and bound to their list, so a cursor of one list, or one a
client made up, is refused instead of read."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from itsdangerous import BadData, URLSafeSerializer

from app.models import as_utc
from app.secret_key import derived_key

DERIVATION_CONTEXT = b"lumyri-accounts/list-cursor/v1"
MAX_LENGTH = 512


class Position(NamedTuple):
    """Where a page ends: the last item's time (joined or created) and its id."""

    moment: datetime
    item_id: str


def _serializer(list_name: str) -> URLSafeSerializer:
    return URLSafeSerializer(derived_key(DERIVATION_CONTEXT), salt=f"lumyri-cursor-{list_name}")


def encode(list_name: str, moment: datetime, item_id: str) -> str:
    """The cursor of the page that follows the item at this position."""
    return str(_serializer(list_name).dumps([as_utc(moment).isoformat(), item_id]))


def decode(list_name: str, text: str) -> Position:
    """The position a cursor of this list names; ValueError for anything else."""
    if len(text) > MAX_LENGTH or not text.isascii():
        raise ValueError("not a cursor")
    try:
        value = _serializer(list_name).loads(text)
    except BadData:
        raise ValueError("not a cursor") from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(part, str) for part in value)
    ):
        raise ValueError("not a cursor")
    return Position(as_utc(datetime.fromisoformat(value[0])), value[1])

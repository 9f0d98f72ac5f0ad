"""Each error code is defined once (app.errors); the README's table says the same."""

import os
import re

from app.error_handlers import BY_STATUS
from app.errors import ERRORS
from tests.helpers import ROOT

TABLE_HEADER = "| status | code | when |"


def readme_error_rows():
    """(status, code) pairs of the README's error table (a row may list several)."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as readme:
        lines = readme.read().splitlines()
    start = lines.index(TABLE_HEADER) + 2
    pairs = set()
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        status_cell, code_cell = line.split("|")[1:3]
        statuses = [int(status) for status in re.findall(r"\d{3}", status_cell)]
        codes = re.findall(r"`([A-Z_]+)`", code_cell)
        assert len(statuses) == len(codes), line
        pairs.update(zip(statuses, codes, strict=True))
    return pairs


def test_readme_error_table_matches_the_definitions():
    assert readme_error_rows() == {(cls.status, code) for code, cls in ERRORS.items()}


def test_every_code_has_its_prose_and_a_unique_name():
    for code, cls in ERRORS.items():
        assert cls.code == code and re.fullmatch(r"[A-Z_]+", code)
        assert cls.description.startswith(code), code  # the OpenAPI prose names its code
        assert cls.message.endswith("."), code


def test_statuses_gunicorn_and_werkzeug_answer_have_a_code():
    for status in (400, 404, 405, 413, 414, 415, 417, 431, 500, 501, 503):
        assert BY_STATUS[status].status == status

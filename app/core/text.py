"""The one string type for everything a client sends: `Text`, a str without NUL or lone surrogates.

PostgreSQL text cannot hold NUL, and a lone surrogate (JSON "\\ud800") cannot be encoded to UTF-8 at
all: either one reaching the database is a 500 there, while SQLite stores it. Every request string
(body field, query, form) is declared as `Text`, so both databases answer a 422 naming the field;
tests/core/test_text.py walks the app's routes and fails on any plain `str` parameter.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def check_text(value: str) -> str:
    """The value, or a ValueError that says which character is not allowed."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"must be valid Unicode (a lone surrogate at position {exc.start})") from None
    return value


TEXT_VALIDATOR = AfterValidator(check_text)
Text = Annotated[str, TEXT_VALIDATOR]

"""Text PostgreSQL can store: shared by every form and serializer whose input reaches the database.

PostgreSQL refuses NUL in text and in jsonb (`\\u0000` in a JSON string), and a lone surrogate (`\\ud800`,
which JSON can carry) cannot be encoded as UTF-8 at all; either reached the database as a 500. Django's and
DRF's CharField refuse NUL already (ProhibitNullCharactersValidator); these cover surrogates, and both in
every string of a JSON value, keys included.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

SURROGATES = "This value contains characters that are not valid text."
JSON_NOT_STORABLE = "Text in this value may not contain NUL characters or lone surrogates."


def has_surrogates(value: str) -> bool:
    return any("\ud800" <= char <= "\udfff" for char in value)


def prohibit_surrogates(value: str) -> None:
    if has_surrogates(value):
        raise ValidationError(SURROGATES, code="surrogates")


def json_text_storable(value: Any) -> None:
    """Raise ValidationError if any string in the JSON value (keys too) holds NUL or a lone surrogate.

    Iterative, so a deep value costs no stack (the parsers bound the depth; see config.api.json_loads)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or has_surrogates(item):
                raise ValidationError(JSON_NOT_STORABLE, code="not_storable")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)

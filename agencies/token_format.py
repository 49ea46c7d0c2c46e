"""The agency token's text: `mkt_at_` + 43 base62 characters (32 random bytes) + 6 base62 characters of CRC32.

Kept free of models and settings so that `accounts.clerk` can tell our tokens from Clerk's without importing
the agencies app, and so a secret scanner's rule can be written from this file alone:

    mkt_at_[0-9A-Za-z]{49}   with the last 6 characters the base62 CRC32 of everything before them

The prefix is no Clerk token's (`ak_`, `mt_`, `m2m_`, `oat_`, `sk_`, `pk_`) and no gitleaks rule's; the
underscores keep the whole token one word for a double click. The checksum lets us refuse a mistyped or
truncated token before any database work, and lets a scanner confirm a match offline.
"""

from __future__ import annotations

import secrets
import zlib

PREFIX = "mkt_at_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
RANDOM_BYTES = 32
BODY_LENGTH = 43  # 62**43 > 2**256: every 32-byte value fits, zero-padded to a fixed width
CHECKSUM_LENGTH = 6  # 62**6 > 2**32
TOKEN_LENGTH = len(PREFIX) + BODY_LENGTH + CHECKSUM_LENGTH
HINT_LENGTH = 4


def _base62(value: int, width: int) -> str:
    digits = []
    while value:
        value, rest = divmod(value, 62)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits)).rjust(width, "0")


def _checksum(text: str) -> str:
    return _base62(zlib.crc32(text.encode("ascii")), CHECKSUM_LENGTH)


def token_generate() -> str:
    """A new token from the OS's CSPRNG."""
    head = PREFIX + _base62(int.from_bytes(secrets.token_bytes(RANDOM_BYTES), "big"), BODY_LENGTH)
    return head + _checksum(head)


def looks_like_token(text: str) -> bool:
    """Whether a bearer value is ours to judge (by its prefix alone): such a value is never handed to Clerk."""
    return text.startswith(PREFIX)


def token_well_formed(text: str) -> bool:
    """Length, alphabet and checksum; constant work per token, no database."""
    if len(text) != TOKEN_LENGTH or not text.startswith(PREFIX):
        return False
    rest = text[len(PREFIX) :]
    if any(c not in _INDEX for c in rest):
        return False
    head, checksum = text[:-CHECKSUM_LENGTH], text[-CHECKSUM_LENGTH:]
    return secrets.compare_digest(_checksum(head), checksum)


def display_hint(text: str) -> str:
    """The last characters, shown beside the token's name so its owner can tell tokens apart."""
    return text[-HINT_LENGTH:]

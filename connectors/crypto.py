"""Secrets at rest: Fernet under FIELD_ENCRYPTION_KEYS, each ciphertext tagged with the id of its key.

Stored form: ``v1:<key id>:<fernet token>``. The key id (first 12 hex digits of the key's SHA-256)
lets us decrypt with exactly the key that wrote a value and count which rows still use a retired
key. The first key encrypts; every listed key decrypts. A value written under a key that is no
longer listed, a tampered value or a value that is not ours raises — never returns ciphertext or "".
Every function that sees plaintext is marked `sensitive_variables()`: error reports show none of it.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

PREFIX = "v1"

NO_KEYS = "FIELD_ENCRYPTION_KEYS is empty: secrets cannot be encrypted or decrypted."
BAD_KEY = "FIELD_ENCRYPTION_KEYS entry #{index} is not a Fernet key (32 url-safe base64-encoded bytes)."
UNKNOWN_KEY = "This secret was encrypted with key {key_id}, which is not in FIELD_ENCRYPTION_KEYS."
NOT_CIPHERTEXT = "This value is not a secret encrypted by this application."
CORRUPT = "The secret encrypted with key {key_id} does not decrypt with it (tampered or truncated)."


class SecretDecryptionError(Exception):
    """A stored secret cannot be decrypted with the configured keys."""


class EncryptionConfigError(Exception):
    """FIELD_ENCRYPTION_KEYS is missing or malformed."""


def key_id_for(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Keyring:
    primary_id: str
    fernets: dict[str, Fernet]  # key id -> Fernet, in settings order
    multi: MultiFernet

    @property
    def retired_ids(self) -> list[str]:
        return [key_id for key_id in self.fernets if key_id != self.primary_id]


@functools.lru_cache(maxsize=8)
def _keyring(keys: tuple[str, ...]) -> Keyring:
    if not keys:
        raise EncryptionConfigError(NO_KEYS)
    fernets: dict[str, Fernet] = {}
    for index, key in enumerate(keys):
        try:
            fernets[key_id_for(key)] = Fernet(key.encode())
        except (ValueError, TypeError) as exc:
            raise EncryptionConfigError(BAD_KEY.format(index=index)) from exc
    return Keyring(primary_id=key_id_for(keys[0]), fernets=fernets, multi=MultiFernet(list(fernets.values())))


def keyring() -> Keyring:
    # Keyed on the settings value so tests that swap keys get a fresh ring.
    return _keyring(tuple(settings.FIELD_ENCRYPTION_KEYS))


def _split(value: str) -> tuple[str, str]:
    parts = value.split(":", 2) if isinstance(value, str) else []
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        raise SecretDecryptionError(NOT_CIPHERTEXT)
    return parts[1], parts[2]


@sensitive_variables()
def encrypt_secret(plaintext: str) -> str:
    if not isinstance(plaintext, str) or not plaintext:
        raise ValueError("Only non-empty strings are encrypted; store an empty field for 'no secret'.")
    ring = keyring()
    token = ring.fernets[ring.primary_id].encrypt(plaintext.encode())
    return f"{PREFIX}:{ring.primary_id}:{token.decode()}"


@sensitive_variables()
def decrypt_secret(value: str) -> str:
    key_id, token = _split(value)
    fernet = keyring().fernets.get(key_id)
    if fernet is None:
        raise SecretDecryptionError(UNKNOWN_KEY.format(key_id=key_id))
    try:
        return fernet.decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError(CORRUPT.format(key_id=key_id)) from exc


def secret_key_id(value: str) -> str:
    """The id of the key that wrote `value` (raises for values that are not ours)."""
    return _split(value)[0]


@sensitive_variables()
def reencrypt_secret(value: str) -> str:
    """Rewrite `value` under the primary key (MultiFernet.rotate keeps the original timestamp)."""
    key_id, token = _split(value)
    ring = keyring()
    if key_id == ring.primary_id:
        return value
    if key_id not in ring.fernets:
        raise SecretDecryptionError(UNKNOWN_KEY.format(key_id=key_id))
    try:
        rotated = ring.multi.rotate(token.encode())
    except InvalidToken as exc:
        raise SecretDecryptionError(CORRUPT.format(key_id=key_id)) from exc
    return f"{PREFIX}:{ring.primary_id}:{rotated.decode()}"


@sensitive_variables()
def mask_secret(plaintext: str) -> str:
    """What people may see of a secret: its last four characters at most."""
    if len(plaintext) < 12:
        return "••••"
    return "••••" + plaintext[-4:]

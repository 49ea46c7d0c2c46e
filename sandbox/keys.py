"""The RSA key pair the sandbox signs Clerk session tokens with.

The demo keeps one key across restarts (stored as a PEM file) so that a browser's session cookie and
the web app's configured public key stay valid after `make run` restarts the sandbox; tests use a
throwaway key held in memory.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_SIZE = 2048


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class RsaKeyPair:
    """An RS256 signing key with the public forms Clerk hands out (PEM and JWK)."""

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        self.private_key = private_key
        public_der = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # Derived from the key itself, so a reloaded key keeps its kid and cached JWKS stay valid.
        self.kid = "ins_sandbox_" + hashlib.sha256(public_der).hexdigest()[:20]

    @classmethod
    def generate(cls) -> RsaKeyPair:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE))

    @classmethod
    def from_private_pem(cls, pem: bytes) -> RsaKeyPair:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the sandbox needs an RSA private key")
        return cls(key)

    @property
    def private_pem(self) -> str:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    @property
    def public_pem(self) -> str:
        return (
            self.private_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )

    def public_jwk(self) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "use": "sig",
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
        }


def load_or_create_key_pair(path: Path) -> RsaKeyPair:
    """Load the private key at `path`, creating it (mode 0600) on first use.

    O_EXCL makes two processes started at once agree on one key: the loser of the race reads the
    winner's file instead of overwriting it.
    """
    path = Path(path)
    if path.exists():
        return RsaKeyPair.from_private_pem(path.read_bytes())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pair = RsaKeyPair.generate()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return RsaKeyPair.from_private_pem(path.read_bytes())
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(pair.private_pem)
    return pair


def write_public_key(pair: RsaKeyPair, path: Path) -> None:
    """Write the public PEM where the web app's settings can read it (not secret: mode 0644)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(pair.public_pem, encoding="ascii")

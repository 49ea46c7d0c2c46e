"""Checks of settings that a process cannot serve without, run while the settings load.

Each check returns one line naming the setting and what is wrong with it, or None; no line ever
repeats the value (they are secrets). `config/settings.py` raises SettingsError with that line;
`manage.py` and the gunicorn master (`config/gunicorn.py`) print it alone and exit 2, and a gunicorn
worker that meets it fails to boot, which stops gunicorn rather than restarting workers forever.
`/readyz` runs the same checks against the live settings (`config/health.py`).

Imports nothing of Django's settings: the settings module imports this.
"""

from __future__ import annotations

import base64
import binascii
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.core.exceptions import ImproperlyConfigured

EXIT_CODE = 2
# Django's own test of a weak key (check --deploy, security.W009): shorter or with fewer distinct characters.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5


class SettingsError(ImproperlyConfigured):
    """A setting the process cannot run with; the message is one line naming it, never its value."""


@contextmanager
def exit_on_settings_error() -> Iterator[None]:
    """Turn a SettingsError into its one line on stderr and exit 2, instead of a traceback."""
    try:
        yield
    except SettingsError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_CODE) from None


def secret_key_problem(value: str) -> str | None:
    if not value:
        return "SECRET_KEY is required (set it in the environment, or DJANGO_DEV=1 for local development)"
    if (
        len(value) < SECRET_KEY_MIN_LENGTH
        or len(set(value)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
        or value.startswith(("django-insecure-", "local-dev-only"))
    ):
        return (
            f"SECRET_KEY is too weak: use at least {SECRET_KEY_MIN_LENGTH} random characters "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )
    return None


def fernet_keys_problem(keys: Sequence[str]) -> str | None:
    if not keys:
        return "FIELD_ENCRYPTION_KEYS is required (set it in the environment, or DJANGO_DEV=1 for local development)"
    for number, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError, UnicodeEncodeError):
            return (
                f"FIELD_ENCRYPTION_KEYS entry {number} of {len(keys)} is not a Fernet key "
                "(32 url-safe base64-encoded bytes: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')"
            )
    return None


def clerk_jwt_key_problem(value: str) -> str | None:
    """CLERK_JWT_KEY must be the instance's PEM public key (RSA, as Clerk signs RS256)."""
    if not value:
        return "CLERK_JWT_KEY (or CLERK_JWT_KEY_FILE) is required: Clerk's PEM public key (dashboard, API keys)"
    # The SDK drops line breaks before it parses the key; a key that parses only with them would still fail.
    try:
        key = load_pem_public_key(re.sub(r"\r\n|\n|\r", "", value).encode())
    except (ValueError, TypeError, UnicodeEncodeError):
        return "CLERK_JWT_KEY is not a PEM public key (-----BEGIN PUBLIC KEY----- ...)"
    if not isinstance(key, RSAPublicKey):
        return "CLERK_JWT_KEY is not an RSA public key: Clerk signs session tokens with RS256"
    return None


def origins_problem(name: str, origins: Sequence[str]) -> str | None:
    for origin in origins:
        split = urlsplit(origin)
        if split.scheme not in ("http", "https") or not split.netloc or origin != f"{split.scheme}://{split.netloc}":
            return f"{name} entry {origin!r} is not an origin (scheme://host[:port], no path)"
    return None


def allowed_hosts_problem(hosts: Sequence[str]) -> str | None:
    if not hosts:
        return "ALLOWED_HOSTS is required: the host names the app answers (e.g. app.example.com)"
    if "*" in hosts:
        return "ALLOWED_HOSTS must name the app's hosts, not '*' (Host-header attacks)"
    return None


SHOPIFY_REQUIRED = ("SHOPIFY_API_KEY", "SHOPIFY_API_SECRET", "SHOPIFY_SCOPES", "SHOPIFY_API_VERSION", "SHOPIFY_APP_URL")


def shopify_problem(values: dict[str, object]) -> str | None:
    """The Shopify app's settings: every one is needed to install, refresh and verify webhooks."""
    for name in SHOPIFY_REQUIRED:
        if not values.get(name):
            return (
                f"{name} is required: the Shopify app's settings (Partner dashboard), or DJANGO_DEV=1 for the sandbox"
            )
    app_url = str(values["SHOPIFY_APP_URL"])
    split = urlsplit(app_url)
    if split.scheme not in ("http", "https") or not split.netloc or split.query or split.fragment:
        return "SHOPIFY_APP_URL is not a URL (https://app.example.com): the App URL configured in Shopify"
    if not re.fullmatch(r"\d{4}-\d{2}|unstable", str(values["SHOPIFY_API_VERSION"])):
        return "SHOPIFY_API_VERSION is not an Admin API version (YYYY-MM, e.g. 2026-01)"
    return None


def clerk_secret_key_problem(value: str) -> str | None:
    if value and not value.startswith(("sk_live_", "sk_test_")):
        return "CLERK_SECRET_KEY is not a Clerk secret key (sk_live_... or sk_test_...)"
    return None


def clerk_webhook_secret_problem(value: str) -> str | None:
    if not value:
        return None
    try:
        ok = value.startswith("whsec_") and bool(_plain_b64decode(value.removeprefix("whsec_")))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        ok = False
    return None if ok else "CLERK_WEBHOOK_SECRET is not a Svix signing secret (whsec_ and base64)"


def airbyte_problem(api_url: str, client_id: str, client_secret: str, workspace_id: str) -> str | None:
    """Ingestion runs through Airbyte's public API: without it no merchant's data ever arrives."""
    if not api_url:
        return (
            "AIRBYTE_API_URL is required: Airbyte's public API (https://api.airbyte.com/v1, or "
            "<server>/api/public/v1 when self-hosted)"
        )
    split = urlsplit(api_url)
    if split.scheme not in ("http", "https") or not split.netloc:
        return "AIRBYTE_API_URL is not an http(s) URL"
    if not client_id or not client_secret:
        return (
            "AIRBYTE_CLIENT_ID and AIRBYTE_CLIENT_SECRET are required: an Airbyte application's credentials "
            "(Airbyte: User settings, Applications)"
        )
    if not re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", workspace_id or ""):
        return "AIRBYTE_WORKSPACE_ID is required: the UUID of the Airbyte workspace the sources are created in"
    return None


def _plain_b64decode(value: str) -> bytes:
    return base64.b64decode(value.encode("ascii"), validate=True)

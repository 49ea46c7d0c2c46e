"""Boot-time configuration: a missing secret stops the process with one clear line."""

import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings

ROOT = settings.BASE_DIR
_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
CLERK_PEM = (
    _RSA.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
)


AIRBYTE = {
    "AIRBYTE_API_URL": "https://api.airbyte.com/v1",
    "AIRBYTE_CLIENT_ID": "airbyte-application-id",
    "AIRBYTE_CLIENT_SECRET": "airbyte-application-secret",
    "AIRBYTE_WORKSPACE_ID": "5ae6b09b-fdec-41af-aaf7-7d94cfc33ef6",
}


def _run(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    # Only what a process needs to start: the configuration under test comes from env_overrides alone.
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "XDG_RUNTIME_DIR") if k in os.environ}
    env["ENV_FILE"] = os.devnull  # a developer's .env must not supply what the test removed
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def _production_env(**overrides: str) -> dict[str, str]:
    env = {
        "DJANGO_DEV": "0",
        "SECRET_KEY": "x7#Lq9!vR2@mZ4$wT8%nB6^kY1&hC3*pF5(dG0)sJ_-+=aQeUiOoPlKjHgF",
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "ALLOWED_HOSTS": "app.example.com",
        "CLERK_AUTHORIZED_PARTIES": "https://app.example.com",
        "CLERK_JWT_KEY": CLERK_PEM,
        "SHOPIFY_API_KEY": "prod-shopify-api-key",
        "SHOPIFY_API_SECRET": "prod-shopify-api-secret-0123456789",
        "SHOPIFY_SCOPES": "read_orders,read_customers",
        "SHOPIFY_API_VERSION": "2026-01",
        "SHOPIFY_APP_URL": "https://app.example.com",
        "AGENCY_TOKEN_PEPPER": "prod-agency-token-pepper-0123456789abcdef",
        **AIRBYTE,
    }
    env.update(overrides)
    return env


@pytest.mark.parametrize("missing", ["SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "AGENCY_TOKEN_PEPPER"])
def test_boot_without_a_required_secret_fails_with_one_clear_line(missing):
    env = _production_env()
    del env[missing]
    result = _run(env, "check")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"configuration error: {missing} is required (set it in the environment, or DJANGO_DEV=1 for local development)"
    ]


def test_boot_without_a_broker_in_production_fails_clearly():
    env = _production_env()
    del env["REDIS_URL"]
    result = _run(env, "check")
    assert result.returncode == 2
    assert "REDIS_URL" in result.stderr.strip().splitlines()[0]


def test_sandbox_is_refused_in_production():
    result = _run(_production_env(SANDBOX_URL="http://127.0.0.1:8001"), "check")
    assert result.returncode == 2
    assert "SANDBOX_URL" in result.stderr


def test_deploy_check_has_no_warnings_in_a_production_like_environment():
    result = _run(_production_env(), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_refuses_to_boot_without_authorized_parties():
    env = _production_env()
    del env["CLERK_AUTHORIZED_PARTIES"]
    result = _run(env, "check")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: CLERK_AUTHORIZED_PARTIES is required: the origins (e.g. https://app.example.com) "
        "users sign in from"
    ]


@pytest.mark.parametrize("party", ["app.example.com", "https://app.example.com/", "https://app.example.com/x"])
def test_an_authorized_party_that_is_not_an_origin_is_refused(party):
    result = _run(_production_env(CLERK_AUTHORIZED_PARTIES=f"https://ok.example.com,{party}"), "check")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"configuration error: CLERK_AUTHORIZED_PARTIES entry {party!r} is not an origin "
        "(scheme://host[:port], no path)"
    ]


# --- every setting production cannot serve without (issue 12 item 7) ---------------------------------------

SECRET = "s3cr3t-value-that-must-not-be-echoed"
EC_PEM = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
PRIVATE_PEM = _RSA.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
FERNET_HINT = (
    "(32 url-safe base64-encoded bytes: python -c 'from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())')"
)

BAD_PRODUCTION_SETTINGS = {
    "no Clerk key": (
        {"CLERK_JWT_KEY": None},
        "CLERK_JWT_KEY (or CLERK_JWT_KEY_FILE) is required: Clerk's PEM public key (dashboard, API keys)",
    ),
    "Clerk key not a PEM": (
        {"CLERK_JWT_KEY": SECRET},
        "CLERK_JWT_KEY is not a PEM public key (-----BEGIN PUBLIC KEY----- ...)",
    ),
    "Clerk key truncated": (
        {"CLERK_JWT_KEY": CLERK_PEM[:200]},
        "CLERK_JWT_KEY is not a PEM public key (-----BEGIN PUBLIC KEY----- ...)",
    ),
    "Clerk key is the private key": (
        {"CLERK_JWT_KEY": PRIVATE_PEM},
        "CLERK_JWT_KEY is not a PEM public key (-----BEGIN PUBLIC KEY----- ...)",
    ),
    "Clerk key not RSA": (
        {"CLERK_JWT_KEY": EC_PEM},
        "CLERK_JWT_KEY is not an RSA public key: Clerk signs session tokens with RS256",
    ),
    "Clerk key file missing": (
        {"CLERK_JWT_KEY": None, "CLERK_JWT_KEY_FILE": "/nonexistent/clerk.pem"},
        "CLERK_JWT_KEY_FILE points at /nonexistent/clerk.pem, which does not exist",
    ),
    "malformed encryption key": (
        {"FIELD_ENCRYPTION_KEYS": SECRET},
        f"FIELD_ENCRYPTION_KEYS entry 1 of 1 is not a Fernet key {FERNET_HINT}",
    ),
    "second encryption key malformed": (
        {"FIELD_ENCRYPTION_KEYS": f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()[:-2]}"},
        f"FIELD_ENCRYPTION_KEYS entry 2 of 2 is not a Fernet key {FERNET_HINT}",
    ),
    "weak secret key": (
        {"SECRET_KEY": SECRET},
        "SECRET_KEY is too weak: use at least 50 random characters "
        "(python -c 'import secrets; print(secrets.token_urlsafe(50))')",
    ),
    "no allowed hosts": (
        {"ALLOWED_HOSTS": None},
        "ALLOWED_HOSTS is required: the host names the app answers (e.g. app.example.com)",
    ),
    "any host": ({"ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS must name the app's hosts, not '*' (Host-header attacks)"),
    "Clerk secret key malformed": (
        {"CLERK_SECRET_KEY": SECRET},
        "CLERK_SECRET_KEY is not a Clerk secret key (sk_live_... or sk_test_...)",
    ),
    "webhook secret malformed": (
        {"CLERK_WEBHOOK_SECRET": "whsec_" + SECRET},
        "CLERK_WEBHOOK_SECRET is not a Svix signing secret (whsec_ and base64)",
    ),
    "no Airbyte API": (
        {"AIRBYTE_API_URL": None},
        "AIRBYTE_API_URL is required: Airbyte's public API (https://api.airbyte.com/v1, or "
        "<server>/api/public/v1 when self-hosted)",
    ),
    "Airbyte API not a URL": ({"AIRBYTE_API_URL": "api.airbyte.com/v1"}, "AIRBYTE_API_URL is not an http(s) URL"),
    "no Airbyte application secret": (
        {"AIRBYTE_CLIENT_SECRET": None},
        "AIRBYTE_CLIENT_ID and AIRBYTE_CLIENT_SECRET are required: an Airbyte application's credentials "
        "(Airbyte: User settings, Applications)",
    ),
    "Airbyte workspace not a UUID": (
        {"AIRBYTE_WORKSPACE_ID": SECRET},
        "AIRBYTE_WORKSPACE_ID is required: the UUID of the Airbyte workspace the sources are created in",
    ),
    "trusted origin not an origin": (
        {"CSRF_TRUSTED_ORIGINS": "app.example.com"},
        "CSRF_TRUSTED_ORIGINS entry 'app.example.com' is not an origin (scheme://host[:port], no path)",
    ),
}


@pytest.mark.parametrize(("overrides", "line"), BAD_PRODUCTION_SETTINGS.values(), ids=BAD_PRODUCTION_SETTINGS.keys())
def test_production_does_not_boot_with_a_setting_it_cannot_serve_with(overrides, line):
    env = _production_env()
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    result = _run(env, "check")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [f"configuration error: {line}"]
    assert SECRET not in result.stderr


def test_production_boots_with_the_clerk_key_from_a_file(tmp_path):
    key_file = tmp_path / "clerk.pem"
    key_file.write_text(CLERK_PEM)
    env = _production_env(CLERK_JWT_KEY_FILE=str(key_file))
    del env["CLERK_JWT_KEY"]
    result = _run(env, "check")
    assert result.returncode == 0, result.stderr


def test_production_boots_with_the_clerk_key_on_one_line_with_escaped_line_breaks():
    result = _run(_production_env(CLERK_JWT_KEY=CLERK_PEM.replace("\n", "\\n")), "check")
    assert result.returncode == 0, result.stderr


def test_a_malformed_encryption_key_stops_local_development_too():
    env = _production_env(DJANGO_DEV="1", FIELD_ENCRYPTION_KEYS=SECRET)
    result = _run(env, "check")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"configuration error: FIELD_ENCRYPTION_KEYS entry 1 of 1 is not a Fernet key {FERNET_HINT}"
    ]


@pytest.mark.parametrize(
    "missing", ["SHOPIFY_API_KEY", "SHOPIFY_API_SECRET", "SHOPIFY_SCOPES", "SHOPIFY_API_VERSION", "SHOPIFY_APP_URL"]
)
def test_production_refuses_to_boot_without_a_shopify_setting(missing):
    env = _production_env()
    del env[missing]
    result = _run(env, "check")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"configuration error: {missing} is required: the Shopify app's settings (Partner dashboard), "
        "or DJANGO_DEV=1 for the sandbox"
    ]
    assert "prod-shopify-api-secret" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ({"SHOPIFY_APP_URL": "app.example.com"}, "SHOPIFY_APP_URL is not a URL"),
        ({"SHOPIFY_API_VERSION": "latest"}, "SHOPIFY_API_VERSION is not an Admin API version"),
    ],
)
def test_production_refuses_a_malformed_shopify_setting(override, line):
    result = _run(_production_env(**override), "check")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[0].startswith(f"configuration error: {line}")

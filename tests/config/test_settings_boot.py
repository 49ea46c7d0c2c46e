"""Boot-time configuration: a missing secret stops the process with one clear line."""

import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

ROOT = settings.BASE_DIR


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
    }
    env.update(overrides)
    return env


@pytest.mark.parametrize("missing", ["SECRET_KEY", "FIELD_ENCRYPTION_KEYS"])
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

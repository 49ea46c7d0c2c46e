"""Fixtures shared by the whole suite. Few on purpose: factories live beside each app's tests."""

from __future__ import annotations

import os

import pytest

from sandbox.server import SandboxControl, SandboxServer

TEST_ORIGIN = "http://testserver"  # Django's test client host; the azp our tokens are minted for


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix) -> None:
    """One test database per pytest process, so suites run side by side on one server don't collide."""
    from django.conf import settings

    for db in settings.DATABASES.values():
        test = db.setdefault("TEST", {})
        if test.get("MIRROR"):
            continue
        base = test.get("NAME") or f"test_{db['NAME']}"
        test["NAME"] = f"{base}_{os.getpid()}"


@pytest.fixture(scope="session")
def sandbox_server():
    """The provider sandbox, over real HTTP on a free loopback port, for the whole session."""
    with SandboxServer() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server) -> SandboxControl:
    """A control client on a freshly reset sandbox."""
    control = SandboxControl(sandbox_server.url)
    control.reset()
    return control


@pytest.fixture
def clerk(settings, sandbox_server, sandbox):
    """Point the app's Clerk settings at the sandbox, and hand out tokens for its users."""
    settings.CLERK_API_URL = f"{sandbox_server.url}/clerk/v1"
    settings.CLERK_SECRET_KEY = "sk_test_suite000000000000"
    settings.CLERK_JWT_KEY = sandbox.jwt_public_key()
    settings.CLERK_AUTHORIZED_PARTIES = [TEST_ORIGIN]
    settings.SANDBOX_URL = sandbox_server.url
    return ClerkHelper(sandbox)


class ClerkHelper:
    def __init__(self, control: SandboxControl) -> None:
        self.control = control

    def user(self, user_id: str, email: str | None = None, **fields) -> str:
        email = email or f"{user_id}@example.com"
        self.control.seed_clerk_user(
            user_id,
            first_name=fields.pop("first_name", "Test"),
            last_name=fields.pop("last_name", user_id),
            email_addresses=fields.pop("email_addresses", [{"email_address": email, "verified": True}]),
            primary_email=fields.pop("primary_email", email),
            **fields,
        )
        return user_id

    def token(self, user_id: str, azp: str = TEST_ORIGIN, **claims) -> str:
        return self.control.mint_session_token(user_id, azp=azp, **claims)

    def auth_header(self, user_id: str, **claims) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token(user_id, **claims)}"}

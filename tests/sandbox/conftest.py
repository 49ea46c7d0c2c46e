"""Fixtures for the sandbox's own tests: plain pytest, no Django, no database.

Names differ from the suite-wide ``sandbox_server``/``sandbox``/``clerk`` fixtures in tests/conftest.py
on purpose: these tests need a server with a startup seed, and a bare SDK client rather than
Django settings pointed at the sandbox.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clerk_backend_api import Clerk

from sandbox import SandboxControl, SandboxServer, SandboxState

SECRET_KEY = "sk_test_sandbox_suite"
AZP = "http://127.0.0.1:8000"

# Loaded at server start and re-applied by every reset: tests rely on it being there.
STARTUP_USER = {
    "id": "user_startup",
    "first_name": "Stella",
    "last_name": "Startup",
    "email_addresses": [{"email_address": "stella@startup.example", "verified": True}],
}


@pytest.fixture
def secret_key() -> str:
    return SECRET_KEY


@pytest.fixture
def azp() -> str:
    """The authorized party (browser origin) tokens are minted for."""
    return AZP


@pytest.fixture(scope="session")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(state=SandboxState(clerk_seed_users=[STARTUP_USER])) as running:
        yield running


@pytest.fixture
def control(server: SandboxServer) -> Iterator[SandboxControl]:
    """A control client on a freshly reset sandbox, so tests do not see each other's users or faults."""
    client = SandboxControl(server.url)
    client.reset()
    yield client
    client.close()


@pytest.fixture
def clerk_sdk(server: SandboxServer, control: SandboxControl) -> Clerk:
    """The official SDK with its default settings (including its default retries on 5xx)."""
    return Clerk(bearer_auth=SECRET_KEY, server_url=f"{server.url}/clerk/v1")

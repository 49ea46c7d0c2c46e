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


@pytest.fixture(scope="session", autouse=True)
def _close_connections_before_test_databases_are_dropped(request):
    """Django closes only `default` before dropping the test database; the `warehouse` mirror's open
    session would make the drop fail and leave the database behind."""
    django_active = request.config.pluginmanager.hasplugin("django")
    if django_active:
        request.getfixturevalue("django_db_setup")
    yield
    if django_active:
        from django.db import connections

        connections.close_all()


@pytest.fixture(autouse=True)
def _fresh_dashboard_cache(request):
    """Dashboard bodies are cached per process until the next dbt run (dashboards/cache.py); tests that
    build marts without a DbtRun must not see what an earlier test cached."""
    if request.config.pluginmanager.hasplugin("django"):
        from django.core.cache import caches

        caches["dashboards"].clear()


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


def free_port() -> int:
    """A loopback port nobody listens on right now (aiosmtpd cannot pick one itself)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpSinkHelper:
    """A real SMTP server (aiosmtpd) on loopback that the app's EMAIL_* settings point at."""

    def __init__(self, port: int) -> None:
        from sandbox.smtp import Mailbox

        self.port = port
        self.mailbox = Mailbox()
        self._sink = None

    def start(self) -> SmtpSinkHelper:
        from sandbox.smtp import SmtpSink

        if self._sink is None:
            self._sink = SmtpSink(self.mailbox, port=self.port).start()
        return self

    def stop(self) -> None:
        """Take the server down (the port refuses connections) until `start()` again."""
        if self._sink is not None:
            self._sink.stop()
            self._sink = None

    def refuse(self, code: int, times: int = 1, stage: str = "data") -> None:
        """Refuse the next messages with `code` at DATA, or the recipient at RCPT (stage="rcpt")."""
        self.mailbox.refuse(code, times, stage)

    def messages(self) -> list[dict]:
        return self.mailbox.list()


@pytest.fixture
def smtp_sink(settings):
    """Point Django's SMTP email backend at a fresh aiosmtpd sink on a free loopback port."""
    helper = SmtpSinkHelper(free_port()).start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = helper.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    yield helper
    helper.stop()

"""Fixtures shared by the whole suite. Few on purpose: factories live beside each app's tests."""

from __future__ import annotations

import os

import pytest

from sandbox.server import SandboxControl, SandboxServer

TEST_ORIGIN = "http://testserver"  # Django's test client host; the azp our tokens are minted for


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix) -> None:
    """One test database per pytest process, so suites run side by side on one server don't collide; and the
    two roles production runs with (README, Database roles): the test database is created and migrated as the
    owner, and the suite's `default` and `warehouse` connections are the app's role.

    Given DATABASE_URL and DATABASE_OWNER_URL (`make test`), those are the two. Given DATABASE_URL alone (a
    superuser of your own server), that is the owner, and the app's role is created on the same server
    (devtools.postgres); the environment then names both, for the processes tests start.
    """
    from django.conf import settings

    for db in settings.DATABASES.values():
        test = db.setdefault("TEST", {})
        if test.get("MIRROR"):
            continue
        base = test.get("NAME") or f"test_{db['NAME']}"
        test["NAME"] = f"{base}_{os.getpid()}"

    from compliance.roles import connection_credentials

    default = settings.DATABASES["default"]
    if settings.DATABASE_OWNER and settings.DATABASE_OWNER["USER"] != default["USER"]:
        owner, app = connection_credentials(settings.DATABASE_OWNER), connection_credentials(default)
        os.environ.setdefault("DATABASE_OWNER_URL", _url(owner, default["NAME"]))  # when they came from .env
        os.environ.setdefault("DATABASE_URL", _url(app, default["NAME"]))
    else:
        from devtools.postgres import app_role_ensure

        owner = connection_credentials(settings.DATABASE_OWNER or default)
        role, password = app_role_ensure(_conninfo(owner, default["NAME"]))
        app = {**owner, "USER": role, "PASSWORD": password}
        os.environ.update(DATABASE_OWNER_URL=_url(owner, default["NAME"]), DATABASE_URL=_url(app, default["NAME"]))
    settings.DATABASE_OWNER = owner
    settings.DATABASE_APP_ROLE = app["USER"]
    _DATABASE_ROLES.update(owner=owner, app=app)
    _connect_as(default, "owner")  # so pytest-django creates and migrates the test database as the owner
    _connect_as(settings.DATABASES["warehouse"], "app")  # a mirror of default: the same test database


_DATABASE_ROLES: dict[str, dict] = {}


def _connect_as(db: dict, role: str) -> None:
    credentials = _DATABASE_ROLES[role]
    db.update({**credentials, "OPTIONS": dict(credentials["OPTIONS"])})


def _host(credentials: dict) -> str:
    return credentials["HOST"] or credentials["OPTIONS"].get("host") or ""


def _conninfo(credentials: dict, dbname: str) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(
        host=_host(credentials), port=str(credentials["PORT"] or ""), user=credentials["USER"],
        password=credentials["PASSWORD"], dbname=dbname,
    )  # fmt: skip


def _url(credentials: dict, dbname: str) -> str:
    """A DATABASE_URL for these credentials (a socket directory goes in ?host=, as django-environ wants it)."""
    from urllib.parse import quote, urlencode

    user = quote(credentials["USER"], safe="") + (
        ":" + quote(credentials["PASSWORD"], safe="") if credentials["PASSWORD"] else ""
    )
    if credentials["HOST"]:
        return f"postgres://{user}@{credentials['HOST']}:{credentials['PORT'] or 5432}/{quote(dbname)}"
    return f"postgres://{user}@/{quote(dbname)}?{urlencode({'host': _host(credentials)})}"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database (made as the owner), then handed to the app's role: it may connect and
    create schemas (dbt's, the raw data's) in it; the owner's grants after migrate did the rest. Before the
    database is dropped, the connection is the owner's again."""
    from django.conf import settings
    from django.db import connections

    default = settings.DATABASES["default"]
    with django_db_blocker.unblock():
        if default["NAME"] == default["TEST"]["NAME"]:  # pytest-django made a test database
            connection = connections["default"]
            with connection.cursor() as cursor:
                cursor.execute(
                    "GRANT CONNECT, CREATE, TEMPORARY ON DATABASE {} TO {}".format(
                        connection.ops.quote_name(default["NAME"]),
                        connection.ops.quote_name(settings.DATABASE_APP_ROLE),
                    )
                )
        connections["default"].close()
        _connect_as(default, "app")
    yield
    with django_db_blocker.unblock():
        connections.close_all()
        _connect_as(default, "owner")


@pytest.fixture
def owner_db(django_db_setup):
    """A connection to the test database as the role that owns its tables (psycopg, autocommit): for tests
    that must do what the app itself cannot. A session of its own, outside the test's transaction."""
    import psycopg
    from django.conf import settings

    with psycopg.connect(
        _conninfo(_DATABASE_ROLES["owner"], settings.DATABASES["default"]["NAME"]), autocommit=True
    ) as conn:
        yield conn


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

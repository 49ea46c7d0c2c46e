from __future__ import annotations

import pytest
from django.core.cache import cache

from notifications import services
from notifications.clients import clerk as clerk_module


@pytest.fixture(autouse=True)
def _isolated_cache(settings):
    # The project's default cache is a database table that the test database does not create.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "notif"}}
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _fresh_clerk_clients():
    # One client per (url, key) lives for the process; tests point Clerk at a new sandbox URL often.
    yield
    services._smtp_close()  # the same for the SMTP session a worker keeps open
    for client in clerk_module._clients.values():
        client.close()
    clerk_module._clients.clear()


@pytest.fixture
def mailer(clerk, smtp_sink, settings):
    """Clerk in the sandbox plus a real SMTP sink: everything delivery needs."""
    settings.DEFAULT_FROM_EMAIL = "Marketing analytics <notifications@app.example.com>"
    settings.APP_BASE_URL = "https://app.example.com"
    return smtp_sink

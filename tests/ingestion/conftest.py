from __future__ import annotations

from collections.abc import Iterator

import pytest

from ingestion.client import TOKENS
from tests.airbyte_sandbox import AirbyteSandbox

CLIENT_ID = "ingestion-tests"
CLIENT_SECRET = "airbyte-client-secret-for-tests"


@pytest.fixture
def airbyte(settings, sandbox_server, sandbox) -> Iterator[AirbyteSandbox]:
    """Point the Airbyte settings at the sandbox's stand-in (freshly reset, jobs advanced by the test)."""
    control = AirbyteSandbox(sandbox)
    control.configure(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    control.manual_jobs()
    # Jobs that run write the simulated world into the destination: a few days of it is all these tests read.
    control.world(history_days=3, orders_per_day=2)
    settings.AIRBYTE_API_URL = control.api_url
    settings.AIRBYTE_CLIENT_ID = CLIENT_ID
    settings.AIRBYTE_CLIENT_SECRET = CLIENT_SECRET
    settings.CONNECTORS_HTTP_TIMEOUT = (1.0, 1.0)
    # No webhook unless a test serves one (tests/ingestion/test_notifications.py): the sandbox would POST to
    # a server that is not there.
    settings.AIRBYTE_NOTIFICATIONS_BASE_URL = ""
    TOKENS.clear()  # tokens from an earlier test belong to a reset sandbox
    yield control
    TOKENS.clear()


# The connectors' fixtures: provider settings on the sandbox, a fresh encryption key, no notification delivery.
from tests.connectors.conftest import _no_notification_delivery, encryption_key, providers  # noqa: E402, F401


@pytest.fixture(autouse=True)
def _no_coalesced_build(monkeypatch):
    """A successful sync asks analytics for a dbt build; the build (its own app, its own tests:
    tests/analytics/test_coalesced_builds.py) is not run here, so these tests never rebuild the shared marts."""
    from analytics.tasks import dbt_build_coalesced_task

    monkeypatch.setattr(dbt_build_coalesced_task, "apply_async", lambda *args, **kwargs: None)


@pytest.fixture
def eager(settings):
    """Run tasks inline where they are enqueued (Celery's own switch): the hook → task → service path."""
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous

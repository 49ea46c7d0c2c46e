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
    settings.AIRBYTE_API_URL = control.api_url
    settings.AIRBYTE_CLIENT_ID = CLIENT_ID
    settings.AIRBYTE_CLIENT_SECRET = CLIENT_SECRET
    settings.CONNECTORS_HTTP_TIMEOUT = (1.0, 1.0)
    TOKENS.clear()  # tokens from an earlier test belong to a reset sandbox
    yield control
    TOKENS.clear()


# The connectors' fixtures: provider settings on the sandbox, a fresh encryption key, no notification delivery.
from tests.connectors.conftest import _no_notification_delivery, encryption_key, providers  # noqa: E402, F401


@pytest.fixture
def eager(settings):
    """Run tasks inline where they are enqueued (Celery's own switch): the hook → task → service path."""
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous

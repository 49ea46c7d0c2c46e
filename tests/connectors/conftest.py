from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from tests.connectors.providers import ProviderSandbox


@pytest.fixture(autouse=True)
def encryption_key(settings) -> str:
    """A fresh Fernet key per test: nothing encrypted by one test is readable by chance in another."""
    key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [key]
    return key


@pytest.fixture(autouse=True)
def _no_notification_delivery(monkeypatch):
    """Alerts create outbox rows; their delivery (its own app, its own tests) is not sent to a broker here."""
    from notifications.tasks import notification_deliver_task

    monkeypatch.setattr(notification_deliver_task, "delay", lambda *args, **kwargs: None)


@pytest.fixture
def providers(settings, sandbox_server, sandbox) -> ProviderSandbox:
    """Point every provider setting at the sandbox (freshly reset)."""
    url = sandbox_server.url
    settings.META_GRAPH_URL = f"{url}/meta/graph"
    settings.META_DIALOG_URL = f"{url}/meta/www"
    settings.META_APP_ID = "1234567890"
    settings.META_APP_SECRET = "meta-app-secret-for-tests"
    settings.GOOGLE_OAUTH_AUTHORIZE_URL = f"{url}/google/o/oauth2/v2/auth"
    settings.GOOGLE_OAUTH_TOKEN_URL = f"{url}/google/token"
    settings.GOOGLE_OAUTH_REVOKE_URL = f"{url}/google/revoke"
    settings.GOOGLE_OAUTH_CLIENT_ID = "test-client.apps.googleusercontent.com"
    settings.GOOGLE_OAUTH_CLIENT_SECRET = "google-client-secret-for-tests"
    settings.GOOGLE_ADS_API_URL = f"{url}/google/ads"
    settings.KLAVIYO_API_URL = f"{url}/klaviyo"
    settings.ATTENTIVE_API_URL = f"{url}/attentive"
    settings.SHOPIFY_ADMIN_URL = f"{url}/shopify/{{shop}}"
    settings.SHOPIFY_API_KEY = "sandbox-shopify-api-key"
    settings.SHOPIFY_API_SECRET = "shpss_sandbox_shopify_api_secret_0000"
    settings.SHOPIFY_APP_URL = "http://testserver"
    settings.CONNECTORS_HTTP_TIMEOUT = (2.0, 2.0)
    return ProviderSandbox(sandbox)

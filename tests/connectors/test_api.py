"""POST /api/connectors/api-key/connect over real HTTP to the sandbox's Klaviyo and Attentive."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from accounts.choices import Role
from compliance.models import AuditEvent
from connectors.crypto import decrypt_secret
from connectors.models import ConnectorCredential
from connectors.services import MALFORMED_KLAVIYO_KEY
from tests.accounts.factories import MembershipFactory
from tests.connectors.factories import CredentialFactory

pytestmark = pytest.mark.django_db

URL = "/api/connectors/api-key/connect"
KLAVIYO = "klaviyo.accounts.list"


@pytest.fixture(autouse=True)
def _clear_throttle():
    cache.clear()


@pytest.fixture
def owner(clerk):
    membership = MembershipFactory(clerk_user_id=clerk.user("user_owner"), role=Role.OWNER)
    return membership


def post(client, clerk, membership, **body):
    payload = {"merchant_id": membership.merchant_id, **body}
    return client.post(URL, payload, content_type="application/json", **clerk.auth_header(membership.clerk_user_id))


def test_klaviyo_key_is_validated_stored_encrypted_and_masked(client, clerk, owner, providers):
    key = providers.klaviyo_key(name="Acme Mail")

    response = post(client, clerk, owner, provider="klaviyo", api_key=key)

    assert response.status_code == 201, response.content
    body = response.json()
    credential = ConnectorCredential.objects.get()
    assert body == {
        "id": credential.pk,
        "merchant_id": owner.merchant_id,
        "provider": "klaviyo",
        "auth_kind": "api_key",
        "external_account_id": credential.external_account_id,
        "account_label": "Acme Mail",
        "secret_masked": "••••" + key[-4:],
        "scopes": [],
        "status": "active",
        "expires_at": None,
        "last_refreshed_at": body["last_refreshed_at"],
        "consecutive_failures": 0,
        "last_error_code": "",
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
    }
    assert key not in response.content.decode()
    assert key not in credential.api_key_enc and decrypt_secret(credential.api_key_enc) == key
    assert providers.calls(KLAVIYO) == 1
    event = AuditEvent.objects.get(action="credential.connected")
    assert event.actor_id == "user_owner" and key not in str(event.metadata)


def test_attentive_key_with_label(client, clerk, owner, providers):
    key = providers.attentive_key(company="Acme SMS")
    response = post(client, clerk, owner, provider="attentive", api_key=key, label="Main")
    assert response.status_code == 201, response.content
    assert response.json()["account_label"] == "Main"
    assert providers.calls("attentive.me.get") == 1


@pytest.mark.parametrize("api_key", ["pk_short", "sk_" + "a" * 34, "pk_" + "a" * 33 + "!", ""])
def test_malformed_klaviyo_key_is_400_and_the_provider_is_not_called(client, clerk, owner, providers, api_key):
    response = post(client, clerk, owner, provider="klaviyo", api_key=api_key)
    assert response.status_code == 400
    assert "api_key" in response.json()
    if api_key:
        assert response.json() == {"api_key": [MALFORMED_KLAVIYO_KEY]}
    assert providers.calls(KLAVIYO) == 0
    assert not ConnectorCredential.objects.exists()


def test_unknown_provider_is_a_field_error(client, clerk, owner, providers):
    response = post(client, clerk, owner, provider="meta", api_key="pk_" + "a" * 34)
    assert response.status_code == 400 and "provider" in response.json()


def test_key_the_provider_rejects_is_422_invalid_key(client, clerk, owner, providers):
    response = post(client, clerk, owner, provider="klaviyo", api_key="pk_" + "a" * 34)
    assert response.status_code == 422
    assert response.json() == {"api_key": ["invalid key"]}
    assert providers.calls(KLAVIYO) == 1
    assert not ConnectorCredential.objects.exists()


def test_attentive_key_the_provider_rejects_is_422(client, clerk, owner, providers):
    response = post(client, clerk, owner, provider="attentive", api_key="x" * 40)
    assert response.status_code == 422 and response.json() == {"api_key": ["invalid key"]}
    assert providers.calls("attentive.me.get") == 1
    assert not ConnectorCredential.objects.exists()
    event = AuditEvent.objects.get(action="credential.connect_failed")
    assert event.metadata == {"provider": "attentive", "reason": "ApiKeyRejected"}


def test_key_without_the_scope_is_422_naming_it(client, clerk, owner, providers):
    key = providers.klaviyo_key(scopes=["lists:read"])
    response = post(client, clerk, owner, provider="klaviyo", api_key=key)
    assert response.status_code == 422
    body = response.json()
    assert body["missing_scope"] == "accounts:read" and "accounts:read" in body["api_key"][0]
    assert not ConnectorCredential.objects.exists()


@pytest.mark.parametrize("fault", [{"status": 503}, {"status": 429, "headers": {"Retry-After": "7"}}, {"delay": 1.0}])
def test_provider_down_or_slow_is_503_with_retry_advice(client, clerk, owner, providers, settings, fault):
    settings.CONNECTORS_HTTP_TIMEOUT = (1.0, 0.3)
    key = providers.klaviyo_key()
    providers.control.fault(KLAVIYO, **fault)
    response = post(client, clerk, owner, provider="klaviyo", api_key=key)
    assert response.status_code == 503
    body = response.json()
    assert "retry_after" in body and int(response["Retry-After"]) == body["retry_after"]
    if fault.get("headers"):
        assert body["retry_after"] == 7
    assert not ConnectorCredential.objects.exists()
    if fault.get("delay"):
        import time

        time.sleep(0.8)


def test_reconnect_replaces_the_secret_on_the_same_row(client, clerk, owner, providers):
    key = providers.klaviyo_key()
    first = post(client, clerk, owner, provider="klaviyo", api_key=key).json()
    credential = ConnectorCredential.objects.get()
    old_cipher = credential.api_key_enc
    second = post(client, clerk, owner, provider="klaviyo", api_key=key)
    assert second.status_code == 201 and second.json()["id"] == first["id"]
    credential.refresh_from_db()
    assert credential.api_key_enc != old_cipher
    actions = AuditEvent.objects.filter(action__startswith="credential.").order_by("id")
    assert list(actions.values_list("action", flat=True)) == [
        "credential.connected",
        "credential.reconnected",
    ]


def test_member_of_another_merchant_gets_404(client, clerk, owner, providers):
    stranger = MembershipFactory(clerk_user_id=clerk.user("user_stranger"))
    key = providers.klaviyo_key()
    response = client.post(
        URL,
        {"merchant_id": owner.merchant_id, "provider": "klaviyo", "api_key": key},
        content_type="application/json",
        **clerk.auth_header(stranger.clerk_user_id),
    )
    assert response.status_code == 404
    assert providers.calls(KLAVIYO) == 0


def test_viewer_cannot_connect(client, clerk, providers):
    viewer = MembershipFactory(clerk_user_id=clerk.user("user_viewer"), role=Role.VIEWER)
    response = post(client, clerk, viewer, provider="klaviyo", api_key=providers.klaviyo_key())
    assert response.status_code == 403
    assert providers.calls(KLAVIYO) == 0


def test_unauthenticated_is_401(client, providers):
    response = client.post(URL, {}, content_type="application/json")
    assert response.status_code in (401, 403)


def test_connect_is_rate_limited_per_user(client, clerk, owner, providers, settings):
    settings.CONNECTORS_API_KEY_CONNECT_RATE = "2/min"
    statuses = [post(client, clerk, owner, provider="klaviyo", api_key="pk_short").status_code for _ in range(3)]
    assert statuses == [400, 400, 429]


def test_credential_list_masks_secrets_and_is_tenant_scoped(client, clerk, owner, providers):
    CredentialFactory(merchant=owner.merchant, access_token="ya29.abcdefghijklmnop", secret_last4="mnop")
    other = CredentialFactory()
    response = client.get(f"/api/merchants/{owner.merchant_id}/connectors/", **clerk.auth_header(owner.clerk_user_id))
    assert response.status_code == 200
    assert [c["secret_masked"] for c in response.json()] == ["••••mnop"]
    assert "ya29" not in response.content.decode()
    response = client.get(f"/api/merchants/{other.merchant_id}/connectors/", **clerk.auth_header(owner.clerk_user_id))
    assert response.status_code == 404

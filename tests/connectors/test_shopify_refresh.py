"""Shopify's expiring offline tokens through the shared refresh machinery, over real HTTP to the sandbox."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from compliance.models import AuditEvent
from connectors import services
from connectors.choices import CredentialStatus
from connectors.clients.shopify import ShopifyClient
from connectors.crypto import decrypt_secret
from connectors.models import ConnectorCredential
from connectors.selectors import credential_ids_due_for_refresh
from notifications.models import Notification
from tests.accounts.factories import MembershipFactory
from tests.connectors.factories import shopify_credential
from tests.connectors.test_refresh_failing_provider import end_failure_window

pytestmark = pytest.mark.django_db

TOKEN = "shopify.oauth.access_token"
SHOP_JSON = "shopify.shop.get"


def shop_json(credential_id: int) -> dict:
    credential = ConnectorCredential.objects.get(pk=credential_id)
    client = ShopifyClient(shop=credential.external_account_id)
    return services.credential_call(credential_id=credential_id, call=lambda token: client.shop(access_token=token))


def secrets_of(credential: ConnectorCredential) -> tuple[str, str]:
    credential.refresh_from_db()
    return decrypt_secret(credential.access_token_enc), decrypt_secret(credential.refresh_token_enc)


def test_an_expired_token_is_refreshed_and_the_rotated_refresh_token_stored(providers):
    credential = shopify_credential(providers, expired=True)
    old_access, old_refresh = secrets_of(credential)

    assert shop_json(credential.pk)["myshopify_domain"] == credential.external_account_id

    new_access, new_refresh = secrets_of(credential)
    assert new_access != old_access and new_refresh != old_refresh and new_refresh.startswith("shprt_")
    assert credential.status == CredentialStatus.ACTIVE and credential.last_refreshed_at is not None
    assert providers.calls(TOKEN) == 1
    # The stored refresh token is the live one: using it works, and kills the old one at Shopify.
    credential.expires_at = credential.expires_at.replace(year=2000)
    credential.save()
    services.credential_refresh(credential_id=credential.pk)
    assert secrets_of(credential)[1] not in (old_refresh, new_refresh)


def test_a_token_due_within_the_window_is_picked_by_the_sweeper(providers, settings):
    credential = shopify_credential(providers)
    assert credential.pk not in credential_ids_due_for_refresh()
    settings.CONNECTORS_SHOPIFY_REFRESH_AHEAD_SECONDS = 3700
    assert credential.pk in credential_ids_due_for_refresh()


def test_a_401_refreshes_once_and_retries_the_call(providers):
    credential = shopify_credential(providers)
    providers.shopify_expire(secrets_of(credential)[0])  # expired at Shopify, not in our row

    shop_json(credential.pk)

    assert providers.calls(TOKEN) == 1
    assert [c["status"] for c in providers.control.calls(SHOP_JSON)] == [401, 200]


def test_invalid_grant_needs_reconnect_and_alerts_once(providers):
    credential = shopify_credential(providers, expired=True)
    MembershipFactory(merchant=credential.merchant, clerk_user_id="user_owner", role="owner")
    providers.shopify_revoke_refresh(secrets_of(credential)[1])

    for _ in range(3):
        with pytest.raises(services.CredentialUnusable):
            shop_json(credential.pk)

    credential.refresh_from_db()
    assert credential.status == CredentialStatus.NEEDS_REAUTH and credential.last_error_code == "invalid_grant"
    assert providers.calls(TOKEN) == 1 and providers.calls(SHOP_JSON) == 0
    assert AuditEvent.objects.filter(action="credential.needs_reauth", target_id=str(credential.pk)).count() == 1
    assert Notification.objects.filter(kind="credential_needs_reauth", merchant=credential.merchant).count() == 1


def test_a_timeout_on_the_rotating_call_does_not_kill_the_credential(providers, settings):
    """Shopify rotated the token but the answer never arrived: the row still has the previous refresh
    token, which Shopify honours until the new one is first used; the next attempt recovers with it."""
    settings.CONNECTORS_HTTP_TIMEOUT = (1.0, 0.3)
    credential = shopify_credential(providers, expired=True)
    _, old_refresh = secrets_of(credential)
    providers.control.fault(TOKEN, delay=0.6)  # the sandbox answers (and rotates) after we gave up

    with pytest.raises(services.RefreshRetryable):
        services.credential_refresh(credential_id=credential.pk)
    time.sleep(0.6)  # the sandbox has now rotated: a refresh token we never saw exists at Shopify

    credential.refresh_from_db()
    assert credential.status == CredentialStatus.ACTIVE and credential.last_error_code in (
        "timeout",
        "connection_error",
    )
    assert decrypt_secret(credential.refresh_token_enc) == old_refresh
    end_failure_window(credential)

    assert shop_json(credential.pk)["myshopify_domain"] == credential.external_account_id
    _access, refresh = secrets_of(credential)
    assert refresh != old_refresh and credential.status == CredentialStatus.ACTIVE
    assert credential.consecutive_failures == 0
    assert [c["status"] for c in providers.control.calls(TOKEN)] == [200, 200]  # both rotated at the sandbox
    # And the recovered pair keeps working: its refresh token rotates again.
    ConnectorCredential.objects.filter(pk=credential.pk).update(expires_at=credential.expires_at.replace(year=2000))
    services.credential_refresh(credential_id=credential.pk)
    assert secrets_of(credential)[1] not in (old_refresh, refresh)


@pytest.mark.django_db(transaction=True)
def test_fifty_callers_on_one_expired_shopify_token_make_one_refresh(providers):
    credential = shopify_credential(providers, expired=True)
    _, old_refresh = secrets_of(credential)
    start = threading.Barrier(50)

    def caller(_):
        try:
            start.wait()
            return shop_json(credential.pk)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(caller, range(50)))

    assert len(results) == 50 and all(r["myshopify_domain"] == credential.external_account_id for r in results)
    assert providers.calls(TOKEN) == 1
    assert all(c["status"] == 200 for c in providers.control.calls(SHOP_JSON))
    assert AuditEvent.objects.filter(action="credential.refreshed").count() == 1
    _, stored_refresh = secrets_of(credential)
    assert stored_refresh != old_refresh
    # The stored one is the rotated one Shopify issued: it works, the old one now does not.
    ConnectorCredential.objects.filter(pk=credential.pk).update(expires_at=credential.expires_at.replace(year=2000))
    services.credential_refresh(credential_id=credential.pk)
    assert ConnectorCredential.objects.get(pk=credential.pk).status == CredentialStatus.ACTIVE
    assert providers.calls(TOKEN) == 2

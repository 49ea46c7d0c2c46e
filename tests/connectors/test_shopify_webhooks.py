"""/webhooks/shopify/: HMAC over the raw body, dedupe on the event id, shop/update, app/uninstalled."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid

import pytest

from accounts.choices import Role
from accounts.models import Merchant
from compliance.models import AuditEvent
from connectors.choices import CredentialStatus
from connectors.models import ConnectorCredential, ShopifyWebhookDelivery, WebhookStatus
from notifications.models import Notification
from notifications.services import notification_deliver
from tests.accounts.factories import MembershipFactory
from tests.connectors.factories import shopify_credential

pytestmark = pytest.mark.django_db

SECRET = "shpss_sandbox_shopify_api_secret_0000"


@pytest.fixture
def eager():
    from config.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def post(client, body: dict | bytes, *, topic: str, shop: str, event_id: str | None = None, secret: str = SECRET,
         signature: str | None = None):  # fmt: skip
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    digest = base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()
    headers = {
        "HTTP_X_SHOPIFY_TOPIC": topic,
        "HTTP_X_SHOPIFY_SHOP_DOMAIN": shop,
        "HTTP_X_SHOPIFY_API_VERSION": "2026-01",
        "HTTP_X_SHOPIFY_WEBHOOK_ID": str(uuid.uuid4()),
        "HTTP_X_SHOPIFY_EVENT_ID": event_id or str(uuid.uuid4()),
        "HTTP_X_SHOPIFY_TRIGGERED_AT": "2026-12-03T10:00:00Z",
    }
    if signature != "":
        headers["HTTP_X_SHOPIFY_HMAC_SHA256"] = signature or digest
    return client.post("/webhooks/shopify/", data=raw, content_type="application/json", **headers)


def test_valid_shop_update_is_stored_answered_200_and_applied(client, providers, eager,
                                                              django_capture_on_commit_callbacks):  # fmt: skip
    credential = shopify_credential(providers)
    merchant = credential.merchant
    body = {"name": "Renamed Store", "iana_timezone": "Europe/Paris", "currency": "EUR", "id": 1}
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body, topic="shop/update", shop=merchant.shop_domain)
    assert response.status_code == 200
    merchant.refresh_from_db()
    assert (merchant.name, merchant.timezone, merchant.currency) == ("Renamed Store", "Europe/Paris", "EUR")
    delivery = ShopifyWebhookDelivery.objects.get()
    assert delivery.status == WebhookStatus.PROCESSED and delivery.webhook_id and delivery.event_id
    assert delivery.merchant == merchant and delivery.body == body


@pytest.mark.parametrize("case", ["tampered", "wrong secret", "missing", "garbage"])
def test_invalid_signature_is_401_and_nothing_is_stored(client, providers, case):
    credential = shopify_credential(providers)
    shop = credential.merchant.shop_domain
    body = {"name": "Evil"}
    if case == "tampered":
        good = base64.b64encode(hmac.new(SECRET.encode(), b'{"name": "Nice"}', hashlib.sha256).digest()).decode()
        response = post(client, body, topic="shop/update", shop=shop, signature=good)
    elif case == "wrong secret":
        response = post(client, body, topic="shop/update", shop=shop, secret="not-our-secret")
    elif case == "missing":
        response = post(client, body, topic="shop/update", shop=shop, signature="")
    else:
        response = post(client, body, topic="shop/update", shop=shop, signature="not base64 at all")
    assert response.status_code == 401
    assert not ShopifyWebhookDelivery.objects.exists()
    credential.merchant.refresh_from_db()
    assert credential.merchant.name != "Evil"


def test_signed_but_malformed_body_or_headers_is_400_with_the_reason(client, providers):
    shop = shopify_credential(providers).merchant.shop_domain
    response = post(client, b"{not json", topic="shop/update", shop=shop)
    assert response.status_code == 400 and "not JSON" in response.content.decode()
    response = post(client, {"a": 1}, topic="", shop=shop)
    assert response.status_code == 400 and "X-Shopify-Topic" in response.content.decode()
    response = post(client, b'{"name": "a\\u0000b"}', topic="shop/update", shop=shop)
    assert response.status_code == 400 and "cannot be stored" in response.content.decode()
    response = post(client, b"[1, 2]", topic="shop/update", shop=shop)
    assert response.status_code == 400 and "not a JSON object" in response.content.decode()
    assert not ShopifyWebhookDelivery.objects.exists()


def test_a_duplicate_delivery_is_processed_once(client, providers, eager, django_capture_on_commit_callbacks):
    merchant = shopify_credential(providers).merchant
    event_id = str(uuid.uuid4())
    for name in ("First", "Second"):  # a retry carries the original payload; a different one proves no re-apply
        with django_capture_on_commit_callbacks(execute=True):
            response = post(client, {"name": name}, topic="shop/update", shop=merchant.shop_domain, event_id=event_id)
        assert response.status_code == 200
    merchant.refresh_from_db()
    assert merchant.name == "First"
    assert ShopifyWebhookDelivery.objects.count() == 1
    assert AuditEvent.objects.filter(action="merchant.updated_from_shopify").count() == 1


def test_a_stored_unprocessed_delivery_is_enqueued_again_on_retry(
    client, providers, eager, django_capture_on_commit_callbacks
):
    merchant = shopify_credential(providers).merchant
    event_id = str(uuid.uuid4())
    post(client, {"name": "Later"}, topic="shop/update", shop=merchant.shop_domain, event_id=event_id)  # task lost
    assert ShopifyWebhookDelivery.objects.get().status == WebhookStatus.RECEIVED
    with django_capture_on_commit_callbacks(execute=True):
        post(client, {"name": "Later"}, topic="shop/update", shop=merchant.shop_domain, event_id=event_id)
    assert ShopifyWebhookDelivery.objects.get().status == WebhookStatus.PROCESSED
    merchant.refresh_from_db()
    assert merchant.name == "Later"


def test_unknown_shop_is_recorded_as_ignored(client, providers, eager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, {"name": "x"}, topic="shop/update", shop="nobody.myshopify.com")
    assert response.status_code == 200
    delivery = ShopifyWebhookDelivery.objects.get()
    assert delivery.status == WebhookStatus.IGNORED and delivery.error == "no merchant for this shop"


def test_uninstall_revokes_stops_and_tells_the_owners(client, clerk, providers, eager, settings, smtp_sink,
                                                      django_capture_on_commit_callbacks):  # fmt: skip
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "shop"}}
    credential = shopify_credential(providers)
    merchant = credential.merchant
    MembershipFactory(merchant=merchant, clerk_user_id=clerk.user("user_owner", "owner@example.com"), role=Role.OWNER)
    MembershipFactory(merchant=merchant, clerk_user_id=clerk.user("user_admin", "admin@example.com"), role=Role.ADMIN)
    MembershipFactory(merchant=merchant, clerk_user_id=clerk.user("user_viewer"), role=Role.VIEWER)

    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, {"id": 1, "name": merchant.name}, topic="app/uninstalled", shop=merchant.shop_domain)
    assert response.status_code == 200

    credential.refresh_from_db()
    assert credential.status == CredentialStatus.REVOKED
    assert credential.access_token_enc == "" and credential.refresh_token_enc == ""
    merchant.refresh_from_db()
    assert merchant.is_active is False and merchant.uninstalled_at is not None
    notes = Notification.objects.filter(merchant=merchant, kind="store_uninstalled")
    assert sorted(n.clerk_user_id for n in notes) == ["user_admin", "user_owner"]
    for note in notes:
        notification_deliver(notification_id=note.pk)
    mails = smtp_sink.messages()
    assert sorted(m["rcpt_tos"][0] for m in mails) == ["admin@example.com", "owner@example.com"]
    assert all("uninstalled" in m["subject"] for m in mails)
    assert AuditEvent.objects.filter(action="merchant.uninstalled", target_id=str(merchant.pk)).count() == 1
    # The refresh sweeper no longer touches it.
    from connectors.selectors import credential_ids_due_for_refresh

    assert credential.pk not in credential_ids_due_for_refresh()


def test_reinstall_after_uninstall_reactivates_the_same_merchant(client, clerk, providers, eager,
                                                                 django_capture_on_commit_callbacks):  # fmt: skip
    from tests.connectors.test_shopify import add_store

    credential = shopify_credential(providers, shop="demo-store.myshopify.com")
    merchant = credential.merchant
    MembershipFactory(merchant=merchant, clerk_user_id=clerk.user("user_owner"), role=Role.OWNER)
    with django_capture_on_commit_callbacks(execute=True):
        post(client, {"id": 1}, topic="app/uninstalled", shop=merchant.shop_domain)
    auth = clerk.auth_header("user_owner")
    with django_capture_on_commit_callbacks(execute=True):
        assert client.get(add_store(client, auth), **auth).status_code == 302
    merchant.refresh_from_db()
    assert merchant.is_active and merchant.uninstalled_at is None
    assert Merchant.objects.count() == 1
    assert ConnectorCredential.objects.get(pk=credential.pk).status == CredentialStatus.ACTIVE


@pytest.mark.django_db(transaction=True)
def test_the_sandbox_emitter_reaches_the_endpoint_and_a_forged_delivery_is_refused_every_retry(
    live_server, providers, eager
):
    credential = shopify_credential(providers)
    shop = credential.merchant.shop_domain
    target = f"{live_server.url}/webhooks/shopify/"
    forged = providers.shopify_webhook(shop, "shop/update", target_url=target, forge=True, attempts=3)
    assert forged["deliveries"][0]["attempts"] == [401, 401, 401]
    assert not ShopifyWebhookDelivery.objects.exists()

    providers.shopify_shop(shop, name="From Shopify", currency="CAD", iana_timezone="America/Toronto")
    sent = providers.shopify_webhook(shop, "shop/update", target_url=target, repeat=2)
    assert [d["attempts"] for d in sent["deliveries"]] == [[200], [200]]
    merchant = Merchant.objects.get(pk=credential.merchant_id)
    assert (merchant.name, merchant.currency, merchant.timezone) == ("From Shopify", "CAD", "America/Toronto")
    assert ShopifyWebhookDelivery.objects.filter(status=WebhookStatus.PROCESSED).count() == 1


def test_the_newer_events_flavour_headers_are_accepted(client, providers, eager, django_capture_on_commit_callbacks):
    merchant = shopify_credential(providers).merchant
    raw = json.dumps({"name": "Events Flavour"}).encode()
    digest = base64.b64encode(hmac.new(SECRET.encode(), raw, hashlib.sha256).digest()).decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/webhooks/shopify/", data=raw, content_type="application/json",
            HTTP_SHOPIFY_HMAC_SHA256=digest, HTTP_SHOPIFY_TOPIC="shop/update",
            HTTP_SHOPIFY_SHOP_DOMAIN=merchant.shop_domain, HTTP_SHOPIFY_WEBHOOK_ID="w-9", HTTP_SHOPIFY_EVENT_ID="e-9",
        )  # fmt: skip
    assert response.status_code == 200
    merchant.refresh_from_db()
    assert merchant.name == "Events Flavour"
    assert ShopifyWebhookDelivery.objects.get().event_id == "e-9"

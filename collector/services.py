"""Write keys (make, rotate) and the pixel's activation at Shopify (webPixelCreate / webPixelUpdate)."""

from __future__ import annotations

import datetime as dt
import logging
import secrets

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Merchant
from collector.choices import ActivationStatus
from collector.models import PixelActivation, WriteKey

logger = logging.getLogger(__name__)


def _new_key() -> str:
    return "wk_" + secrets.token_urlsafe(24)


def write_key_get_or_create(*, merchant: Merchant) -> WriteKey:
    """The store's current write key, made on first use."""
    with transaction.atomic():
        Merchant.objects.select_for_update().filter(pk=merchant.pk).first()  # one current key, even when racing
        current = WriteKey.objects.filter(merchant=merchant, expires_at__isnull=True).first()
        if current is None:
            current = WriteKey.objects.create(merchant=merchant, key=_new_key())
    return current


def write_key_rotate(*, merchant: Merchant, grace: dt.timedelta | None = None) -> WriteKey:
    """A new current key; the old one is still accepted for `grace` (COLLECTOR_WRITE_KEY_GRACE_SECONDS), so
    pixels already loaded with it keep landing while the new settings reach the storefront. The pixel's
    settings are updated at Shopify after commit."""
    grace = dt.timedelta(seconds=settings.COLLECTOR_WRITE_KEY_GRACE_SECONDS) if grace is None else grace
    with transaction.atomic():
        Merchant.objects.select_for_update().filter(pk=merchant.pk).first()
        WriteKey.objects.filter(merchant=merchant, expires_at__isnull=True).update(expires_at=timezone.now() + grace)
        new = WriteKey.objects.create(merchant=merchant, key=_new_key())
        if PixelActivation.objects.filter(merchant=merchant).exists():
            pixel_activation_request(merchant_id=merchant.pk)
    return new


def pixel_settings(*, merchant: Merchant) -> dict[str, str]:
    """The settings the pixel is activated with (the fields extensions/session-pixel/shopify.extension.toml
    declares)."""
    return {"writeKey": write_key_get_or_create(merchant=merchant).key, "collectorUrl": settings.COLLECTOR_URL}


def pixel_activation_request(*, merchant_id: int) -> PixelActivation:
    """Ask for the pixel's activation (or its settings' update) after commit; the task retries on failure."""
    activation, _ = PixelActivation.objects.get_or_create(merchant_id=merchant_id)
    from collector.tasks import pixel_activate_task

    pixel_activate_task.delay_on_commit(merchant_id)
    return activation


def pixel_activate(*, merchant_id: int) -> PixelActivation:
    """Create the store's web pixel at Shopify with its settings, or update it if it exists (idempotent).

    Raises the Shopify client's typed errors (the task retries the transient ones); a refusal Shopify gives in
    `userErrors` is recorded on the activation and raised as PixelRefused."""
    from connectors.choices import Provider
    from connectors.clients.shopify import ShopifyClient
    from connectors.models import ConnectorCredential
    from connectors.services import credential_call

    merchant = Merchant.objects.get(pk=merchant_id)
    activation, _ = PixelActivation.objects.get_or_create(merchant=merchant)
    credential = (
        ConnectorCredential.objects.filter(merchant=merchant, provider=Provider.SHOPIFY).order_by("-pk").first()
    )
    if credential is None:
        raise ConnectorCredential.DoesNotExist(f"merchant {merchant_id} has no Shopify credential")
    wanted = pixel_settings(merchant=merchant)
    client = ShopifyClient(shop=credential.external_account_id)
    PixelActivation.objects.filter(pk=activation.pk).update(attempts=F("attempts") + 1)
    try:
        result = credential_call(
            credential_id=credential.pk,
            call=lambda token: client.web_pixel_upsert(
                access_token=token, settings=wanted, web_pixel_id=activation.web_pixel_id or None
            ),
        )
    except Exception as exc:
        pixel_activation_failed(merchant_id=merchant_id, error=exc)
        raise
    PixelActivation.objects.filter(pk=activation.pk).update(
        status=ActivationStatus.ACTIVE,
        web_pixel_id=result["id"],
        settings_sent=wanted,
        last_error="",
        activated_at=timezone.now(),
    )
    activation.refresh_from_db()
    return activation


def pixel_activation_failed(*, merchant_id: int, error: Exception) -> None:
    PixelActivation.objects.filter(merchant_id=merchant_id).update(
        status=ActivationStatus.FAILED, last_error=f"{type(error).__name__}: {error}"[:2000], updated_at=timezone.now()
    )

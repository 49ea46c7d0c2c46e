"""Shopify as a provider: install (both ways in), claim, webhooks. The Shopify half of the connector services.

Two ways in, one callback (shared/INGESTION.md §4):
- a signed-in user types a shop domain ("Add a Shopify store"): `install_begin` with their user id;
- Shopify opens our App URL (`/shopify/install?shop=&hmac=&timestamp=`): `install_request_verify`, then
  `install_begin` with whoever is signed in, or nobody.
Either way the browser leaves with a `state` nonce that is also in a signed cookie (bound to that browser),
recorded once in ShopifyOAuthState (single use, bound to the shop). `callback_complete` checks the query's
HMAC, its timestamp, the shop, the state against the cookie and the row, then spends the code for an
expiring offline token and reads shop.json. If the person who started is signed in, the store is installed
at once; otherwise a ShopifyPendingInstall waits for them to sign in and `pending_claim` it (its claim token
lives in their browser's cookie only: one-time, expiring, bound to the shop and that browser).

The merchant is made (or, for a shop we know, reconnected: never a second one) from shop.json; the tokens go
through `credential_store`, encrypted like every secret, and are refreshed by `credential_refresh` like
Meta's and Google's. Webhooks (`app/uninstalled`, `shop/update`) are registered by a task after commit.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts.choices import Role
from accounts.models import Membership, Merchant
from accounts.services import membership_grant, merchant_create
from accounts.validators import validate_currency, validate_shop_domain, validate_timezone
from compliance.services import Actor, audit_event_record
from connectors.choices import AuthKind, CredentialStatus, Provider
from connectors.clients.base import ProviderError
from connectors.clients.shopify import ShopifyClient, ShopifyTokens, authorize_url
from connectors.crypto import decrypt_secret, encrypt_secret
from connectors.models import (
    ConnectorCredential,
    ShopifyOAuthState,
    ShopifyPendingInstall,
    ShopifyWebhookDelivery,
    WebhookStatus,
)
from connectors.services import NewSecrets, credential_call, credential_revoke, credential_store

logger = logging.getLogger(__name__)

STATE_COOKIE = "shopify_state"
CLAIM_COOKIE = "shopify_claim"
STATE_SALT = "connectors.shopify.state"
CLAIM_SALT = "connectors.shopify.claim"
# Shopify's library keeps the state cookie 60 s; a person reading a consent screen needs longer. Ten
# minutes, as for Meta's and Google's state: still single use and bound to the browser.
STATE_MAX_AGE = dt.timedelta(minutes=10)
HMAC_MAX_SKEW_SECONDS = 90
WEBHOOK_TOPICS = ("app/uninstalled", "shop/update")
# Shopify's mandatory compliance topics cannot be subscribed through the Admin API: they are the app's
# configuration (shopify.app.toml `[webhooks] compliance_topics`, shared/PROVIDERS.md §7.3), delivered to the
# same endpoint, and handled by compliance.privacy.
COMPLIANCE_TOPICS = ("customers/data_request", "customers/redact", "shop/redact")
DEFAULT_CURRENCY = "USD"
DEFAULT_TIMEZONE = "UTC"

SHOP_INVALID = "Enter the store's myshopify.com address, e.g. my-store.myshopify.com."
HMAC_INVALID = "This Shopify link is not signed by Shopify. Start the install again from Shopify."
HMAC_STALE = "This Shopify link has expired. Start the install again from Shopify."
STATE_INVALID = "This Shopify sign-in is invalid or has expired. Start the install again."
STATE_FOREIGN = "This Shopify sign-in was started in another browser. Start the install again here."
STATE_REPLAYED = "This Shopify sign-in has already been used. Start the install again."
CONSENT_FAILED = "Shopify did not complete the install ({reason}). Nothing was saved; please try again."
CLAIM_INVALID = "This store install cannot be claimed: it was started in another browser, already claimed, or expired."

_KEY_CHARS = re.compile(r"[^a-z0-9_]+")


class ShopifyFailed(Exception):
    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _actor(clerk_user_id: str) -> Actor:
    from connectors.services import clerk_actor

    return clerk_actor(clerk_user_id)


# --- checks ------------------------------------------------------------------------------------------


def shop_domain_clean(value: str) -> str:
    """The shop's myshopify domain, lower-cased, from what a person or Shopify gave; ShopifyFailed otherwise.

    Accepts `my-store`, `my-store.myshopify.com`, `https://my-store.myshopify.com/`; refuses anything
    else (`evil.com`, `x.myshopify.com.evil.com`, paths, ports, credentials in the URL).
    """
    text = (value or "").strip().lower()
    text = re.sub(r"^https?://", "", text).rstrip("/")
    if text and "." not in text:
        text = f"{text}.myshopify.com"
    try:
        validate_shop_domain(text)
    except ValidationError:
        raise ShopifyFailed(SHOP_INVALID) from None
    return text


def _encode(value: str) -> str:
    # URLSearchParams' encoding, with "+" as "%20" (SAJ processed-query.ts).
    return quote(value, safe="*").replace("~", "%7E")


def query_message(params: Mapping[str, list[str]]) -> str:
    """What Shopify signs: every key but hmac/signature, sorted, repeated values joined with ','."""
    pairs = [(key, ",".join(values)) for key, values in params.items() if key not in ("hmac", "signature")]
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(pairs))


@sensitive_variables()
def query_verify(params: Mapping[str, list[str]], *, now: float | None = None) -> str:
    """Check a query Shopify signed (install request or callback); returns the shop domain.

    `params` maps each key to all its values (QueryDict.lists()). HMAC compared in constant time; a
    timestamp more than 90 s from now is refused; the shop must be a myshopify domain.
    """
    given = (params.get("hmac") or [""])[-1]
    if not given or len(params.get("hmac") or []) != 1:
        raise ShopifyFailed(HMAC_INVALID, status=401)
    expected = hmac.new(
        settings.SHOPIFY_API_SECRET.encode(), query_message(params).encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.lower().encode()):
        raise ShopifyFailed(HMAC_INVALID, status=401)
    try:
        timestamp = int((params.get("timestamp") or [""])[-1])
    except ValueError:
        raise ShopifyFailed(HMAC_INVALID, status=401) from None
    if abs((now if now is not None else time.time()) - timestamp) > HMAC_MAX_SKEW_SECONDS:
        raise ShopifyFailed(HMAC_STALE, status=401)
    shops = params.get("shop") or []
    if len(shops) != 1:
        raise ShopifyFailed(SHOP_INVALID)
    shop = shops[0]
    if shop_domain_clean(shop) != shop.lower() or not shop.lower().endswith(".myshopify.com"):
        raise ShopifyFailed(SHOP_INVALID)
    return shop.lower()


@sensitive_variables("body")
def webhook_hmac_valid(body: bytes, given: str) -> bool:
    expected = base64.b64encode(hmac.new(settings.SHOPIFY_API_SECRET.encode(), body, hashlib.sha256).digest())
    return bool(given) and hmac.compare_digest(expected, given.strip().encode())


# --- install -------------------------------------------------------------------------------------------


def redirect_uri() -> str:
    return f"{settings.SHOPIFY_APP_URL}{reverse('connectors:shopify_callback')}"


@sensitive_variables("nonce")
def install_begin(*, shop: str, clerk_user_id: str = "") -> tuple[str, str]:
    """Record an attempt for `shop` (already clean); returns (Shopify's authorize URL, the nonce for the cookie)."""
    nonce = secrets.token_hex(32)
    ShopifyOAuthState.objects.create(nonce=nonce, shop_domain=shop, clerk_user_id=clerk_user_id or "")
    return authorize_url(shop=shop, redirect_uri=redirect_uri(), state=nonce), nonce


@sensitive_variables("state", "cookie_nonce")
def _consume_state(*, state: str, cookie_nonce: str, shop: str) -> ShopifyOAuthState:
    if not state or not cookie_nonce:
        raise ShopifyFailed(STATE_FOREIGN if state else STATE_INVALID)
    if not hmac.compare_digest(state.encode(), cookie_nonce.encode()):
        raise ShopifyFailed(STATE_FOREIGN)
    with transaction.atomic():
        attempt = ShopifyOAuthState.objects.select_for_update().filter(nonce=state).first()
        if attempt is None or attempt.shop_domain != shop or attempt.created_at < timezone.now() - STATE_MAX_AGE:
            raise ShopifyFailed(STATE_INVALID)
        if attempt.used_at is not None:
            raise ShopifyFailed(STATE_REPLAYED)
        attempt.used_at = timezone.now()
        attempt.save(update_fields=["used_at"])
    return attempt


@dataclass(frozen=True)
class CallbackOutcome:
    merchant: Merchant | None = None  # installed for the signed-in user who started it
    claim_token: str = ""  # else: the pending install's claim token, for the browser's cookie
    shop_domain: str = ""


@sensitive_variables("params", "cookie_nonce", "code", "tokens", "claim_token")
def callback_complete(
    *,
    params: Mapping[str, list[str]],
    cookie_nonce: str,
    clerk_user_id: str,
    request_ctx: dict | None = None,
) -> CallbackOutcome:
    shop = query_verify(params)
    attempt = _consume_state(state=(params.get("state") or [""])[-1], cookie_nonce=cookie_nonce, shop=shop)
    code = (params.get("code") or [""])[-1]
    if not code:
        raise ShopifyFailed(CONSENT_FAILED.format(reason="no code"))
    client = ShopifyClient(shop=shop)
    try:
        tokens = client.exchange_code(code=code)
        info = client.shop(access_token=tokens.access_token)
    except ProviderError as exc:
        raise ShopifyFailed(CONSENT_FAILED.format(reason=exc.code or "error")) from exc
    if attempt.clerk_user_id and attempt.clerk_user_id == clerk_user_id:
        merchant = install_apply(
            shop=shop, info=info, tokens=tokens, clerk_user_id=clerk_user_id, request_ctx=request_ctx
        )
        return CallbackOutcome(merchant=merchant, shop_domain=shop)
    claim_token = secrets.token_urlsafe(32)
    ShopifyPendingInstall.objects.create(
        claim_token_hash=_hash(claim_token),
        shop_domain=shop,
        shop=_shop_facts(info),
        access_token_enc=encrypt_secret(tokens.access_token),
        refresh_token_enc=encrypt_secret(tokens.refresh_token),
        scopes=list(tokens.scopes),
        token_expires_at=tokens.expires_at,
        claim_expires_at=timezone.now() + dt.timedelta(seconds=settings.SHOPIFY_CLAIM_MAX_AGE_SECONDS),
    )
    return CallbackOutcome(claim_token=claim_token, shop_domain=shop)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _shop_facts(info: Mapping[str, Any]) -> dict[str, Any]:
    """The non-secret facts of shop.json we keep."""
    keys = ("id", "name", "myshopify_domain", "domain", "iana_timezone", "currency", "email", "plan_name")
    return {k: info.get(k) for k in keys if k in info}


def _merchant_fields(shop: str, info: Mapping[str, Any]) -> dict[str, str]:
    """name, timezone, currency from shop.json, each checked; a value we cannot store falls back, visibly."""
    name = str(info.get("name") or shop.split(".", 1)[0])[:200]
    tz = str(info.get("iana_timezone") or "")
    currency = str(info.get("currency") or "").upper()
    try:
        validate_timezone(tz)
    except ValidationError:
        logger.warning("shop %s: time zone %r is not an IANA name; using %s", shop, tz[:64], DEFAULT_TIMEZONE)
        tz = DEFAULT_TIMEZONE
    try:
        validate_currency(currency)
    except ValidationError:
        logger.warning("shop %s: currency %r is not ISO 4217; using %s", shop, currency[:8], DEFAULT_CURRENCY)
        currency = DEFAULT_CURRENCY
    return {"name": name, "timezone": tz, "currency": currency}


def merchant_key_for(shop: str) -> str:
    """A free raw-schema key from the shop's handle (`my-store` → `my_store`, then `my_store_2`, ...)."""
    base = _KEY_CHARS.sub("_", shop.split(".", 1)[0].lower()).strip("_") or "shop"
    if not base[0].isalpha():
        base = f"s_{base}"
    base = base[:34]
    candidate, n = base, 1
    while Merchant.objects.filter(key=candidate).exists():
        n += 1
        candidate = f"{base}_{n}"
    return candidate


@sensitive_variables("tokens")
def install_apply(
    *,
    shop: str,
    info: Mapping[str, Any],
    tokens: ShopifyTokens,
    clerk_user_id: str,
    request_ctx: dict | None = None,
) -> Merchant:
    """Create the merchant (or reconnect the known one), make the installing user an owner, store the tokens."""
    actor = _actor(clerk_user_id)
    fields = _merchant_fields(shop, info)
    with transaction.atomic():
        merchant = Merchant.objects.select_for_update().filter(shop_domain=shop).first()
        reconnect = merchant is not None
        if merchant is None:
            try:
                with transaction.atomic():
                    merchant = merchant_create(shop_domain=shop, key=merchant_key_for(shop), actor=actor, **fields)
            except (IntegrityError, ValidationError):
                # Another install of the same shop won the race: reconnect that one.
                merchant = Merchant.objects.select_for_update().get(shop_domain=shop)
                reconnect = True
        if reconnect:
            for name, value in fields.items():
                setattr(merchant, name, value)
            merchant.is_active = True
            merchant.uninstalled_at = None
            merchant.save(update_fields=[*fields, "is_active", "uninstalled_at", "updated_at"])
            audit_event_record(
                action="merchant.reinstalled", actor=actor, target_type="accounts.merchant",
                target_id=merchant.pk, merchant=merchant, metadata={"shop": shop}, **(request_ctx or {}),
            )  # fmt: skip
        membership = Membership.objects.filter(merchant=merchant, clerk_user_id=clerk_user_id).first()
        if membership is None:
            # Completing Shopify's consent for this shop is the proof of authority over it.
            membership_grant(merchant=merchant, clerk_user_id=clerk_user_id, role=Role.OWNER, actor=actor)
        credential = credential_store(
            merchant=merchant,
            provider=Provider.SHOPIFY,
            auth_kind=AuthKind.OAUTH,
            secrets=NewSecrets(
                external_account_id=shop,
                account_label=fields["name"],
                access_token=tokens.access_token,
                refresh_token=tokens.refresh_token,
                scopes=tokens.scopes,
                expires_at=tokens.expires_at,
                metadata={
                    "shop_id": info.get("id"),
                    "refresh_expires_at": tokens.refresh_expires_at.isoformat() if tokens.refresh_expires_at else None,
                },
            ),
            actor=actor,
            request_ctx=request_ctx,
        )
        from connectors.tasks import shopify_webhooks_register_task

        shopify_webhooks_register_task.delay_on_commit(credential.pk)
        # The web pixel (collector/): activated at Shopify after commit by a task that records a failure and
        # retries, so the install never fails because the pixel could not be set up.
        from collector.services import pixel_activation_request

        pixel_activation_request(merchant_id=merchant.pk)
    return merchant


@sensitive_variables("claim_token")
def pending_claim(*, claim_token: str, shop: str, clerk_user_id: str, request_ctx: dict | None = None) -> Merchant:
    """The signed-in person takes over the install their browser completed; once, before it expires."""
    if not claim_token:
        raise ShopifyFailed(CLAIM_INVALID, status=403)
    with transaction.atomic():
        pending = (
            ShopifyPendingInstall.objects.select_for_update()
            .filter(claim_token_hash=_hash(claim_token), shop_domain=shop)
            .first()
        )
        if pending is None or pending.claimed_at is not None or pending.claim_expires_at <= timezone.now():
            raise ShopifyFailed(CLAIM_INVALID, status=403)
        tokens = ShopifyTokens(
            access_token=decrypt_secret(pending.access_token_enc),
            refresh_token=decrypt_secret(pending.refresh_token_enc),
            scopes=tuple(pending.scopes),
            expires_at=pending.token_expires_at,
            refresh_expires_at=None,
        )
        merchant = install_apply(
            shop=shop, info=pending.shop, tokens=tokens, clerk_user_id=clerk_user_id, request_ctx=request_ctx
        )
        pending.claimed_at = timezone.now()
        pending.claimed_by = clerk_user_id
        pending.merchant = merchant
        # Claimed: the tokens now live on the credential only.
        pending.access_token_enc = pending.refresh_token_enc = ""
        pending.save()
    return merchant


def installed(*, merchant: Merchant) -> bool:
    """The merchant has a usable Shopify credential."""
    from connectors.choices import USABLE_STATUSES

    return ConnectorCredential.objects.filter(
        merchant=merchant, provider=Provider.SHOPIFY, status__in=USABLE_STATUSES
    ).exists()


def pending_get(*, claim_token: str, shop: str) -> ShopifyPendingInstall | None:
    if not claim_token:
        return None
    return ShopifyPendingInstall.objects.filter(
        claim_token_hash=_hash(claim_token), shop_domain=shop, claimed_at__isnull=True,
        claim_expires_at__gt=timezone.now(),
    ).first()  # fmt: skip


# --- webhooks ------------------------------------------------------------------------------------------


def webhook_address() -> str:
    return f"{settings.SHOPIFY_APP_URL}{reverse('connectors:shopify_webhook')}"


def webhooks_register(*, credential_id: int) -> list[str]:
    """Subscribe our endpoint to app/uninstalled and shop/update (idempotent: existing ones count as done)."""
    credential = ConnectorCredential.objects.get(pk=credential_id)
    client = ShopifyClient(shop=credential.external_account_id)
    done = []
    for topic in WEBHOOK_TOPICS:
        credential_call(
            credential_id=credential_id,
            call=lambda token, topic=topic: client.webhook_create(
                access_token=token, topic=topic, address=webhook_address()
            ),
        )
        done.append(topic)
    return done


class WebhookRejected(Exception):
    """A delivery we will not store; `status` is the answer (400 for a body that is not JSON)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def webhook_header(headers: Mapping[str, str], name: str) -> str:
    """`X-Shopify-<name>`, or the newer "Events" flavour's `shopify-<name>` (INGESTION.md §4)."""
    return headers.get(f"X-Shopify-{name}") or headers.get(f"Shopify-{name}") or ""


def webhook_receive(*, headers: Mapping[str, str], body: bytes) -> tuple[ShopifyWebhookDelivery, bool]:
    """Store a delivery whose HMAC was checked; returns (delivery, created). A duplicate is not stored again."""
    topic = webhook_header(headers, "Topic")[:64]
    shop = webhook_header(headers, "Shop-Domain").lower()[:255]
    event_id = webhook_header(headers, "Event-Id")[:128]
    webhook_id = webhook_header(headers, "Webhook-Id")[:128]
    if not topic or not shop or not (event_id or webhook_id):
        raise WebhookRejected("X-Shopify-Topic, X-Shopify-Shop-Domain and X-Shopify-Webhook-Id are required")
    try:
        payload = json.loads(body)
    except UnicodeDecodeError as exc:
        raise WebhookRejected("the body is not UTF-8 JSON") from exc
    except json.JSONDecodeError as exc:
        raise WebhookRejected(f"the body is not JSON: {exc.msg}") from exc
    if not isinstance(payload, dict):
        raise WebhookRejected("the body is not a JSON object")
    try:
        with transaction.atomic():
            return ShopifyWebhookDelivery.objects.get_or_create(
                dedupe_key=f"event:{event_id}" if event_id else f"webhook:{webhook_id}",
                defaults={
                    "event_id": event_id,
                    "webhook_id": webhook_id,
                    "topic": topic,
                    "shop_domain": shop,
                    "api_version": webhook_header(headers, "API-Version")[:16],
                    "triggered_at": webhook_header(headers, "Triggered-At")[:64],
                    "body": payload,
                    "merchant": Merchant.objects.filter(shop_domain=shop).first(),
                },
            )
    except DataError as exc:  # what PostgreSQL cannot store (a NUL in the JSON): the sender's mistake
        raise WebhookRejected("the body holds a value that cannot be stored (a NUL character?)") from exc


def webhook_process(*, delivery_id: int) -> str:
    """Act on one stored delivery, once: the row is locked and only a `received` one is processed."""
    with transaction.atomic():
        delivery = ShopifyWebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.status != WebhookStatus.RECEIVED:
            return delivery.status
        delivery.attempts += 1
        merchant = Merchant.objects.select_for_update().filter(shop_domain=delivery.shop_domain).first()
        if delivery.topic in COMPLIANCE_TOPICS:
            # Recorded even for a shop we do not know (as ignored): every compliance request is accounted for.
            from compliance.privacy import privacy_request_record

            privacy_request_record(delivery=delivery, merchant=merchant)
            delivery.status = WebhookStatus.PROCESSED
        elif merchant is None:
            delivery.status, delivery.error = WebhookStatus.IGNORED, "no merchant for this shop"
        elif delivery.topic == "shop/update":
            _shop_update(merchant, delivery.body)
            delivery.status = WebhookStatus.PROCESSED
        elif delivery.topic == "app/uninstalled":
            _uninstalled(merchant, delivery)
            delivery.status = WebhookStatus.PROCESSED
        else:
            delivery.status, delivery.error = WebhookStatus.IGNORED, f"topic {delivery.topic} is not handled here"
        delivery.merchant = merchant
        delivery.processed_at = timezone.now()
        delivery.save()
        return delivery.status


def webhook_failed(*, delivery_id: int, error: Exception) -> None:
    """Record why processing failed (the type and a short message only: no payload, no secret)."""
    ShopifyWebhookDelivery.objects.filter(pk=delivery_id, status=WebhookStatus.RECEIVED).update(
        status=WebhookStatus.FAILED, error=f"{type(error).__name__}: {error}"[:500], processed_at=timezone.now()
    )
    logger.error("shopify webhook delivery %s failed: %s", delivery_id, type(error).__name__)


def _shop_update(merchant: Merchant, body: Mapping[str, Any]) -> None:
    fields = _merchant_fields(merchant.shop_domain, {"name": merchant.name, **body})
    changed = {k: v for k, v in fields.items() if getattr(merchant, k) != v}
    if not changed:
        return
    for name, value in changed.items():
        setattr(merchant, name, value)
    merchant.save(update_fields=[*changed, "updated_at"])
    audit_event_record(
        action="merchant.updated_from_shopify", actor=Actor.system("shopify-webhook"),
        target_type="accounts.merchant", target_id=merchant.pk, merchant=merchant, metadata={"fields": sorted(changed)},
    )  # fmt: skip


def _uninstalled(merchant: Merchant, delivery: ShopifyWebhookDelivery) -> None:
    """Revoke every Shopify credential, stop the store's data syncs, mark it uninstalled, tell its owners.

    "Stop syncs": the revoked Shopify credential's Airbyte pipeline is deleted and the store's others are
    paused (ingestion follows the audited revoke and the inactive store); once the store has been uninstalled
    AIRBYTE_TEARDOWN_AFTER_UNINSTALL_DAYS (Shopify's shop/redact ~48 h later), they are deleted from Airbyte
    too. An inactive merchant is left out of dbt runs. What happens to the store's data is the compliance issue's.
    """
    from notifications.choices import NotificationKind
    from notifications.services import merchant_admins_notify

    actor = Actor.system("shopify-webhook")
    for credential_id in (
        ConnectorCredential.objects.filter(merchant=merchant, provider=Provider.SHOPIFY)
        .exclude(status=CredentialStatus.REVOKED)
        .values_list("pk", flat=True)
    ):
        credential_revoke(credential_id=credential_id, actor=actor)
    now = timezone.now()
    merchant.is_active = False
    merchant.uninstalled_at = now
    merchant.save(update_fields=["is_active", "uninstalled_at", "updated_at"])
    audit_event_record(
        action="merchant.uninstalled", actor=actor, target_type="accounts.merchant", target_id=merchant.pk,
        merchant=merchant, metadata={"shop": merchant.shop_domain, "webhook_id": delivery.webhook_id},
    )  # fmt: skip
    merchant_admins_notify(
        merchant=merchant,
        kind=NotificationKind.STORE_UNINSTALLED,
        context={
            "shop_domain": merchant.shop_domain,
            "uninstalled_at": now.strftime("%Y-%m-%d %H:%M UTC"),
            "add_store_url": f"{settings.APP_BASE_URL.rstrip('/')}{reverse('connectors:shopify_add')}",
        },
        dedupe_key=f"uninstalled:{merchant.pk}:{delivery.dedupe_key}",
    )

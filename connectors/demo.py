"""Connect `make run`'s demo stores to the sandbox's provider accounts through the merchant's own paths.

Nothing here writes a credential row: each connection goes through the service a merchant's click ends in
(`shopify.install_begin` / `shopify.callback_complete` for Shopify, `oauth.oauth_start` /
`oauth.oauth_complete` for Meta and Google, `services.credential_connect_api_key` for Klaviyo and
Attentive), so the demo's Connectors page shows what a real store's would, and anything those services do
on connect (audit events, Shopify's and Attentive's webhook registration) happens for the demo too.

The one thing played instead of a person is the consent click: the sandbox's consent endpoints answer the
authorize URL with the redirect a browser would follow, and the code in it is handed to the callback's
service exactly as the callback view would.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import requests
from django.urls import reverse

from accounts.access import store_access_from_membership
from accounts.models import Membership
from compliance.services import Actor
from connectors import oauth, services, shopify
from connectors.choices import USABLE_STATUSES, Provider
from connectors.models import ConnectorCredential
from sandbox.server import SandboxControl

logger = logging.getLogger(__name__)

CONSENT_TIMEOUT = 10.0


class DemoConnectFailed(RuntimeError):
    """A demo connection could not be made; the message says which and why."""


@dataclass(frozen=True)
class DemoConnection:
    provider: str
    label: str
    created: bool


def _connected(membership: Membership, provider: str) -> ConnectorCredential | None:
    return ConnectorCredential.objects.filter(
        merchant=membership.merchant, provider=provider, status__in=USABLE_STATUSES
    ).first()


def _consent(authorize_url: str) -> dict[str, str]:
    """What the browser would bring back to the callback after the person clicked "allow"."""
    response = requests.get(authorize_url, allow_redirects=False, timeout=CONSENT_TIMEOUT)
    location = response.headers.get("Location", "")
    if response.status_code not in (301, 302, 303, 307) or not location:
        raise DemoConnectFailed(f"the sandbox's consent page answered {response.status_code}, not a redirect")
    query = parse_qs(urlsplit(location).query)
    return {key: values[0] for key, values in query.items()}


def _connect_oauth(membership: Membership, provider: str, *, app_url: str, actor: Actor) -> ConnectorCredential:
    redirect_uri = app_url.rstrip("/") + reverse("connectors:oauth_callback", kwargs={"provider": provider})
    authorize_url = oauth.oauth_start(
        access=store_access_from_membership(membership),
        clerk_user_id=membership.clerk_user_id,
        provider=provider,
        redirect_uri=redirect_uri,
    )
    answer = _consent(authorize_url)
    try:
        return oauth.oauth_complete(
            provider=provider,
            state=answer.get("state", ""),
            code=answer.get("code", ""),
            error=answer.get("error", ""),
            clerk_user_id=membership.clerk_user_id,
            redirect_uri=redirect_uri,
            actor=actor,
        )
    except oauth.OAuthFailed as exc:
        raise DemoConnectFailed(f"{Provider(provider).label}: {exc.message}") from exc


def _connect_shopify(membership: Membership, *, control: SandboxControl) -> ConnectorCredential:
    """Install the app on the demo store's shop, as its owner would from "Add a Shopify store"."""
    merchant = membership.merchant
    # Shopify's record of the shop is the demo store's own: the install reads name, time zone and currency from it.
    control.shopify_shop_set(
        merchant.shop_domain, name=merchant.name, iana_timezone=merchant.timezone, currency=merchant.currency
    )
    authorize_url, nonce = shopify.install_begin(shop=merchant.shop_domain, clerk_user_id=membership.clerk_user_id)
    # Shopify's consent is a page with an "Install app" button: the click is its form's POST.
    split = urlsplit(authorize_url)
    fields = {key: values[0] for key, values in parse_qs(split.query, keep_blank_values=True).items()}
    response = requests.post(
        f"{split.scheme}://{split.netloc}{split.path}", data={**fields, "decision": "approve"},
        allow_redirects=False, timeout=CONSENT_TIMEOUT,
    )  # fmt: skip
    location = response.headers.get("Location", "")
    if response.status_code != 302 or not location:
        raise DemoConnectFailed(f"Shopify: the sandbox's consent answered {response.status_code}, not a redirect")
    try:
        shopify.callback_complete(
            params=parse_qs(urlsplit(location).query), cookie_nonce=nonce, clerk_user_id=membership.clerk_user_id
        )
    except shopify.ShopifyFailed as exc:
        raise DemoConnectFailed(f"Shopify: {exc.message}") from exc
    return ConnectorCredential.objects.get(merchant=merchant, provider=Provider.SHOPIFY)


def _connect_api_key(
    membership: Membership, provider: str, *, control: SandboxControl, actor: Actor
) -> ConnectorCredential:
    company = membership.merchant.name
    if provider == Provider.KLAVIYO:
        api_key = control.klaviyo_key_create(name=company)
    else:
        api_key = control.attentive_key_create(company=company)
    try:
        return services.credential_connect_api_key(
            merchant=membership.merchant, provider=provider, api_key=api_key, actor=actor
        )
    except services.ConnectorError as exc:
        raise DemoConnectFailed(f"{Provider(provider).label}: {exc.message}") from exc


def demo_connect(*, membership: Membership, app_url: str, control: SandboxControl) -> list[DemoConnection]:
    """Connect every provider the store lacks a usable connection to, as `membership` (a manager).

    Running it again connects nothing twice: a provider with a usable connection is left as it is.
    """
    actor = services.clerk_actor(membership.clerk_user_id)
    done = []
    for provider in (Provider.SHOPIFY, Provider.META, Provider.GOOGLE_ADS, Provider.KLAVIYO, Provider.ATTENTIVE):
        existing = _connected(membership, provider)
        if existing is not None:
            done.append(DemoConnection(provider, existing.account_label, created=False))
            continue
        if provider == Provider.SHOPIFY:
            credential = _connect_shopify(membership, control=control)
        elif provider in (Provider.META, Provider.GOOGLE_ADS):
            credential = _connect_oauth(membership, provider, app_url=app_url, actor=actor)
        else:
            credential = _connect_api_key(membership, provider, control=control, actor=actor)
        logger.info("demo store %s connected to %s", membership.merchant.key, provider)
        done.append(DemoConnection(provider, credential.account_label, created=True))
    return done

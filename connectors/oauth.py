"""OAuth connect for Meta and Google (the OAuth half of the connector services).

`oauth_start` records an attempt and returns the provider's authorize URL. Its `state` is signed,
expires after STATE_MAX_AGE, names the merchant, user and provider, and its nonce can be consumed
once. `oauth_complete` checks all of that before it spends the code; on any failure nothing is stored.

The code exchange is the one other place a web request calls a provider inline: the code is
single-use and short-lived, and the person waits to learn whether the connection worked.
"""

from __future__ import annotations

import datetime as dt
import secrets

from django.core import signing
from django.db import transaction
from django.http import Http404
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts.access import MANAGE_CONNECTORS, StoreAccess, store_access_get
from accounts.models import Merchant
from compliance.services import Actor
from connectors.choices import AuthKind, Provider
from connectors.clients.base import ProviderError
from connectors.clients.google import GoogleAdsClient, GoogleOAuthClient, pkce_pair
from connectors.clients.meta import MetaClient
from connectors.crypto import decrypt_secret, encrypt_secret
from connectors.models import ConnectorCredential, OAuthState
from connectors.services import NewSecrets, credential_store

STATE_SALT = "connectors.oauth.state"
STATE_MAX_AGE = dt.timedelta(minutes=10)

STATE_INVALID = "This sign-in link is invalid or has expired. Start the connection again."
STATE_FOREIGN = "This sign-in was started by someone else. Start the connection again from your account."
STATE_REPLAYED = "This sign-in has already been used. Start the connection again."
CONSENT_DENIED = "{provider} access was not granted, so nothing was connected."
PROVIDER_FAILED = "{provider} did not complete the sign-in ({reason}). Nothing was saved; please try again."
NO_REFRESH_TOKEN = "Google did not grant offline access, so the connection could not be kept. Please try again."
NOT_MANAGER = "Only the store's owners and admins (or an agency it made a manager) can connect accounts."


class OAuthFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@sensitive_variables("nonce", "verifier", "challenge", "state")
def oauth_start(*, access: StoreAccess, clerk_user_id: str, provider: str, redirect_uri: str) -> str:
    """`access` is `clerk_user_id`'s access to the store (accounts.access): a member or an agency manager."""
    if not access.allows(MANAGE_CONNECTORS):
        raise OAuthFailed(NOT_MANAGER)
    if provider not in (Provider.META, Provider.GOOGLE_ADS):
        raise OAuthFailed(STATE_INVALID)
    nonce = secrets.token_urlsafe(32)
    verifier, challenge = pkce_pair()
    OAuthState.objects.create(
        nonce=nonce,
        merchant=access.merchant,
        clerk_user_id=clerk_user_id,
        provider=provider,
        code_verifier_enc=encrypt_secret(verifier) if provider == Provider.GOOGLE_ADS else "",
    )
    state = signing.dumps({"n": nonce, "m": access.merchant_id, "u": clerk_user_id, "p": provider}, salt=STATE_SALT)
    if provider == Provider.META:
        return MetaClient.authorize_url(redirect_uri=redirect_uri, state=state)
    return GoogleOAuthClient.authorize_url(redirect_uri=redirect_uri, state=state, code_challenge=challenge)


@sensitive_variables("state", "payload")
def _consume_state(*, state: str, provider: str, clerk_user_id: str) -> OAuthState:
    try:
        payload = signing.loads(state, salt=STATE_SALT, max_age=STATE_MAX_AGE)
    except signing.BadSignature:  # includes SignatureExpired
        raise OAuthFailed(STATE_INVALID) from None
    if not isinstance(payload, dict) or payload.get("p") != provider:
        raise OAuthFailed(STATE_INVALID)
    if payload.get("u") != clerk_user_id:
        raise OAuthFailed(STATE_FOREIGN)
    now = timezone.now()
    with transaction.atomic():
        attempt = (
            OAuthState.objects.select_for_update()
            .filter(
                nonce=payload.get("n"), merchant_id=payload.get("m"), clerk_user_id=clerk_user_id, provider=provider
            )
            .first()
        )
        if attempt is None:
            raise OAuthFailed(STATE_INVALID)
        if attempt.used_at is not None:
            raise OAuthFailed(STATE_REPLAYED)
        attempt.used_at = now
        attempt.save(update_fields=["used_at"])
    # Still a manager of a live merchant? (A membership or an agency's grant may have changed during the round
    # trip.)
    try:
        access = store_access_get(clerk_user_id=clerk_user_id, merchant_id=attempt.merchant_id)
    except Http404:
        raise OAuthFailed(NOT_MANAGER) from None
    if not access.allows(MANAGE_CONNECTORS):
        raise OAuthFailed(NOT_MANAGER)
    return attempt


@sensitive_variables("state", "code", "new")
def oauth_complete(
    *,
    provider: str,
    state: str,
    code: str,
    error: str,
    clerk_user_id: str,
    redirect_uri: str,
    actor: Actor,
    request_ctx: dict | None = None,
) -> ConnectorCredential:
    attempt = _consume_state(state=state, provider=provider, clerk_user_id=clerk_user_id)
    name = Provider(provider).label
    if error or not code:
        raise OAuthFailed(CONSENT_DENIED.format(provider=name))
    try:
        if provider == Provider.META:
            new = _meta_exchange(code=code, redirect_uri=redirect_uri)
        else:
            new = _google_exchange(
                code=code, redirect_uri=redirect_uri, code_verifier=decrypt_secret(attempt.code_verifier_enc)
            )
    except ProviderError as exc:
        raise OAuthFailed(PROVIDER_FAILED.format(provider=name, reason=exc.code or "error")) from exc
    return credential_store(
        merchant=Merchant.objects.get(pk=attempt.merchant_id),
        provider=provider,
        auth_kind=AuthKind.OAUTH,
        secrets=new,
        actor=actor,
        request_ctx=request_ctx,
    )


@sensitive_variables()
def _meta_exchange(*, code: str, redirect_uri: str) -> NewSecrets:
    client = MetaClient()
    short = client.exchange_code(code=code, redirect_uri=redirect_uri)
    long_lived = client.exchange_long_lived(access_token=short.access_token)
    info = client.debug_token(access_token=long_lived.access_token)
    accounts = client.ad_accounts(access_token=long_lived.access_token)
    expires_at_epoch = info.get("expires_at")
    if expires_at_epoch == 0:
        expires_at = None  # a token that never expires (system user)
    elif expires_at_epoch:
        expires_at = dt.datetime.fromtimestamp(int(expires_at_epoch), tz=dt.UTC)
    elif long_lived.expires_in:
        expires_at = timezone.now() + dt.timedelta(seconds=int(long_lived.expires_in))
    else:
        expires_at = None
    names = [a.get("name") or a.get("id") for a in accounts]
    return NewSecrets(
        external_account_id=str(info.get("user_id") or "me"),
        account_label=", ".join(str(n) for n in names[:3]) or "Meta user",
        access_token=long_lived.access_token,
        scopes=tuple(info.get("scopes") or ()),
        expires_at=expires_at,
        metadata={"ad_accounts": [{"id": a.get("id"), "name": a.get("name")} for a in accounts]},
    )


@sensitive_variables()
def _google_exchange(*, code: str, redirect_uri: str, code_verifier: str) -> NewSecrets:
    tokens = GoogleOAuthClient().exchange_code(code=code, redirect_uri=redirect_uri, code_verifier=code_verifier)
    if not tokens.refresh_token:
        raise OAuthFailed(NO_REFRESH_TOKEN)
    customers = GoogleAdsClient().accessible_customers(access_token=tokens.access_token)
    first = customers[0] if customers else "unknown"
    return NewSecrets(
        external_account_id=first,
        account_label=f"Google Ads {first[:3]}-{first[3:6]}-{first[6:]}" if len(first) == 10 else f"Google Ads {first}",
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        scopes=tuple(tokens.scopes),
        expires_at=tokens.expires_at,
        metadata={"customers": customers},
    )

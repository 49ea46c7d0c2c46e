"""Writes for connector credentials: connect (API key, OAuth), refresh, the authorised call, revoke.

Refresh happens once under concurrency, whether the provider answers or fails: `credential_refresh`
queues for the credential's refresh lock, then re-checks whether a refresh is still needed — callers
who waited find the new token, or the failure just recorded (the negative cache, `refresh_blocked_until`),
and return without calling the provider. A caller's whole wait is bounded (see "refresh" below).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts.models import Merchant
from compliance.choices import ActorType
from compliance.services import Actor, audit_event_record
from config.retry import backoff
from connectors import alerts
from connectors.choices import USABLE_STATUSES, AuthKind, CredentialStatus, Provider
from connectors.clients.attentive import AttentiveClient
from connectors.clients.base import Forbidden, Permanent, ProviderError, RateLimited, Transient, Unauthorized
from connectors.clients.google import GoogleOAuthClient
from connectors.clients.klaviyo import KlaviyoClient
from connectors.clients.meta import MetaClient
from connectors.clients.shopify import ShopifyClient
from connectors.crypto import decrypt_secret, encrypt_secret
from connectors.forms import (  # noqa: F401 -- the messages are re-exported for callers and tests
    MALFORMED_ATTENTIVE_KEY,
    MALFORMED_KLAVIYO_KEY,
    NOT_API_KEY_PROVIDER,
    ApiKeyConnectForm,
)
from connectors.models import ConnectorCredential
from connectors.selectors import refresh_windows

logger = logging.getLogger(__name__)
T = TypeVar("T")

INVALID_KEY = "invalid key"
MISSING_SCOPE = "The key is valid but lacks the {scope} scope; create a key with {scope}."
PROVIDER_UNAVAILABLE = "{provider} is not answering right now; nothing was saved. Try again in a minute."
PROVIDER_REFUSED = "{provider} refused the request; nothing was saved."
CREDENTIAL_UNUSABLE = "This connection needs to be reconnected."
REFRESH_BUSY = "Another refresh of this credential is taking too long."
REFRESH_FAILED_RECENTLY = "The last refresh of this credential failed moments ago."

# Audited credential changes after which ingestion reconciles the credential's Airbyte pipeline.
INGESTION_FOLLOWS = frozenset(
    {"credential.connected", "credential.reconnected", "credential.refreshed", "credential.needs_reauth",
     "credential.revoked"}
)  # fmt: skip
# Renew a little before the provider's own expiry so a call does not race the clock.
EXPIRY_SKEW = dt.timedelta(seconds=60)
# After a transient refresh failure: ~30 s, 60 s, 120 s... (50-100 % of the step), at most an hour. With
# CONNECTORS_REFRESH_MAX_FAILURES = 5 a credential that keeps failing turns `error` 4 to 7.5 minutes in.
REFRESH_RETRY_BASE_SECONDS = 30.0
REFRESH_RETRY_MAX_SECONDS = 3600.0


class ConnectorError(Exception):
    """Base of the errors this module raises; `message` is safe to show."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class ApiKeyRejected(ConnectorError):
    """The provider says the key is invalid (422)."""


class ApiKeyMissingScope(ConnectorError):
    """The key works but lacks a scope we need (422)."""


class ProviderUnavailable(ConnectorError):
    """The provider is down, slow or rate limiting (503); `retry_after` in seconds."""


class CredentialUnusable(ConnectorError):
    """The credential needs a reconnect (or was revoked): no call will succeed until then."""


class RefreshRetryable(ConnectorError):
    """A refresh failed for a reason worth retrying (provider 5xx/timeout, lock wait)."""


# --- helpers -----------------------------------------------------------------------------------


def clerk_actor(user_id: str) -> Actor:
    return Actor(type=ActorType.CLERK_USER, id=user_id, label=user_id)


def _audit(credential: ConnectorCredential, action: str, actor: Actor, request_ctx: dict | None = None, **meta: Any):
    audit_event_record(
        action=action,
        actor=actor,
        target_type="connectors.credential",
        target_id=credential.pk,
        merchant_id=credential.merchant_id,
        metadata={
            "provider": credential.provider,
            "account": credential.external_account_id,
            "status": credential.status,
            **meta,
        },
        **(request_ctx or {}),
    )
    if action in INGESTION_FOLLOWS:
        # Every change of a credential's state is audited here: the Airbyte source and connection follow it.
        from ingestion.tasks import pipeline_follow_credential_task

        pipeline_follow_credential_task.delay_on_commit(credential.pk)


@sensitive_variables()
def credential_secret(credential: ConnectorCredential) -> str:
    """The secret a provider call needs: the API key, or the OAuth access token."""
    field = credential.api_key_enc if credential.auth_kind == AuthKind.API_KEY else credential.access_token_enc
    return decrypt_secret(field)


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _last4(secret: str) -> str:
    return secret[-4:] if len(secret) >= 12 else ""


@dataclass(frozen=True)
class NewSecrets:
    external_account_id: str
    account_label: str
    # Never in its repr: a frame or a log line that shows this object shows no secret.
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)
    api_key: str = field(default="", repr=False)
    scopes: tuple[str, ...] = ()
    expires_at: dt.datetime | None = None
    metadata: dict | None = None


@sensitive_variables()
@transaction.atomic
def credential_store(
    *,
    merchant: Merchant,
    provider: str,
    auth_kind: str,
    secrets: NewSecrets,
    actor: Actor,
    request_ctx: dict | None = None,
) -> ConnectorCredential:
    """Create the credential, or replace the secret of the live one for the same account (reconnect)."""
    credential = (
        ConnectorCredential.objects.select_for_update()
        .filter(merchant=merchant, provider=provider, external_account_id=secrets.external_account_id)
        .first()
    )
    reconnect = credential is not None
    if credential is None:
        credential = ConnectorCredential(
            merchant=merchant, provider=provider, external_account_id=secrets.external_account_id
        )
    main_secret = secrets.api_key or secrets.access_token
    credential.auth_kind = auth_kind
    credential.account_label = secrets.account_label[:255]
    credential.api_key_enc = encrypt_secret(secrets.api_key) if secrets.api_key else ""
    credential.access_token_enc = encrypt_secret(secrets.access_token) if secrets.access_token else ""
    credential.refresh_token_enc = encrypt_secret(secrets.refresh_token) if secrets.refresh_token else ""
    credential.secret_last4 = _last4(main_secret)
    credential.scopes = list(secrets.scopes)
    credential.metadata = secrets.metadata or {}
    credential.expires_at = secrets.expires_at
    credential.status = CredentialStatus.ACTIVE
    credential.consecutive_failures = 0
    credential.next_attempt_at = None
    credential.refresh_blocked_until = None
    credential.last_error_code = ""
    credential.last_error_message = ""
    credential.last_refreshed_at = timezone.now()
    credential.connected_by = actor.id if actor.type == ActorType.CLERK_USER else credential.connected_by
    credential.full_clean(exclude=["merchant"])
    credential.save()
    _audit(
        credential,
        "credential.reconnected" if reconnect else "credential.connected",
        actor,
        request_ctx,
        auth_kind=auth_kind,
        expires_at=credential.expires_at.isoformat() if credential.expires_at else None,
    )
    return credential


# --- API-key connect -----------------------------------------------------------------------------


@sensitive_variables("api_key", "form")
def credential_connect_api_key(
    *,
    merchant: Merchant,
    provider: str,
    api_key: str,
    label: str = "",
    actor: Actor,
    request_ctx: dict | None = None,
) -> ConnectorCredential:
    """Validate the input (ApiKeyConnectForm: field errors, no provider call), then the key live with the
    provider, then store it encrypted. Nothing is stored on failure.

    The one provider call a web request makes inline: the user is waiting for "does this key work".
    """
    form = ApiKeyConnectForm(data={"provider": provider, "api_key": api_key or "", "label": label or ""})
    if not form.is_valid():
        raise ValidationError(form.errors.as_data())
    provider, api_key, label = form.cleaned_data["provider"], form.cleaned_data["api_key"], form.cleaned_data["label"]

    try:
        return _connect_api_key_validated(
            merchant=merchant, provider=provider, api_key=api_key, label=label, actor=actor, request_ctx=request_ctx
        )
    except (ApiKeyRejected, ApiKeyMissingScope, ProviderUnavailable) as exc:
        # Failed attempts are audited too: a run of them is what key guessing looks like.
        audit_event_record(
            action="credential.connect_failed",
            actor=actor,
            target_type="connectors.credential",
            merchant=merchant,
            metadata={"provider": provider, "reason": type(exc).__name__},
            **(request_ctx or {}),
        )
        raise


@sensitive_variables()
def _connect_api_key_validated(
    *, merchant: Merchant, provider: str, api_key: str, label: str, actor: Actor, request_ctx: dict | None
) -> ConnectorCredential:
    name = Provider(provider).label
    try:
        if provider == Provider.KLAVIYO:
            accounts = KlaviyoClient().accounts(api_key=api_key)
            account = accounts[0] if accounts else {}
            account_id = str(account.get("id") or "klaviyo")
            contact = _dict(_dict(account.get("attributes")).get("contact_information"))
            default_label = str(contact.get("organization_name") or "Klaviyo")
        else:
            me = AttentiveClient().me(api_key=api_key)
            account_id = str(me.get("companyId") or me.get("id") or "attentive")
            default_label = str(me.get("companyName") or "Attentive")
    except Unauthorized as exc:
        raise ApiKeyRejected(INVALID_KEY) from exc
    except Forbidden as exc:
        scope = (exc.detail or {}).get("missing_scope", "required")
        raise ApiKeyMissingScope(MISSING_SCOPE.format(scope=scope), missing_scope=scope) from exc
    except RateLimited as exc:
        raise ProviderUnavailable(PROVIDER_UNAVAILABLE.format(provider=name), retry_after=exc.retry_after) from exc
    except Transient as exc:
        raise ProviderUnavailable(PROVIDER_UNAVAILABLE.format(provider=name), retry_after=30) from exc
    except ProviderError as exc:
        raise ApiKeyRejected(PROVIDER_REFUSED.format(provider=name)) from exc

    secrets = NewSecrets(
        # The provider's words, cut to fit: what it accepted must not fail on our column sizes.
        external_account_id=account_id[:128],
        account_label=label or default_label,
        api_key=api_key,
    )
    if provider != Provider.ATTENTIVE:
        return credential_store(
            merchant=merchant,
            provider=provider,
            auth_kind=AuthKind.API_KEY,
            secrets=secrets,
            actor=actor,
            request_ctx=request_ctx,
        )
    return _connect_attentive(merchant=merchant, secrets=secrets, actor=actor, request_ctx=request_ctx)


@sensitive_variables()
def _connect_attentive(
    *, merchant: Merchant, secrets: NewSecrets, actor: Actor, request_ctx: dict | None
) -> ConnectorCredential:
    """Attentive's data arrives only by webhook: a key is connected together with its webhook, or not at all.

    The webhook is registered first (a provider call outside any transaction); the credential and the webhook
    row are then saved in one transaction, and if that fails the webhook is deleted at Attentive again.
    """
    from connectors import attentive
    from connectors.tasks import attentive_webhook_delete_task

    try:
        registered = attentive.attentive_webhook_register(api_key=secrets.api_key)
    except Unauthorized as exc:
        raise ApiKeyRejected(INVALID_KEY) from exc
    except Forbidden as exc:
        scope = (exc.detail or {}).get("missing_scope", "webhooks:write")
        raise ApiKeyMissingScope(MISSING_SCOPE.format(scope=scope), missing_scope=scope) from exc
    except (RateLimited, Transient) as exc:
        reason = "Attentive is not answering right now; try again in a minute."
        raise ProviderUnavailable(
            attentive.REGISTRATION_FAILED.format(reason=reason), retry_after=getattr(exc, "retry_after", None) or 30
        ) from exc
    except ProviderError as exc:
        raise ApiKeyRejected(attentive.REGISTRATION_FAILED.format(reason=str(exc))) from exc
    try:
        with transaction.atomic():
            credential = credential_store(
                merchant=merchant,
                provider=Provider.ATTENTIVE,
                auth_kind=AuthKind.API_KEY,
                secrets=secrets,
                actor=actor,
                request_ctx=request_ctx,
            )
            replaced = attentive.attentive_webhook_store(credential=credential, registered=registered)
            encrypted_key = encrypt_secret(secrets.api_key)
            for webhook_id in replaced:  # a reconnect's earlier webhook: events now arrive at the new one
                attentive_webhook_delete_task.delay_on_commit(encrypted_key, webhook_id)
    except Exception:
        try:
            attentive.attentive_webhook_unregister(
                api_key=secrets.api_key, attentive_webhook_id=registered.attentive_webhook_id
            )
        except ProviderError:
            logger.warning("attentive connect failed; its webhook %s remains at Attentive", registered)
        raise
    return credential


# --- refresh -------------------------------------------------------------------------------------
#
# One refresh attempt per credential at a time, and one per failure window:
# - single flight: callers queue on a transaction-scoped advisory lock for the credential, then take its
#   row lock; whoever gets it first calls the provider, the others wait for its outcome;
# - negative cache: a failed attempt writes `refresh_blocked_until` in the transaction that releases the
#   lock, so every waiter (and every caller until then) gets that failure without calling the provider;
# - one failure counted per window: `consecutive_failures` grows only outside `refresh_blocked_until`;
# - bounded wait: lock waits and the provider call together stay within CONNECTORS_REFRESH_MAX_WAIT_SECONDS
#   (lock_timeout is set to what is left before each wait; the call's timeout to what is left after it).

# Below this many seconds left there is no point in starting a provider call.
MIN_CALL_SECONDS = 0.05


def _lock_timeout(seconds: float) -> None:
    """SET LOCAL lock_timeout; one wait for one lock cannot outlast it (an advisory lock is one wait)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{max(1, int(seconds * 1000))}ms"])


def _lock(credential_id: int, *, deadline: float | None = None) -> ConnectorCredential:
    """Take the row lock (inside an atomic block), waiting at most CONNECTORS_REFRESH_LOCK_TIMEOUT_SECONDS,
    and never past `deadline` (time.monotonic())."""
    wait = float(settings.CONNECTORS_REFRESH_LOCK_TIMEOUT_SECONDS)
    if deadline is not None:
        wait = min(wait, deadline - time.monotonic())
        if wait <= 0:
            raise RefreshRetryable(REFRESH_BUSY)
    _lock_timeout(wait)
    return ConnectorCredential.objects.select_for_update().get(pk=credential_id)


def _lock_for_refresh(credential_id: int, deadline: float) -> ConnectorCredential:
    """Wait (until `deadline` at most) for any other refresh of this credential to finish, then lock the row.

    The advisory lock is the queue of refreshers; the row lock keeps revoke and reconnect out while the
    provider is called. A waiter sits in one lock queue for the whole wait, so `lock_timeout` bounds it
    (a `FOR UPDATE` wait can restart its timer each time the row changes hands).
    """
    wait = min(float(settings.CONNECTORS_REFRESH_LOCK_TIMEOUT_SECONDS), deadline - time.monotonic())
    if wait <= 0:
        raise RefreshRetryable(REFRESH_BUSY)
    _lock_timeout(wait)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"connectors.refresh:{credential_id}"])
    credential = _lock(credential_id, deadline=deadline)
    # What is left of the transaction (the outbox's own locks for an alert) gets the ordinary bound again.
    _lock_timeout(float(settings.CONNECTORS_REFRESH_LOCK_TIMEOUT_SECONDS))
    return credential


@sensitive_variables("stale_access_token")
def _needs_refresh(credential: ConnectorCredential, stale_access_token: str, force: bool, now: dt.datetime) -> bool:
    if stale_access_token:
        # Reactive: the provider refused `stale_access_token`. If the row holds another token, someone
        # refreshed while we waited for the lock — use theirs.
        return decrypt_secret(credential.access_token_enc) == stale_access_token
    if credential.expires_at is None:
        return False  # never expires (Meta system users): nothing to renew
    if force:
        return True
    window = refresh_windows().get(credential.provider, dt.timedelta(0))
    return credential.expires_at <= now + window


def _recent_failure(credential: ConnectorCredential, now: dt.datetime) -> RefreshRetryable | None:
    """The failure of the last attempt while its window lasts: shared with every caller, at no provider call."""
    if credential.refresh_blocked_until is None or now >= credential.refresh_blocked_until:
        return None
    return RefreshRetryable(
        credential.last_error_message or REFRESH_FAILED_RECENTLY,
        code=credential.last_error_code,
        retry_after=(credential.refresh_blocked_until - now).total_seconds(),
        retry_at=credential.next_attempt_at,
        shared=True,
    )


def _mark_needs_reauth(credential: ConnectorCredential, error: ProviderError) -> None:
    credential.status = CredentialStatus.NEEDS_REAUTH
    credential.last_error_code = (error.code or "unauthorized")[:64]
    credential.last_error_message = str(error)[:500]
    credential.next_attempt_at = None
    credential.refresh_blocked_until = None
    credential.save()
    _audit(credential, "credential.needs_reauth", Actor.system("credential-refresh"), reason=credential.last_error_code)
    alerts.credential_alert(credential=credential, kind=alerts.NEEDS_REAUTH)


def _record_failure(credential: ConnectorCredential, error: ProviderError, *, permanent: bool = False) -> None:
    """Count the failed attempt (once per window), block callers for the window, schedule the next try.

    The merchant is told only when the token will be dead before that next try (expiry < next_attempt_at):
    a failure the retries can still outrun is nobody's business but ours (an ERROR line once it keeps on).
    """
    now = timezone.now()
    in_last_window = credential.refresh_blocked_until is not None and now < credential.refresh_blocked_until
    if not in_last_window:
        credential.consecutive_failures += 1
    if permanent:
        # Our side is wrong (client id/secret, request shape): retrying will not help, people must look.
        credential.consecutive_failures = max(credential.consecutive_failures, settings.CONNECTORS_REFRESH_MAX_FAILURES)
    retry_after = getattr(error, "retry_after", None) or 0.0
    credential.last_error_code = (error.code or type(error).__name__)[:64]
    credential.last_error_message = str(error)[:500]
    credential.refresh_blocked_until = now + dt.timedelta(
        seconds=max(settings.CONNECTORS_REFRESH_NEGATIVE_CACHE_SECONDS, retry_after)
    )
    # The one clock of the retry: the task that made this attempt retries at next_attempt_at, the sweeper only
    # rescues the row once it is overdue (credential_ids_due_for_refresh). Never inside the window above.
    wait = backoff(
        credential.consecutive_failures,
        base=REFRESH_RETRY_BASE_SECONDS,
        ceiling=REFRESH_RETRY_MAX_SECONDS,
        floor=(credential.refresh_blocked_until - now).total_seconds(),
    )
    credential.next_attempt_at = now + dt.timedelta(seconds=wait)
    turned_error = (
        credential.consecutive_failures >= settings.CONNECTORS_REFRESH_MAX_FAILURES
        and credential.status == CredentialStatus.ACTIVE
    )
    if turned_error:
        credential.status = CredentialStatus.ERROR
    credential.save()
    if turned_error:
        _audit(credential, "credential.refresh_failing", Actor.system("credential-refresh"),
               failures=credential.consecutive_failures, reason=credential.last_error_code)  # fmt: skip
        alerts.credential_alert(credential=credential, kind=alerts.FAILING)
    if credential.expires_at is not None and credential.expires_at < credential.next_attempt_at:
        alerts.credential_alert(credential=credential, kind=alerts.EXPIRING)


@sensitive_variables("tokens")
def _apply_google(credential: ConnectorCredential, timeout: float) -> None:
    tokens = GoogleOAuthClient().refresh(refresh_token=decrypt_secret(credential.refresh_token_enc), timeout=timeout)
    credential.access_token_enc = encrypt_secret(tokens.access_token)
    credential.secret_last4 = _last4(tokens.access_token)
    credential.expires_at = tokens.expires_at
    if tokens.refresh_token:
        # Google rarely rotates; when it does, the old refresh token may stop working soon.
        credential.refresh_token_enc = encrypt_secret(tokens.refresh_token)
    if tokens.scopes:
        credential.scopes = tokens.scopes


@sensitive_variables("token")
def _apply_meta(credential: ConnectorCredential, timeout: float) -> None:
    token = MetaClient().exchange_long_lived(access_token=decrypt_secret(credential.access_token_enc), timeout=timeout)
    credential.access_token_enc = encrypt_secret(token.access_token)
    credential.secret_last4 = _last4(token.access_token)
    if token.expires_in:
        credential.expires_at = timezone.now() + dt.timedelta(seconds=int(token.expires_in))


@sensitive_variables("tokens")
def _apply_shopify(credential: ConnectorCredential, timeout: float) -> None:
    """Shopify rotates the refresh token on every use: the new one is saved with the access token, in the
    transaction that holds the refresh lock. If the answer is lost (a timeout), the row keeps the previous
    refresh token, which Shopify honours until the new one is first used (INGESTION.md §4)."""
    client = ShopifyClient(shop=credential.external_account_id)
    tokens = client.refresh(refresh_token=decrypt_secret(credential.refresh_token_enc), timeout=timeout)
    credential.access_token_enc = encrypt_secret(tokens.access_token)
    credential.refresh_token_enc = encrypt_secret(tokens.refresh_token)
    credential.secret_last4 = _last4(tokens.access_token)
    credential.expires_at = tokens.expires_at
    if tokens.scopes:
        credential.scopes = list(tokens.scopes)


@sensitive_variables("stale_access_token")
def credential_refresh(*, credential_id: int, stale_access_token: str = "", force: bool = False) -> ConnectorCredential:
    """Renew the credential's access token if it still needs it; returns the credential as stored.

    Raises CredentialUnusable when the provider refuses for good (status needs_reauth, alerted once),
    RefreshRetryable for transient failures (counted once per window; the token stays in use while it
    is valid), for a failure of the last CONNECTORS_REFRESH_NEGATIVE_CACHE_SECONDS (`extra["shared"]`,
    no provider call; `force` — admin's "Refresh now" — skips that), and when the wait for another
    caller's refresh would pass CONNECTORS_REFRESH_MAX_WAIT_SECONDS (REFRESH_BUSY, not counted).
    """
    deadline = time.monotonic() + settings.CONNECTORS_REFRESH_MAX_WAIT_SECONDS
    if not force:
        # Fast path: while a failure is fresh, nobody even queues for the lock.
        unlocked = ConnectorCredential.objects.get(pk=credential_id)
        if unlocked.status in USABLE_STATUSES and (failure := _recent_failure(unlocked, timezone.now())):
            raise failure
    outcome: ConnectorError | None = None
    try:
        with transaction.atomic():
            credential = _lock_for_refresh(credential_id, deadline)
            if credential.status not in USABLE_STATUSES:
                raise CredentialUnusable(CREDENTIAL_UNUSABLE, status=credential.status)
            now = timezone.now()
            if credential.auth_kind != AuthKind.OAUTH or not _needs_refresh(credential, stale_access_token, force, now):
                return credential
            if not force and (failure := _recent_failure(credential, now)):
                raise failure  # the attempt we queued behind failed: its failure is ours, uncounted
            if credential.expires_at is None:
                # A never-expiring token was refused: no refresh can help.
                _mark_needs_reauth(credential, Unauthorized("token refused", code="token_refused"))
                outcome = CredentialUnusable(CREDENTIAL_UNUSABLE, status=credential.status)
            else:
                outcome = _refresh_locked(credential, deadline)
    except OperationalError as exc:
        # lock_timeout: another caller's refresh outlasts our wait; not a failure of the provider.
        raise RefreshRetryable(REFRESH_BUSY) from exc
    if outcome is not None:
        raise outcome
    return credential


def _refresh_locked(credential: ConnectorCredential, deadline: float) -> ConnectorError | None:
    """Call the provider with the credential locked; record the result. Returns the error to raise after commit."""
    left = deadline - time.monotonic()
    if left < MIN_CALL_SECONDS:
        return RefreshRetryable(REFRESH_BUSY)
    try:
        if credential.provider == Provider.GOOGLE_ADS:
            _apply_google(credential, timeout=left)
        elif credential.provider == Provider.META:
            _apply_meta(credential, timeout=left)
        elif credential.provider == Provider.SHOPIFY:
            _apply_shopify(credential, timeout=left)
        else:
            return None
    except Unauthorized as exc:
        _mark_needs_reauth(credential, exc)
        return CredentialUnusable(CREDENTIAL_UNUSABLE, status=credential.status)
    except (Transient, RateLimited) as exc:
        _record_failure(credential, exc)
        # A retry inside the window would only be answered from it: wait it out (Retry-After included).
        window = (credential.refresh_blocked_until - timezone.now()).total_seconds()
        return RefreshRetryable(str(exc), code=exc.code, retry_after=window, retry_at=credential.next_attempt_at)
    except Permanent as exc:
        _record_failure(credential, exc, permanent=True)
        return CredentialUnusable(str(exc), status=credential.status)
    was_failing = credential.status == CredentialStatus.ERROR
    credential.status = CredentialStatus.ACTIVE
    credential.consecutive_failures = 0
    credential.next_attempt_at = None
    credential.refresh_blocked_until = None
    credential.last_error_code = ""
    credential.last_error_message = ""
    credential.last_refreshed_at = timezone.now()
    credential.save()
    _audit(credential, "credential.refreshed", Actor.system("credential-refresh"), recovered=was_failing,
           expires_at=credential.expires_at.isoformat() if credential.expires_at else None)  # fmt: skip
    # Re-exchanging a long-lived Meta token is not documented to extend it; if it did not, only a reconnect will.
    meta_window = refresh_windows()[Provider.META]
    if (
        credential.provider == Provider.META
        and credential.expires_at
        and credential.expires_at <= timezone.now() + meta_window
    ):
        alerts.credential_alert(credential=credential, kind=alerts.EXPIRING)
    return None


# --- the authorised call -------------------------------------------------------------------------


# All of it: the `call` it runs holds the secret under a name of its own.
@sensitive_variables()
def credential_call(*, credential_id: int, call: Callable[[str], T]) -> T:
    """Run `call(secret)` for a credential: refresh first if the token has expired, and on an auth failure
    refresh once (under the lock) and retry once. A second refusal marks the credential needs_reauth.
    """
    credential = ConnectorCredential.objects.get(pk=credential_id)
    if credential.status not in USABLE_STATUSES:
        raise CredentialUnusable(CREDENTIAL_UNUSABLE, status=credential.status)
    secret = credential_secret(credential)
    if (
        credential.auth_kind == AuthKind.OAUTH
        and credential.expires_at
        and credential.expires_at <= (timezone.now() + EXPIRY_SKEW)
    ):
        credential = credential_refresh(credential_id=credential_id, stale_access_token=secret)
        secret = credential_secret(credential)
    try:
        return call(secret)
    except Unauthorized as first:
        if credential.auth_kind != AuthKind.OAUTH:
            credential_mark_needs_reauth(credential_id=credential_id, error=first)
            raise CredentialUnusable(CREDENTIAL_UNUSABLE, status=CredentialStatus.NEEDS_REAUTH) from first
        credential = credential_refresh(credential_id=credential_id, stale_access_token=secret)
        secret = credential_secret(credential)
    try:
        return call(secret)
    except Unauthorized as second:
        credential_mark_needs_reauth(credential_id=credential_id, error=second)
        raise CredentialUnusable(CREDENTIAL_UNUSABLE, status=CredentialStatus.NEEDS_REAUTH) from second


def credential_mark_needs_reauth(*, credential_id: int, error: ProviderError) -> None:
    with transaction.atomic():
        credential = _lock(credential_id)
        if credential.status in USABLE_STATUSES:
            _mark_needs_reauth(credential, error)


# --- revoke and re-encrypt -----------------------------------------------------------------------


@sensitive_variables("google_token")
@transaction.atomic
def credential_revoke(*, credential_id: int, actor: Actor, request_ctx: dict | None = None) -> ConnectorCredential:
    """Forget the secrets and mark the credential revoked. The provider-side revoke runs as a task."""
    credential = _lock(credential_id)
    google_token = ""
    if credential.provider == Provider.GOOGLE_ADS and credential.refresh_token_enc:
        google_token = decrypt_secret(credential.refresh_token_enc)
    if credential.provider == Provider.ATTENTIVE:
        from connectors.attentive import attentive_webhooks_disable
        from connectors.tasks import attentive_webhook_delete_task

        # Refused from now on; deleted at Attentive after commit, with the key we are about to forget.
        for webhook_id in attentive_webhooks_disable(credential=credential):
            if credential.api_key_enc:
                attentive_webhook_delete_task.delay_on_commit(credential.api_key_enc, webhook_id)
    credential.status = CredentialStatus.REVOKED
    credential.access_token_enc = credential.refresh_token_enc = credential.api_key_enc = ""
    credential.secret_last4 = ""
    credential.next_attempt_at = None
    credential.save()
    _audit(credential, "credential.revoked", actor, request_ctx)
    if google_token:
        from connectors.tasks import google_token_revoke_task

        # The token travels encrypted through the broker, and only after the row is committed.
        google_token_revoke_task.delay_on_commit(encrypt_secret(google_token))
    return credential


@transaction.atomic
def _reencrypt_fields(row, fields: tuple[str, ...]) -> list[str]:
    """Rewrite each non-empty secret field under the primary key; returns the fields that changed."""
    from connectors.crypto import reencrypt_secret

    changed = []
    for name in fields:
        value = getattr(row, name)
        if value:
            new = reencrypt_secret(value)
            if new != value:
                setattr(row, name, new)
                changed.append(name)
    return changed


@transaction.atomic
def credential_reencrypt(*, credential_id: int, actor: Actor, request_ctx: dict | None = None) -> bool:
    """Rewrite the credential's secrets under the primary key (row locked); True when anything changed.

    Audited whether or not anything changed: the record says who looked at which credential's secrets.
    """
    from connectors.crypto import keyring
    from connectors.models import SECRET_FIELDS

    credential = _lock(credential_id)
    changed = _reencrypt_fields(credential, SECRET_FIELDS["ConnectorCredential"])
    if changed:
        credential.save(update_fields=[*changed, "updated_at"])
    _audit(credential, "credential.reencrypted", actor, request_ctx, fields=changed, key_id=keyring().primary_id)
    return bool(changed)


@transaction.atomic
def credential_refresh_request(*, credential_id: int, actor: Actor, request_ctx: dict | None = None) -> None:
    """Someone (staff) asks for a refresh now: audited, and a forced refresh task runs after commit."""
    from connectors.tasks import credential_refresh_task

    credential = ConnectorCredential.objects.get(pk=credential_id)
    _audit(credential, "credential.refresh_requested", actor, request_ctx)
    credential_refresh_task.delay_on_commit(credential_id, force=True)


@sensitive_variables()
def google_token_revoke(*, encrypted_token: str) -> None:
    try:
        GoogleOAuthClient().revoke(token=decrypt_secret(encrypted_token))
    except Permanent:
        logger.info("google revoke refused (token already invalid)")


# --- the sweeper ---------------------------------------------------------------------------------


def credential_refresh_sweep() -> list[int]:
    """Enqueue one refresh task per credential due within its provider's window (after commit)."""
    from connectors.models import OAuthState, ShopifyOAuthState
    from connectors.selectors import credential_ids_due_for_refresh
    from connectors.tasks import credential_refresh_task

    # Abandoned OAuth attempts are useless once their state expired; a day is kept for support questions.
    OAuthState.objects.filter(created_at__lt=timezone.now() - dt.timedelta(days=1)).delete()
    ShopifyOAuthState.objects.filter(created_at__lt=timezone.now() - dt.timedelta(days=1)).delete()
    ids = credential_ids_due_for_refresh()
    for credential_id in ids:
        credential_refresh_task.delay_on_commit(credential_id)
    if ids:
        logger.info("credential refresh sweep: %s due", len(ids))
    return ids


# --- key rotation --------------------------------------------------------------------------------


def secrets_rotate_batch(*, model_name: str, after_pk: int, batch_size: int) -> tuple[int, int, int]:
    """Re-encrypt one batch of rows (pk > after_pk) under the primary key, rows locked.

    Returns (rows checked, values rewritten, last pk). Values already under the primary key are left
    alone, so a rerun after an interruption resumes where it stopped and a second run changes nothing.
    """
    from django.apps import apps

    from connectors.models import SECRET_FIELDS

    model = apps.get_model("connectors", model_name)
    fields = SECRET_FIELDS[model_name]
    rewritten = 0
    with transaction.atomic():
        rows = list(model.objects.select_for_update().filter(pk__gt=after_pk).order_by("pk")[:batch_size])
        for row in rows:
            changed = _reencrypt_fields(row, fields)
            if changed:
                row.save(update_fields=changed)
                rewritten += len(changed)
    return len(rows), rewritten, rows[-1].pk if rows else after_pk


@sensitive_variables()
def attentive_webhook_delete(*, encrypted_api_key: str, attentive_webhook_id: str) -> None:
    """Delete a webhook at Attentive (already gone counts as deleted); a refused key is logged, not retried."""
    from connectors.attentive import attentive_webhook_unregister

    try:
        api_key = decrypt_secret(encrypted_api_key)
        attentive_webhook_unregister(api_key=api_key, attentive_webhook_id=attentive_webhook_id)
    except (Unauthorized, Forbidden, Permanent) as exc:
        logger.warning("attentive webhook %s not deleted at Attentive: %s", attentive_webhook_id, exc.code)

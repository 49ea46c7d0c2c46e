"""Reads for credentials. Merchant-facing reads always name the merchant."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import Merchant
from connectors.choices import API_KEY_PROVIDERS, OAUTH_PROVIDERS, AuthKind, CredentialStatus, Provider, SourceState
from connectors.models import ConnectorCredential
from ingestion.choices import TERMINAL_JOB_STATUSES, JobStatus, PipelineStatus


def credential_list(*, merchant: Merchant) -> QuerySet[ConnectorCredential]:
    return ConnectorCredential.objects.filter(merchant=merchant).order_by("provider", "account_label")


def credential_get(*, merchant: Merchant, credential_id: int) -> ConnectorCredential:
    try:
        return ConnectorCredential.objects.get(merchant=merchant, pk=credential_id)
    except (ConnectorCredential.DoesNotExist, ValueError, TypeError):
        raise Http404("No such connection.") from None


def refresh_windows() -> dict[str, dt.timedelta]:
    """How far ahead of expiry each provider's tokens are renewed."""
    return {
        Provider.GOOGLE_ADS: dt.timedelta(seconds=settings.CONNECTORS_GOOGLE_REFRESH_AHEAD_SECONDS),
        Provider.META: dt.timedelta(days=settings.CONNECTORS_META_REFRESH_AHEAD_DAYS),
        Provider.SHOPIFY: dt.timedelta(seconds=settings.CONNECTORS_SHOPIFY_REFRESH_AHEAD_SECONDS),
    }


# A failed refresh is retried by its own task at next_attempt_at; the sweeper takes such a row up only this
# long after, when no task did (a wait longer than the broker holds, a lost message): a task merely late runs
# first, and the sweeper never adds an attempt of its own. As the notification outbox's PENDING_GRACE.
REFRESH_RESCUE_GRACE = dt.timedelta(minutes=10)


def credential_ids_due_for_refresh(*, now: dt.datetime | None = None) -> list[int]:
    """OAuth credentials, still usable, whose token expires within their provider's window.

    Tokens that never expire (expires_at empty: Meta system users) are never due. A credential in
    backoff after a transient failure waits for its next_attempt_at and REFRESH_RESCUE_GRACE more.
    """
    now = now or timezone.now()
    due = Q()
    for provider, window in refresh_windows().items():
        due |= Q(provider=provider, expires_at__lte=now + window)
    return list(
        ConnectorCredential.objects.filter(
            due,
            auth_kind=AuthKind.OAUTH,
            status__in=[CredentialStatus.ACTIVE, CredentialStatus.ERROR],
            expires_at__isnull=False,
        )
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now - REFRESH_RESCUE_GRACE))
        .order_by("expires_at")
        .values_list("pk", flat=True)
    )


def credential_needs_attention_q() -> Q:
    """Credentials a person has to look at: reconnect needed, failing, or about to expire for good."""
    soon = timezone.now() + dt.timedelta(days=7)
    return Q(status__in=[CredentialStatus.NEEDS_REAUTH, CredentialStatus.ERROR]) | Q(
        status=CredentialStatus.ACTIVE, provider=Provider.META, expires_at__lte=soon
    )


def secret_key_usage() -> dict[str, int]:
    """How many stored secret values each key id wrote (across every encrypted column)."""
    from collections import Counter

    from django.apps import apps

    from connectors.crypto import SecretDecryptionError, secret_key_id
    from connectors.models import SECRET_FIELDS

    usage: Counter[str] = Counter()
    for model_name, fields in SECRET_FIELDS.items():
        model = apps.get_model("connectors", model_name)
        for values in model.objects.values_list(*fields).iterator(chunk_size=2000):
            for value in values:
                if value:
                    try:
                        usage[secret_key_id(value)] += 1
                    except SecretDecryptionError:
                        usage["(not ciphertext)"] += 1
    return dict(usage)


# --- the Connectors page ---------------------------------------------------------------------------
# Airbyte source whose raw tables (analytics.raw_schema) carry each provider's data; by default the provider's
# own value (`google_ads_*`, `klaviyo_*`, `attentive_*`, and `shopify_*` once Shopify is a provider).
RAW_SOURCE_OF_PROVIDER = {Provider.META: "facebook_marketing"}

NEXT_CONNECT_OAUTH = "Connect your {provider} account."
NEXT_CONNECT_API_KEY = "Add your {provider} API key below."
NEXT_CONNECT_OTHER = "Connect {provider} from its setup flow."
NEXT_NONE = "Nothing to do: data is arriving."
NEXT_WAIT_FOR_DATA = "Connected. Data appears after the next sync; nothing to do."
NEXT_REAUTH = "Reconnect {provider}: until then no new data arrives."
NEXT_ERROR = "We keep retrying on our own. If this lasts more than a day, reconnect {provider}."

PROBLEM_ACCESS_LOST = (
    "{provider} no longer accepts our access: it was withdrawn, it expired, or the account's password changed. "
    "Reconnect to resume."
)
PROBLEM_PERMISSION = "{provider} no longer grants the permissions we need. Reconnect and approve every permission."
PROBLEM_RATE_LIMITED = "{provider} is limiting how often we may ask right now. We retry automatically."
PROBLEM_UNREACHABLE = "{provider} could not be reached when we last tried. We retry automatically."
PROBLEM_OTHER = "Our last attempt to keep {provider} connected failed. We retry automatically."

# last_error_code values (connectors.clients) by what a merchant can do about them. Meta's are meta_<code>[_<sub>].
_ACCESS_LOST_CODES = {"invalid_grant", "unauthorized", "authentication_failed", "not_authenticated", "invalid_token"}
_PERMISSION_CODES = {"forbidden", "permission_denied", "USER_PERMISSION_DENIED", "insufficient_scope"}
_UNREACHABLE_CODES = {"timeout", "connection_error", "invalid_response"}
_META_ACCESS_LOST = {"102", "190"}
_META_PERMISSION = {"10", "200"}  # and 200-299: Meta's permission family
_META_RATE_LIMITED = {"4", "17", "32", "613", "80000", "80004"}
_META_UNREACHABLE = {"1", "2"}

_STATE_OF_STATUS = {
    CredentialStatus.ACTIVE: SourceState.CONNECTED,
    CredentialStatus.NEEDS_REAUTH: SourceState.NEEDS_REAUTH,
    CredentialStatus.ERROR: SourceState.ERROR,
}
_WORST_FIRST = (SourceState.NEEDS_REAUTH, SourceState.ERROR, SourceState.CONNECTED)


class SyncState:
    """What a connection's Airbyte pipeline did last, as the Connectors page names it."""

    SYNCED = "synced"
    SYNCING = "syncing"
    FAILED = "failed"
    PAUSED = "paused"
    NOT_SYNCED = "not_synced"


SYNC_LABELS = {
    SyncState.SYNCED: "Synced",
    SyncState.SYNCING: "Syncing",
    SyncState.FAILED: "Failed",
    SyncState.PAUSED: "Paused",
    SyncState.NOT_SYNCED: "Not yet synced",
}

SYNC_PAUSED = "Paused: reconnect {provider} to resume."
SYNC_FAILED_ONCE = "The last sync failed; we retry automatically."
SYNC_FAILED_MANY = "The last {n} syncs failed; we keep retrying and will email you if it continues."
SYNC_FAILED_ALERTED = "The last {n} syncs failed; we keep retrying and have emailed the store's owners and admins."
SYNC_SERVICE_ONCE = "Our data service could not be reached for the last sync; we retry automatically."
SYNC_SERVICE_MANY = (
    "Our data service could not be reached for the last {n} syncs; nothing is needed from you, we keep retrying."
)
# The pipeline's last_error_code of a sync Airbyte ran and failed (ingestion.services._job_finish); any other code
# is our side failing to reach or drive Airbyte's API: not something the merchant can fix.
_SYNC_RAN_AND_FAILED_CODES = {"sync_failed"}


@dataclass(frozen=True)
class SyncRow:
    state: str  # a SyncState value
    label: str
    last_at: dt.datetime | None  # when the last job ended (or started, while it runs)
    rows: int | None  # rows the last job moved, when Airbyte said
    next_at: dt.datetime | None  # the next scheduled sync; None while paused
    problem: str  # plain words; never Airbyte's message


def _sync_problem(pipeline) -> str:
    n = pipeline.consecutive_failures
    if pipeline.last_error_code in _SYNC_RAN_AND_FAILED_CODES:
        if pipeline.failure_alerted_at:
            return SYNC_FAILED_ALERTED.format(n=n)
        return SYNC_FAILED_ONCE if n == 1 else SYNC_FAILED_MANY.format(n=n)
    return SYNC_SERVICE_ONCE if n == 1 else SYNC_SERVICE_MANY.format(n=n)


def connection_sync(credential: ConnectorCredential) -> SyncRow | None:
    """The credential's last and next sync in plain words, or None when it has no live pipeline.

    Reads only `credential.pipeline` and its `last_job`: the caller selects them with the credential (one query).
    Built from codes, counts and times only: the stored error messages are for staff.
    """
    try:
        pipeline = credential.pipeline
    except ObjectDoesNotExist:
        return None
    if pipeline.status == PipelineStatus.DELETED:
        return None
    job = pipeline.last_job
    running = job is not None and job.status not in TERMINAL_JOB_STATUSES
    problem = ""
    if pipeline.status == PipelineStatus.PAUSED:
        state = SyncState.PAUSED
        problem = SYNC_PAUSED.format(provider=credential.get_provider_display())
    elif running:
        state = SyncState.SYNCING
    elif pipeline.consecutive_failures:
        state = SyncState.FAILED
        problem = _sync_problem(pipeline)
    elif pipeline.last_synced_at:
        state = SyncState.SYNCED
    else:
        state = SyncState.NOT_SYNCED
    if job is None:
        last_at, rows = pipeline.last_synced_at, None
    elif running:
        last_at, rows = job.started_at or job.created_at, None
    else:
        last_at = job.finished_at or job.started_at
        rows = job.rows_synced if job.status == JobStatus.SUCCEEDED else None
    return SyncRow(
        state=state,
        label=SYNC_LABELS[state],
        last_at=last_at,
        rows=rows,
        next_at=None if state == SyncState.PAUSED else pipeline.next_sync_at,
        problem=problem,
    )


@dataclass(frozen=True)
class ConnectionRow:
    credential: ConnectorCredential
    state: SourceState
    problem: str  # plain words for the merchant; never the provider's own message
    sync: SyncRow | None = None  # the Airbyte pipeline's last and next sync; None before it exists


@dataclass(frozen=True)
class SourceRow:
    provider: Provider
    connect_kind: str  # AuthKind value, or "" for a provider connected elsewhere (Shopify: the app install)
    state: SourceState
    last_data_at: dt.datetime | None
    next_step: str
    connections: list[ConnectionRow] = field(default_factory=list)
    # For a provider connected outside this page (connect_kind ""): where its own flow starts, set by the view.
    connect_url: str = ""
    last_synced_at: dt.datetime | None = None  # the latest successful sync over its connections' pipelines


def _error_kind(code: str) -> str:
    if code.startswith("meta_"):
        main = code.split("_")[1]
        if main in _META_ACCESS_LOST:
            return PROBLEM_ACCESS_LOST
        if main in _META_PERMISSION or (main.isdigit() and 200 <= int(main) <= 299):
            return PROBLEM_PERMISSION
        if main in _META_RATE_LIMITED:
            return PROBLEM_RATE_LIMITED
        if main in _META_UNREACHABLE:
            return PROBLEM_UNREACHABLE
        return PROBLEM_OTHER
    if code in _ACCESS_LOST_CODES:
        return PROBLEM_ACCESS_LOST
    if code in _PERMISSION_CODES:
        return PROBLEM_PERMISSION
    if code == "rate_limited":
        return PROBLEM_RATE_LIMITED
    if code in _UNREACHABLE_CODES or code.startswith(("http_5", "non_json_")):
        return PROBLEM_UNREACHABLE
    return PROBLEM_OTHER


def credential_problem(credential: ConnectorCredential) -> str:
    """What went wrong, in words a merchant can act on; "" for a healthy connection.

    Built from `last_error_code` only: the stored provider message is for staff (it may quote request details).
    """
    provider = credential.get_provider_display()
    if credential.status == CredentialStatus.ACTIVE and not credential.last_error_code:
        return ""
    template = _error_kind(credential.last_error_code or "")
    if credential.status == CredentialStatus.NEEDS_REAUTH and template != PROBLEM_PERMISSION:
        template = PROBLEM_ACCESS_LOST  # whatever the code, the merchant's move is the same: reconnect
    return template.format(provider=provider)


def _connect_kind(provider: str) -> str:
    if provider in OAUTH_PROVIDERS:
        return AuthKind.OAUTH
    if provider in API_KEY_PROVIDERS:
        return AuthKind.API_KEY
    return ""


# The freshness read scans the raw tables (Airbyte's, unindexed on _airbyte_extracted_at): ~0.1 s on a year of
# demo data, more on a big store. Syncs land hours apart, so a page may show a value this old.
LAST_DATA_CACHE_SECONDS = 300


def _last_data_cached(merchant: Merchant) -> dict[str, dt.datetime]:
    from analytics.selectors import raw_last_extracted_list

    key = f"connectors:raw-last-data:v1:{merchant.pk}:{merchant.key}"
    cached = cache.get(key)
    if cached is not None:
        return {source: dt.datetime.fromisoformat(at) for source, at in cached.items()}
    latest = raw_last_extracted_list(
        merchant=merchant, sources=[RAW_SOURCE_OF_PROVIDER.get(p, p.value) for p in Provider]
    )
    cache.set(key, {source: at.isoformat() for source, at in latest.items()}, LAST_DATA_CACHE_SECONDS)
    return latest


def source_checklist(*, merchant: Merchant) -> list[SourceRow]:
    """Every provider, in Provider's order, with its live connections, state, last data and next step.

    A provider added to Provider appears here with no other change. Disconnected (revoked) credentials are
    left out: the source reads "not connected" and the audit log keeps the history.
    """
    credentials = (
        credential_list(merchant=merchant)
        .exclude(status=CredentialStatus.REVOKED)
        .select_related("pipeline", "pipeline__last_job")
    )
    by_provider: dict[str, list[ConnectorCredential]] = {}
    for credential in credentials:
        by_provider.setdefault(credential.provider, []).append(credential)
    last_data = _last_data_cached(merchant)
    rows = []
    for provider in Provider:
        connections = [
            ConnectionRow(
                credential=c, state=_STATE_OF_STATUS[c.status], problem=credential_problem(c), sync=connection_sync(c)
            )
            for c in by_provider.get(provider, [])
        ]
        states = {c.state for c in connections}
        state = next((s for s in _WORST_FIRST if s in states), SourceState.NOT_CONNECTED)
        last_data_at = last_data.get(RAW_SOURCE_OF_PROVIDER.get(provider, provider.value))
        kind = _connect_kind(provider)
        if state == SourceState.NOT_CONNECTED:
            step = {AuthKind.OAUTH: NEXT_CONNECT_OAUTH, AuthKind.API_KEY: NEXT_CONNECT_API_KEY}.get(
                kind, NEXT_CONNECT_OTHER
            )
        elif state == SourceState.NEEDS_REAUTH:
            step = NEXT_REAUTH
        elif state == SourceState.ERROR:
            step = NEXT_ERROR
        else:
            failing = next((c.sync.problem for c in connections if c.sync and c.sync.state == SyncState.FAILED), "")
            step = failing or (NEXT_NONE if last_data_at else NEXT_WAIT_FOR_DATA)
        synced = [c.credential.pipeline.last_synced_at for c in connections if c.sync]
        last_synced_at = max((at for at in synced if at), default=None)
        rows.append(
            SourceRow(
                provider=provider,
                connect_kind=kind,
                state=state,
                last_data_at=last_data_at,
                next_step=step.format(provider=provider.label),
                connections=connections,
                last_synced_at=last_synced_at,
            )
        )
    return rows

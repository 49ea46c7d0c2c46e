"""Writes for ingestion: each credential's Airbyte source and connection follow the credential, and the
sweeper triggers and follows their sync jobs.

Every function here is idempotent and works from the rows, not from memory, so a crash anywhere is repaired
by running it again (the sweeper does): a source created but not recorded is found by nothing — hence each
Airbyte id is saved in the same transaction the call is made in, even when a later call of the same
reconcile fails (the failure is raised after commit); a job started but not recorded is found by the 409
of the next trigger (attach); a job recorded but not followed is polled by the sweeper.

Errors: Airbyte unreachable (`Transient`, `RateLimited`) is the platform's outage, not the store's — it is
not counted against a pipeline, the schedule is kept, and staff get one ERROR line per outage. Anything else
Airbyte refuses is the pipeline's failure (counted, retried with backoff, the store's admins told after
AIRBYTE_SYNC_ALERT_AFTER_FAILURES in a row, once).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.dateparse import parse_datetime
from django.views.decorators.debug import sensitive_variables

from accounts.models import Merchant
from analytics.services import raw_data_changed_mark
from compliance.services import Actor, audit_event_record
from config.retry import backoff
from connectors.choices import USABLE_STATUSES, AuthKind, CredentialStatus, Provider
from connectors.models import ConnectorCredential
from ingestion.choices import TERMINAL_JOB_STATUSES, JobStatus, JobType, PipelineKind, PipelineStatus
from ingestion.client import (
    AirbyteClient,
    Conflict,
    NotFound,
    ProviderError,
    RateLimited,
    Transient,
    TryLater,
    _scrub,
    secret_values,
)
from ingestion.models import Pipeline, SyncJob, Workspace
from ingestion.sources import (
    EXCHANGE_RATES_INTERVAL_SECONDS,
    SOURCES,
    STORE_SOURCES,
    SourceKind,
    changed_part,
    default_start_date,
    digests,
)

logger = logging.getLogger(__name__)

UNREACHABLE = (Transient, RateLimited)
# Polls of a running job: 5 s, 10 s, 20 s ... then every minute.
POLL_FIRST_SECONDS = 5.0
POLL_MAX_SECONDS = 60.0
# A job whose next poll is this late has lost its task (a killed worker): the sweeper polls it.
POLL_GRACE_SECONDS = 60.0
# A failed sync is retried after 5 min, 10 min, 20 min ... but never later than its next regular slot.
RETRY_FIRST_SECONDS = 300.0
SYNC_FAILED = "The sync failed in Airbyte."
SYNC_CANCELLED = "The sync was cancelled."
JOB_VANISHED = "Airbyte no longer knows this job."
# What a failure notification turns into (job_notification_record).
NOTIFICATION_IGNORED = "ignored"  # no job of ours: another deployment's, one started by hand, or forged
NOTIFICATION_RECORDED = "recorded"  # confirmed through GET /jobs/{id}
NOTIFICATION_PENDING = "pending"  # Airbyte could not confirm it now: the poller does, with the reason kept
# The source refused its configuration (bad or revoked credentials): the credential needs reconnecting.
SOURCE_CONFIG_ERROR = ("config_error", "source")


class IngestionError(Exception):
    """Base of the errors raised here; `message` is safe to show (no secret, no configuration)."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class AirbyteUnreachable(IngestionError):
    """Airbyte's API did not answer (5xx, 429, timeout): retry later, nothing was lost."""


def _client() -> AirbyteClient:
    return AirbyteClient()


def _error_text(error: Exception) -> tuple[str, str]:
    code = getattr(error, "code", "") or type(error).__name__
    return str(code)[:64], str(error)[:500]


# --- scheduling ----------------------------------------------------------------------------------


def stagger_offset(key: str, interval_seconds: int) -> int:
    """Seconds into each interval at which a connection fires: a hash of its id, so a thousand stores do not
    all sync at :00 — and a connection keeps its slot across restarts."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % max(1, interval_seconds)


def next_slot(key: str, interval_seconds: int, after: dt.datetime) -> dt.datetime:
    """The first of the connection's slots (offset + k·interval, epoch-aligned) strictly after `after`."""
    interval = max(1, interval_seconds)
    offset = stagger_offset(key, interval)
    epoch = int(after.timestamp())
    slot = (epoch - offset) // interval * interval + offset + interval
    return dt.datetime.fromtimestamp(slot, tz=dt.UTC)


def _history_jobs_running() -> int:
    """Jobs not terminal of pipelines that never synced: history syncs under way (first tries and their retries)."""
    return (
        SyncJob.objects.exclude(status__in=TERMINAL_JOB_STATUSES)
        .filter(pipeline__last_synced_at__isnull=True, job_type=JobType.SYNC)
        .count()
    )


# Serialises the start of history syncs across workers (pg_advisory_xact_lock), so the cap holds.
HISTORY_SYNC_LOCK = int.from_bytes(hashlib.sha256(b"ingestion.history-syncs").digest()[:4], "big")


def _history_place_free() -> bool:
    """Inside the atomic block that records the job: wait for the history lock, then whether a place is free
    under AIRBYTE_HISTORY_SYNCS_MAX_CONCURRENT. The lock is held until that block commits the new job."""
    cap = settings.AIRBYTE_HISTORY_SYNCS_MAX_CONCURRENT
    if cap <= 0:
        return True
    with connection.cursor() as cursor:
        cursor.execute("select pg_advisory_xact_lock(%s)", [HISTORY_SYNC_LOCK])
    return _history_jobs_running() < cap


# --- the Airbyte API's health -------------------------------------------------------------------


def workspace_get() -> Workspace:
    workspace, _ = Workspace.objects.get_or_create(workspace_id=settings.AIRBYTE_WORKSPACE_ID)
    return workspace


def _api_down(error: Exception) -> None:
    """Record the outage; its one ERROR line for staff once it has lasted AIRBYTE_OUTAGE_ALERT_SECONDS."""
    now = timezone.now()
    with transaction.atomic():
        workspace_get()
        workspace = Workspace.objects.select_for_update().get(workspace_id=settings.AIRBYTE_WORKSPACE_ID)
        if workspace.api_down_since is None:
            workspace.api_down_since = now
            logger.warning("Airbyte API unreachable (%s): syncs wait until it answers", _error_text(error)[0])
        if workspace.api_alerted_at is None and (now - workspace.api_down_since).total_seconds() >= (
            settings.AIRBYTE_OUTAGE_ALERT_SECONDS
        ):
            workspace.api_alerted_at = now
            logger.error(
                "Airbyte API unreachable since %s (%s): no store syncs until it answers; they catch up then",
                workspace.api_down_since.isoformat(),
                _error_text(error)[0],
            )
        workspace.save(update_fields=["api_down_since", "api_alerted_at", "updated_at"])


def _api_up() -> None:
    recovered = Workspace.objects.filter(
        workspace_id=settings.AIRBYTE_WORKSPACE_ID, api_down_since__isnull=False
    ).update(api_down_since=None, api_alerted_at=None, updated_at=timezone.now())
    if recovered:
        logger.info("Airbyte API answers again: syncs catch up")


# --- the destination -----------------------------------------------------------------------------


@sensitive_variables()
def destination_configuration() -> dict[str, Any]:
    """The deployment's PostgreSQL destination, from AIRBYTE_DESTINATION_*; an empty host is the warehouse."""
    warehouse = settings.DATABASES["warehouse"]
    own = bool(settings.AIRBYTE_DESTINATION_HOST)
    # The warehouse's host: a Unix-socket directory (`make run`'s embedded PostgreSQL, CI) arrives in OPTIONS.
    warehouse_host = warehouse.get("HOST") or warehouse.get("OPTIONS", {}).get("host") or "127.0.0.1"
    configuration: dict[str, Any] = {
        "host": settings.AIRBYTE_DESTINATION_HOST if own else warehouse_host,
        "port": int(settings.AIRBYTE_DESTINATION_PORT if own else (warehouse.get("PORT") or 5432)),
        "database": settings.AIRBYTE_DESTINATION_DATABASE or warehouse["NAME"],
        "schema": "public",  # every connection names its own namespace (the store's raw schema)
        "username": settings.AIRBYTE_DESTINATION_USER or warehouse.get("USER") or "",
        "ssl_mode": {"mode": settings.AIRBYTE_DESTINATION_SSL_MODE},
        "tunnel_method": {"tunnel_method": "NO_TUNNEL"},
        "disable_type_dedupe": False,
        "unconstrained_number": True,
    }
    password = settings.AIRBYTE_DESTINATION_PASSWORD if own else (warehouse.get("PASSWORD") or "")
    if password:
        configuration["password"] = password
    return configuration


@sensitive_variables()
def destination_ensure(client: AirbyteClient) -> str:
    """The destination's id: created once per deployment (row-locked, so never twice), updated when the
    settings change (only what changed is sent)."""
    workspace_get()
    with transaction.atomic():
        workspace = Workspace.objects.select_for_update().get(workspace_id=settings.AIRBYTE_WORKSPACE_ID)
        configuration = destination_configuration()
        if not workspace.destination_id:
            created = client.create_destination(
                name="warehouse", workspace_id=workspace.workspace_id, destination_type="postgres",
                configuration=configuration,
            )  # fmt: skip
            workspace.destination_id = str(created["destinationId"])
            workspace.destination_digests = digests(configuration)
            workspace.save(update_fields=["destination_id", "destination_digests", "updated_at"])
            logger.info("Airbyte destination %s created", workspace.destination_id)
            # First use of the workspace: its notifications too (the sweeper keeps them set afterwards). Without
            # them only the reason of a failure is missing: never a reason to fail the connect.
            try:
                workspace_notifications_ensure(client)
            except ProviderError as exc:
                logger.warning("Airbyte workspace notifications not set (%s); the sweeper tries again", exc.code)
        else:
            patch = changed_part(configuration, workspace.destination_digests)
            if patch:
                client.patch_destination(workspace.destination_id, configuration=patch)
                workspace.destination_digests = digests(configuration)
                workspace.save(update_fields=["destination_digests", "updated_at"])
        return workspace.destination_id


# --- the workspace's notifications (§1.7) --------------------------------------------------------------

NOTIFICATION_TOKEN_SALT = "ingestion.airbyte-notifications"


def notification_tokens() -> list[str]:
    """The webhook URL's token, from SECRET_KEY (and, during a key rotation, from each fallback key).

    Airbyte does not sign its notifications, so the URL itself is the only secret; deriving it keeps one
    secret fewer to provision, and a new SECRET_KEY re-sets the workspace's URL at the next sweep."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [
        salted_hmac(NOTIFICATION_TOKEN_SALT, settings.AIRBYTE_WORKSPACE_ID, secret=key, algorithm="sha256").hexdigest()
        for key in keys
    ]


def notification_token_valid(given: str) -> bool:
    """Constant time, against every valid token (no early exit that would tell which one came close)."""
    valid = False
    for token in notification_tokens():
        valid |= constant_time_compare(given, token)
    return valid


@sensitive_variables()
def notification_url() -> str:
    """Our webhook with its token; empty when AIRBYTE_NOTIFICATIONS_BASE_URL is (notifications off)."""
    base = settings.AIRBYTE_NOTIFICATIONS_BASE_URL
    if not base:
        return ""
    return f"{base.rstrip('/')}{reverse('ingestion:airbyte_notification')}?token={notification_tokens()[0]}"


@sensitive_variables()
def workspace_notifications_ensure(client: AirbyteClient | None = None) -> bool:
    """Point the workspace's failure and success webhooks at us; a call to Airbyte only when the URL changed
    (what was set is kept as an HMAC). Other channels of those notifications (email) are kept as they are.

    True when it PATCHed. Raises the client's errors (the caller decides whether that is worth failing for)."""
    url = notification_url()
    if not url:
        return False
    digest = salted_hmac("ingestion.notifications-url", url, algorithm="sha256").hexdigest()[:32]
    workspace = workspace_get()
    if workspace.notifications_digest == digest:
        return False
    client = client or _client()
    current = client.get_workspace(workspace.workspace_id).get("notifications") or {}
    webhook = {"enabled": True, "url": url}
    notifications = {
        kind: {**(current.get(kind) if isinstance(current.get(kind), dict) else {}), "webhook": webhook}
        for kind in ("failure", "success")
    }
    client.patch_workspace(workspace.workspace_id, notifications=notifications, secrets=notification_tokens())
    Workspace.objects.filter(pk=workspace.pk).update(notifications_digest=digest, updated_at=timezone.now())
    logger.info("Airbyte workspace %s: failure and success notifications set to our webhook", workspace.workspace_id)
    return True


def _exists(get: Callable[[str], dict[str, Any]], resource_id: str) -> bool:
    """Whether Airbyte still has it (a deleted connection is kept as `deprecated`: gone for us)."""
    try:
        return get(resource_id).get("status") != "deprecated"
    except NotFound:
        return False


def _destination_check(client: AirbyteClient) -> None:
    """Forget the destination if Airbyte no longer has it (a replaced server): the next use creates it."""
    workspace = workspace_get()
    if not workspace.destination_id:
        return
    try:
        client.get_destination(workspace.destination_id)
    except NotFound:
        logger.warning("Airbyte lost destination %s; it is created again", workspace.destination_id)
        Workspace.objects.filter(pk=workspace.pk, destination_id=workspace.destination_id).update(
            destination_id="", destination_digests={}, updated_at=timezone.now()
        )


# --- the lifecycle: the pipeline follows its credential ----------------------------------------------


def _lock_pipeline(credential: ConnectorCredential) -> Pipeline:
    """The credential's pipeline, row-locked (created when missing); inside an atomic block."""
    kind = SOURCES[credential.provider]
    Pipeline.objects.get_or_create(
        credential=credential,
        defaults={
            "merchant_id": credential.merchant_id,
            "source_type": kind.source_type,
            "start_date": default_start_date(timezone.localdate()),
            "sync_interval_seconds": settings.AIRBYTE_SYNC_INTERVAL_SECONDS,
        },
    )
    return Pipeline.objects.select_for_update(of=("self",)).select_related("merchant").get(credential=credential)


def _source_kind(pipeline: Pipeline, credential: ConnectorCredential | None) -> SourceKind:
    return SOURCES[credential.provider] if credential is not None else STORE_SOURCES[pipeline.kind]


@sensitive_variables()
def _source_ensure(client: AirbyteClient, pipeline: Pipeline, credential: ConnectorCredential | None) -> None:
    """Create the source, or PATCH exactly the leaves of its configuration that changed (a new token)."""
    kind = _source_kind(pipeline, credential)
    configuration = kind.configuration(credential, pipeline.start_date)
    if not pipeline.source_id:
        created = client.create_source(
            name=f"{pipeline.merchant.key}-{kind.source_type}",
            workspace_id=settings.AIRBYTE_WORKSPACE_ID,
            source_type=kind.source_type,
            configuration=configuration,
        )
        pipeline.source_id = str(created["sourceId"])
        pipeline.source_digests = digests(configuration)
        return
    patch = changed_part(configuration, pipeline.source_digests)
    if patch:
        client.patch_source(pipeline.source_id, configuration=patch)
        pipeline.source_digests = digests(configuration)
        logger.info("Airbyte source %s updated: %s", pipeline.source_id, ", ".join(sorted(_paths(patch))))


def _paths(tree: dict[str, Any], prefix: str = "") -> list[str]:
    """The leaf paths of a patch, for the log line (names only, never values)."""
    found = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        found.extend(_paths(value, f"{path}.") if isinstance(value, dict) else [path])
    return found


def _connection_ensure(client: AirbyteClient, pipeline: Pipeline, credential: ConnectorCredential | None) -> None:
    kind = _source_kind(pipeline, credential)
    if not pipeline.connection_id:
        created = client.create_connection(
            source_id=pipeline.source_id,
            destination_id=destination_ensure(client),
            streams=[stream.configuration() for stream in kind.streams],
            namespace_format=pipeline.merchant.raw_schema,
            prefix=kind.prefix,
            name=f"{pipeline.merchant.key} {kind.source_type}",
            schedule={"scheduleType": "manual"},  # we trigger: staggered, and after a token refresh
        )
        pipeline.connection_id = str(created["connectionId"])
        pipeline.next_sync_at = timezone.now()  # the history arrives with the first sync, right away
    elif pipeline.status == PipelineStatus.PAUSED:
        client.patch_connection(pipeline.connection_id, status="active")
        pipeline.next_sync_at = timezone.now()


def _teardown(client: AirbyteClient, pipeline: Pipeline) -> None:
    """Deactivate, then delete the connection, then the source; each id is forgotten once Airbyte agrees."""
    if pipeline.connection_id:
        for call in (lambda: client.patch_connection(pipeline.connection_id, status="inactive"),
                     lambda: client.delete_connection(pipeline.connection_id)):  # fmt: skip
            try:
                call()
            except NotFound:
                break  # already gone
        pipeline.connection_id = ""
    if pipeline.source_id:
        with contextlib.suppress(NotFound):
            client.delete_source(pipeline.source_id)
        pipeline.source_id = ""
        pipeline.source_digests = {}


# What a pipeline should be in Airbyte (`_reconcile`): its source and an active connection, its connection
# paused (the credential needs reconnecting, the store is uninstalled), or nothing (disconnected, store gone).
WANT_ACTIVE, WANT_PAUSED, WANT_DELETED = "active", "paused", "deleted"


def _closed_before() -> dt.datetime:
    """A store uninstalled before this is closed: Shopify erases it (shop/redact) 48 h after the uninstall, and a
    reinstall after that is a new start — so its connections and sources (its secrets) leave Airbyte."""
    return timezone.now() - dt.timedelta(days=settings.AIRBYTE_TEARDOWN_AFTER_UNINSTALL_DAYS)


def _closed(merchant: Merchant) -> bool:
    return (
        not merchant.is_active and merchant.uninstalled_at is not None and merchant.uninstalled_at <= _closed_before()
    )


def _want(credential: ConnectorCredential) -> str:
    if credential.status in USABLE_STATUSES and credential.merchant.is_active:
        return WANT_ACTIVE
    if credential.status == CredentialStatus.REVOKED or _closed(credential.merchant):
        return WANT_DELETED
    return WANT_PAUSED


def _reconcile(client: AirbyteClient, pipeline: Pipeline, credential: ConnectorCredential | None, want: str) -> None:
    if want == WANT_ACTIVE:
        try:
            _source_ensure(client, pipeline, credential)
            _connection_ensure(client, pipeline, credential)
        except NotFound:
            # Deleted on Airbyte's side (by hand, say): what we hold is gone, so both are made afresh, once.
            logger.warning("pipeline %s: Airbyte lost its source or connection; creating them again", pipeline.pk)
            _destination_check(client)
            if pipeline.source_id and not _exists(client.get_source, pipeline.source_id):
                pipeline.source_id, pipeline.source_digests = "", {}
            if pipeline.connection_id and not _exists(client.get_connection, pipeline.connection_id):
                pipeline.connection_id = ""
            _source_ensure(client, pipeline, credential)
            _connection_ensure(client, pipeline, credential)
        pipeline.status = PipelineStatus.ACTIVE
    elif want == WANT_PAUSED:
        if pipeline.connection_id and pipeline.status != PipelineStatus.PAUSED:
            client.patch_connection(pipeline.connection_id, status="inactive")
        pipeline.status = PipelineStatus.PAUSED if pipeline.connection_id else PipelineStatus.PENDING
        pipeline.next_sync_at = None
    else:  # revoked (disconnected, uninstalled), or the store is gone
        _teardown(client, pipeline)
        pipeline.status = PipelineStatus.DELETED
        pipeline.next_sync_at = None


def _reconcile_recorded(
    client: AirbyteClient, pipeline: Pipeline, credential: ConnectorCredential | None, want: str
) -> Exception | None:
    """_reconcile inside the caller's transaction; Airbyte refusing is counted against the pipeline. The error,
    if any, is returned for _reconciled to raise once the ids Airbyte already gave are saved."""
    try:
        _reconcile(client, pipeline, credential, want)
    except UNREACHABLE as exc:
        return exc
    except ProviderError as exc:
        _failure_count(pipeline, *_error_text(exc), now=timezone.now())
        return exc
    return None


def _reconciled(failure: Exception | None) -> None:
    """After the reconcile's commit: the API's health recorded, and its failure raised."""
    if isinstance(failure, UNREACHABLE):
        _api_down(failure)
        raise AirbyteUnreachable("Airbyte is not answering; the pipeline is reconciled later.") from failure
    if failure is not None:
        raise failure
    _api_up()


def pipeline_follow_credential(*, credential_id: int) -> Pipeline | None:
    """Make Airbyte match the credential: usable → source (created or PATCHed) and an active connection;
    needs reconnecting or the store inactive (uninstalled) → connection paused; revoked → connection
    deactivated and deleted, source deleted.

    None for a provider without an Airbyte source. Raises AirbyteUnreachable (retry later) or the client's
    error, after saving every id Airbyte already gave us.
    """
    credential = ConnectorCredential.objects.select_related("merchant").get(pk=credential_id)
    if credential.provider not in SOURCES:
        return None
    if _want(credential) != WANT_ACTIVE and not Pipeline.objects.filter(credential=credential).exists():
        return None  # nothing in Airbyte to pause or delete
    client = _client()
    with transaction.atomic():
        pipeline = _lock_pipeline(credential)
        credential = ConnectorCredential.objects.select_related("merchant").get(pk=credential_id)  # the latest
        failure = _reconcile_recorded(client, pipeline, credential, _want(credential))
        pipeline.save()
    _reconciled(failure)
    return pipeline


# --- a store's own pipelines (exchange rates) ------------------------------------------------------------

# The providers whose spend the marts convert to the store's currency (fct_ad_spend_daily).
AD_PROVIDERS = (Provider.META, Provider.GOOGLE_ADS)


def _stores_wanting_exchange_rates():
    """Every store that gets an exchange-rates pipeline: installed, with a Meta or Google Ads connection that is
    not disconnected (one needing reconnecting still has spend to convert).

    Not every installed store: the rates API is metered per request, and a store without ad spend converts
    nothing. Not only stores whose ad account bills in another currency: that is known only once the ad data
    has landed (the account's currency is a column of it), after the first spend would already need a rate.
    """
    if not settings.EXCHANGE_RATES_ACCESS_KEY:
        return Merchant.objects.none()
    statuses = [*USABLE_STATUSES, CredentialStatus.NEEDS_REAUTH]
    return Merchant.objects.filter(
        is_active=True, credentials__provider__in=AD_PROVIDERS, credentials__status__in=statuses
    ).distinct()


def pipeline_follow_store(*, merchant_id: int, kind: str = PipelineKind.EXCHANGE_RATES) -> Pipeline | None:
    """Make Airbyte match the store for a source of its own: wanted (see _stores_wanting_exchange_rates) →
    source and an active connection; the store uninstalled or without ad connections → connection paused;
    the store closed (uninstalled AIRBYTE_TEARDOWN_AFTER_UNINSTALL_DAYS ago) → connection and source deleted.
    (A deleted store's pipelines are orphans: pipeline_orphan_teardown.)

    None when there is nothing to make or undo. Raises like pipeline_follow_credential."""
    merchant = Merchant.objects.filter(pk=merchant_id).first()
    if merchant is None:
        return None
    if _stores_wanting_exchange_rates().filter(pk=merchant_id).exists():
        want = WANT_ACTIVE
    else:
        want = WANT_DELETED if _closed(merchant) else WANT_PAUSED
    existing = Pipeline.objects.filter(merchant_id=merchant_id, kind=kind)
    if want != WANT_ACTIVE and not existing.exists():
        return None
    client = _client()
    with transaction.atomic():
        if want == WANT_ACTIVE:
            Pipeline.objects.get_or_create(
                merchant_id=merchant_id,
                kind=kind,
                defaults={
                    "source_type": STORE_SOURCES[kind].source_type,
                    "start_date": default_start_date(timezone.localdate()),
                    "sync_interval_seconds": EXCHANGE_RATES_INTERVAL_SECONDS,
                },
            )
        pipeline = existing.select_for_update(of=("self",)).select_related("merchant").get()
        failure = _reconcile_recorded(client, pipeline, None, want)
        pipeline.save()
    _reconciled(failure)
    return pipeline


# --- orphans: a deleted store's (or credential's) pipelines ----------------------------------------------


def _orphans():
    return Pipeline.objects.filter(Q(merchant__isnull=True) | Q(kind=PipelineKind.CREDENTIAL, credential__isnull=True))


def _orphaned(pipeline: Pipeline) -> bool:
    return pipeline.merchant_id is None or (pipeline.kind == PipelineKind.CREDENTIAL and pipeline.credential_id is None)


def pipeline_orphan_teardown(*, pipeline_id: int) -> bool:
    """A pipeline whose store (or credential row) was deleted: cancel its running jobs, delete its connection and
    source in Airbyte, then the row and its jobs — so nothing of it is left in Airbyte or in the sweeper.

    True once the row is gone. Airbyte unreachable or refusing: what was already deleted there is recorded, the
    row stays, and the next sweep tries again (nothing else of it runs meanwhile: no sync, no poll)."""
    client = _client()
    failure: Exception | None = None
    with transaction.atomic():
        pipeline = Pipeline.objects.select_for_update().filter(pk=pipeline_id).first()
        if pipeline is None or not _orphaned(pipeline):
            return pipeline is None
        try:
            for job in pipeline.jobs.exclude(status__in=TERMINAL_JOB_STATUSES):
                with contextlib.suppress(Conflict, NotFound):  # already over, or forgotten by Airbyte
                    client.cancel_job(job.airbyte_job_id)
            _teardown(client, pipeline)
        except ProviderError as exc:
            failure = exc
            pipeline.save()  # the ids Airbyte already let go of are forgotten
        else:
            logger.info("pipeline %s (%s) of a deleted store or credential: removed from Airbyte and forgotten",
                        pipeline.pk, pipeline.source_type)  # fmt: skip
            pipeline.delete()
    if isinstance(failure, UNREACHABLE):
        _api_down(failure)
    elif failure is not None:
        logger.warning("pipeline %s of a deleted store: Airbyte refused its teardown (%s); retried",
                       pipeline_id, _error_text(failure)[0])  # fmt: skip
    else:
        _api_up()
    return failure is None


# --- syncs ---------------------------------------------------------------------------------------


def _job_fields(job: SyncJob, body: dict[str, Any]) -> None:
    status = str(body.get("status") or job.status)
    job.status = status if status in JobStatus.values else JobStatus.RUNNING  # unknown: still in progress
    for name, key in (("rows_synced", "rowsSynced"), ("bytes_synced", "bytesSynced")):
        if isinstance(body.get(key), int) and not isinstance(body.get(key), bool):
            setattr(job, name, body[key])
    started = parse_datetime(str(body.get("startTime") or "")) if body.get("startTime") else None
    job.started_at = started or job.started_at
    if job.status in TERMINAL_JOB_STATUSES:
        ended = parse_datetime(str(body.get("lastUpdatedAt") or "")) if body.get("lastUpdatedAt") else None
        job.finished_at = ended or timezone.now()


def _job_record(pipeline: Pipeline, body: dict[str, Any], *, job_type: str, attached: bool) -> SyncJob:
    """The job Airbyte told us about, recorded once whoever learns of it first (unique Airbyte id)."""
    job, _created = SyncJob.objects.get_or_create(
        connection_id=pipeline.connection_id,
        airbyte_job_id=int(body["jobId"]),
        defaults={"pipeline": pipeline, "job_type": job_type, "attached": attached},
    )
    if not job.is_terminal:
        _job_fields(job, body)
        job.next_poll_at = timezone.now() + dt.timedelta(seconds=POLL_FIRST_SECONDS)
        job.save()
        if job.is_terminal:
            _job_finish(job, pipeline)
    pipeline.last_job = job
    return job


@sensitive_variables()
def _refresh_if_due(credential: ConnectorCredential) -> None:
    """A token about to expire is renewed before the sync, so the source is PATCHed with the new one."""
    if credential.auth_kind != AuthKind.OAUTH or credential.expires_at is None:
        return
    from connectors import services as connector_services

    try:
        connector_services.credential_refresh(credential_id=credential.pk)
    except connector_services.RefreshRetryable:
        logger.info("pipeline for credential %s: refresh failed, syncing with the current token", credential.pk)
    except connector_services.CredentialUnusable:
        pass  # now needs reconnecting: the sync below finds it unusable, and the follow task pauses the pipeline


def pipeline_sync(*, pipeline_id: int, force: bool = False, job_type: str = JobType.SYNC) -> SyncJob | None:
    """Trigger the pipeline's job if it is due (or `force`d by staff): refresh the token if due, PATCH what
    changed into the source, then POST /jobs; a 409 attaches to the running job.

    None when nothing was started: not due, not active, a job of ours still running, Airbyte unreachable
    (the schedule is kept: the next sweep tries again), or refused (counted as a failure, retried later).
    """
    pipeline = Pipeline.objects.select_related("credential", "merchant").get(pk=pipeline_id)
    now = timezone.now()
    if pipeline.status != PipelineStatus.ACTIVE or not pipeline.connection_id or _orphaned(pipeline):
        return None  # an orphan is left to pipeline_orphan_teardown
    if not pipeline.merchant.is_active:
        return None  # an inactive store's pipelines are paused by the sweeper's follow
    if not force and (pipeline.next_sync_at is None or pipeline.next_sync_at > now):
        return None
    if pipeline.jobs.exclude(status__in=TERMINAL_JOB_STATUSES).exists():
        return None  # the poller follows it; a second job would only get a 409
    if pipeline.credential is not None:
        if pipeline.credential.status not in USABLE_STATUSES:
            return None
        _refresh_if_due(pipeline.credential)
    client = _client()
    failure: Exception | None = None
    job: SyncJob | None = None
    with transaction.atomic():
        pipeline = Pipeline.objects.select_for_update(of=("self",)).select_related("merchant").get(pk=pipeline_id)
        credential = ConnectorCredential.objects.filter(pk=pipeline.credential_id).first()
        if pipeline.status != PipelineStatus.ACTIVE or (
            pipeline.credential_id is not None and (credential is None or credential.status not in USABLE_STATUSES)
        ):
            return None
        if not force and job_type == JobType.SYNC and pipeline.last_synced_at is None and not _history_place_free():
            return None  # history syncs at their cap: still due, it starts when a place is free (staff may force)
        try:
            _source_ensure(client, pipeline, credential)
            try:
                body, attached = client.start_job(pipeline.connection_id, job_type), False
            except TryLater:
                body, attached = client.running_job(pipeline.connection_id), True
            except Conflict:
                # Not active in Airbyte although it is for us: deleted there (Airbyte keeps it, deprecated), or
                # paused by hand. We are the source of truth: made again, or resumed for the next sweep.
                status = client.get_connection(pipeline.connection_id).get("status")
                if status == "deprecated":
                    raise NotFound("the connection was deleted in Airbyte", code="deleted") from None
                client.patch_connection(pipeline.connection_id, status="active")
                body, attached = None, False
            if body is not None:
                if job_type == JobType.SYNC:  # first: a job found already failed moves it sooner (its retry)
                    pipeline.next_sync_at = next_slot(pipeline.connection_id, pipeline.sync_interval_seconds, now)
                job = _job_record(pipeline, body, job_type=job_type, attached=attached)
        except UNREACHABLE as exc:
            failure = exc
        except NotFound:
            _forget(client, pipeline)
        except ProviderError as exc:
            failure = exc
            _failure_count(pipeline, *_error_text(exc), now=now)
        pipeline.save()
    if isinstance(failure, UNREACHABLE):
        _api_down(failure)
        return None
    if failure is None:
        _api_up()
    return job


def _forget(client: AirbyteClient, pipeline: Pipeline) -> None:
    """Airbyte lost the connection or the source (deleted by hand, a restored server): drop what is left of
    them and let the sweeper's follow make both again — not the store's failure."""
    logger.warning("pipeline %s: Airbyte lost its connection or source; it is made again", pipeline.pk)
    if pipeline.source_id:
        with contextlib.suppress(ProviderError):
            client.delete_source(pipeline.source_id)
    pipeline.source_id = pipeline.connection_id = ""
    pipeline.source_digests = {}
    pipeline.status = PipelineStatus.PENDING
    pipeline.next_sync_at = None


def pipeline_forget(*, pipeline_id: int) -> None:
    """Airbyte no longer knows the pipeline's connection (found by a caller that asked): forget its ids, so
    the next follow of its credential makes source and connection again."""
    with transaction.atomic():
        pipeline = Pipeline.objects.select_for_update().get(pk=pipeline_id)
        _forget(_client(), pipeline)
        pipeline.save()


def _failure_count(pipeline: Pipeline, code: str, message: str, *, now: dt.datetime) -> None:
    """One more failure in a row: retry with backoff (never later than the regular slot), alert once at N."""
    pipeline.consecutive_failures += 1
    pipeline.last_error_code, pipeline.last_error_message = code[:64], message[:500]
    retry = now + dt.timedelta(
        seconds=backoff(
            pipeline.consecutive_failures, base=RETRY_FIRST_SECONDS, ceiling=pipeline.sync_interval_seconds, jitter=0.25
        )
    )
    regular = next_slot(pipeline.connection_id or str(pipeline.pk), pipeline.sync_interval_seconds, now)
    pipeline.next_sync_at = min(retry, regular)
    logger.warning(
        "pipeline %s (merchant %s, %s): sync failure %s in a row (%s)",
        pipeline.pk, pipeline.merchant_id, pipeline.source_type, pipeline.consecutive_failures, code,
    )  # fmt: skip
    if pipeline.consecutive_failures >= settings.AIRBYTE_SYNC_ALERT_AFTER_FAILURES and not pipeline.failure_alerted_at:
        pipeline.failure_alerted_at = now
        _alert_failing(pipeline)


def _alert_failing(pipeline: Pipeline) -> None:
    """The store's owners and admins hear once per failing run (cleared by the next success)."""
    from connectors.alerts import reconnect_url
    from notifications.choices import NotificationKind
    from notifications.services import merchant_admins_notify

    credential = pipeline.credential
    logger.error(
        "pipeline %s (merchant %s, %s) failed %s syncs in a row: %s",
        pipeline.pk, pipeline.merchant_id, pipeline.source_type, pipeline.consecutive_failures,
        pipeline.last_error_code or "-",
    )  # fmt: skip
    if credential is None:
        return  # our own source (our API key): staff's to fix, the line above tells them; nothing for the store
    try:
        with transaction.atomic():  # a savepoint: the outbox refusing must not lose the failure's record
            merchant_admins_notify(
                merchant=pipeline.merchant,
                kind=NotificationKind.DATA_STALE,
                context={
                    "source": credential.get_provider_display(),
                    "last_synced_at": pipeline.last_synced_at.date().isoformat() if pipeline.last_synced_at else None,
                    "details_url": reconnect_url(credential),
                },
                dedupe_key=f"ingestion:pipeline:{pipeline.pk}:failing",
                dedupe_window=dt.timedelta(days=1),
            )
    except Exception:
        logger.exception("could not queue the sync-failing alert for pipeline %s", pipeline.pk)


def _raw_changed(pipeline: Pipeline, at: dt.datetime) -> None:
    """The store's raw tables changed: the coalesced dbt build takes it in (after this transaction commits)."""
    source = pipeline.credential.provider if pipeline.credential_id else pipeline.kind
    raw_data_changed_mark(merchant_id=pipeline.merchant_id, source=source, at=at)


def _job_finish(job: SyncJob, pipeline: Pipeline) -> None:
    """A job just turned terminal: the pipeline's record of success or failure (called once per job)."""
    now = timezone.now()
    job.next_poll_at = None
    if job.status == JobStatus.SUCCEEDED and job.job_type == JobType.RESET:
        job.save()
        pipeline.next_sync_at = now  # the tables are empty: the history comes back with the next sync, now
        _raw_changed(pipeline, job.finished_at or now)  # the marts must stop showing what was emptied
        return
    if job.status == JobStatus.SUCCEEDED:
        job.error_type = job.error_message = job.error_origin = ""  # a failure hint the job's end belies
        job.save()
        _raw_changed(pipeline, job.finished_at or now)
        if pipeline.failure_alerted_at:
            logger.info("pipeline %s syncs again after %s failures", pipeline.pk, pipeline.consecutive_failures)
        pipeline.consecutive_failures = 0
        pipeline.failure_alerted_at = None
        pipeline.last_error_code = pipeline.last_error_message = ""
        pipeline.last_synced_at = job.finished_at or now
        return
    if job.status == JobStatus.CANCELLED:
        job.error_type, job.error_message = "cancelled", SYNC_CANCELLED
        job.save()
        return  # someone stopped it: not the source's failure; the regular schedule goes on
    # The public API says no more than "failed": the reason, when we have it, came in the workspace's
    # failure notification (job_notification_record), confirmed by this very status.
    job.error_type, job.error_message = job.error_type or "sync_failed", job.error_message or SYNC_FAILED
    job.save()
    if _credentials_refused(job, pipeline):
        _source_refused(job, pipeline)
        return
    _failure_count(pipeline, job.error_type, job.error_message, now=now)


def _credentials_refused(job: SyncJob, pipeline: Pipeline) -> bool:
    """A merchant's credentials refused by the source. (Our own source's key refused is staff's to fix: counted
    and alerted like any failure.)"""
    return (job.error_type, job.error_origin) == SOURCE_CONFIG_ERROR and pipeline.credential_id is not None


def _source_refused(job: SyncJob, pipeline: Pipeline) -> None:
    """The source refused its credentials: retrying cannot help, so not a failure to count and retry — the
    credential needs reconnecting (connectors' own path: audited, the store's admins told once), and that
    pauses the pipeline (the follow task, after commit)."""
    pipeline.last_error_code, pipeline.last_error_message = job.error_type, job.error_message
    pipeline.next_sync_at = None
    logger.warning(
        "pipeline %s (merchant %s, %s): Airbyte job %s failed with the source's config_error: needs reconnecting",
        pipeline.pk, pipeline.merchant_id, pipeline.source_type, job.airbyte_job_id,
    )  # fmt: skip
    from connectors import services as connector_services
    from connectors.clients.base import Unauthorized

    connector_services.credential_mark_needs_reauth(
        credential_id=pipeline.credential_id,
        error=Unauthorized(job.error_message, code="airbyte_config_error", status=None),
    )


def job_poll(*, job_id: int) -> SyncJob:
    """Ask Airbyte how the job stands and record it; on its end, the pipeline's success or failure.

    Not terminal (`incomplete` included) → the next poll is scheduled with backoff. Unreachable → the same,
    nothing lost. Airbyte not knowing the job any more → a failure.
    """
    client = _client()
    unreachable: Exception | None = None
    with transaction.atomic():
        job = SyncJob.objects.select_for_update().get(pk=job_id)
        if job.is_terminal:
            return job
        pipeline = (
            Pipeline.objects.select_for_update(of=("self",))
            .select_related("merchant", "credential")
            .get(pk=job.pipeline_id)
        )
        if _orphaned(pipeline):
            return job  # the store or credential is gone: pipeline_orphan_teardown cancels it and deletes it all
        job.polls += 1
        try:
            body = client.get_job(job.airbyte_job_id)
        except UNREACHABLE as exc:
            unreachable, body = exc, None
        except NotFound:
            body = None
        if body is not None and str(body.get("connectionId") or job.connection_id) != job.connection_id:
            body = None  # the id now names another connection's job: Airbyte was replaced or restored
        if body is None and unreachable is None:
            body = {"status": JobStatus.FAILED}
            job.error_type, job.error_message = "not_found", JOB_VANISHED
        if body is not None:
            _job_fields(job, body)
        if job.is_terminal:
            _job_finish(job, pipeline)
            pipeline.save()
        else:
            delay = backoff(job.polls + 1, base=POLL_FIRST_SECONDS, ceiling=POLL_MAX_SECONDS, jitter=0.25)
            job.next_poll_at = timezone.now() + dt.timedelta(seconds=delay)
            job.save()
    if unreachable is not None:
        _api_down(unreachable)
    else:
        _api_up()
    return job


# --- notifications --------------------------------------------------------------------------------


@sensitive_variables()
def _notification_secrets(pipeline: Pipeline) -> list[str]:
    """What a source's error message must not carry: the secrets of the configuration we sent it."""
    values = list(notification_tokens())
    if pipeline.credential_id is None:
        return values + secret_values(_source_kind(pipeline, None).configuration(None, pipeline.start_date))
    credential = ConnectorCredential.objects.get(pk=pipeline.credential_id)
    if credential.provider in SOURCES and credential.status != CredentialStatus.REVOKED:
        with contextlib.suppress(Exception):  # an undecryptable secret is not worth losing the reason for
            values += secret_values(SOURCES[credential.provider].configuration(credential, pipeline.start_date))
    return values


def job_notification_record(
    *,
    connection_id: str,
    airbyte_job_id: int,
    success: bool,
    error_type: str = "",
    error_origin: str = "",
    error_message: str = "",
) -> str:
    """Take in one of Airbyte's sync notifications: a hint, confirmed through GET /jobs/{id} before it counts.

    A failure's reason (the public API has none) is kept on the job — with any secret of the source's
    configuration removed from the message — and takes effect only when Airbyte says the job failed: now, or
    at the poller's next poll if Airbyte cannot say now (nothing lost). A `config_error` from the `source`
    turns the credential needs-reconnect (see _job_finish). A job we do not know is ignored.
    """
    job = (
        SyncJob.objects.select_related("pipeline")
        .filter(connection_id=connection_id, airbyte_job_id=airbyte_job_id)
        .first()
    )
    if job is None or _orphaned(job.pipeline):  # an orphan's jobs are cancelled with it
        return NOTIFICATION_IGNORED
    if not success and (error_type or error_message):
        message = _scrub(error_message, _notification_secrets(job.pipeline))[:500]
        with transaction.atomic():
            job = SyncJob.objects.select_for_update().get(pk=job.pk)
            pipeline = (
                Pipeline.objects.select_for_update(of=("self",)).select_related("merchant").get(pk=job.pipeline_id)
            )
            # Already failed (polled first): its generic reason gives way to Airbyte's, and the source's refusal
            # is acted on now — the status that confirms it was read from the API by that poll.
            late = job.status == JobStatus.FAILED and job.error_type in ("", "sync_failed")
            if not job.is_terminal or late:
                job.error_type, job.error_origin = error_type[:64], error_origin[:32]
                job.error_message = message or job.error_message
                job.save(update_fields=["error_type", "error_origin", "error_message", "updated_at"])
            if late and _credentials_refused(job, pipeline):
                _source_refused(job, pipeline)
                pipeline.save()
            if job.is_terminal:
                return NOTIFICATION_RECORDED
    try:
        job = job_poll(job_id=job.pk)
    except ProviderError as exc:
        logger.warning("Airbyte job %s: notification not confirmed (%s); the poller follows it",
                       airbyte_job_id, _error_text(exc)[0])  # fmt: skip
        return NOTIFICATION_PENDING
    return NOTIFICATION_RECORDED if job.is_terminal else NOTIFICATION_PENDING


# --- the sweeper -----------------------------------------------------------------------------------


@dataclass
class SweepPlan:
    follow: list[int] = field(default_factory=list)  # credential ids whose pipeline must be reconciled
    follow_store: list[int] = field(default_factory=list)  # merchant ids whose exchange-rates pipeline must be
    teardown: list[int] = field(default_factory=list)  # orphaned pipeline ids (store or credential deleted)
    sync: list[int] = field(default_factory=list)  # pipeline ids due a sync
    poll: list[int] = field(default_factory=list)  # job ids not terminal whose poll is due (or lost)


def ingestion_sweep(*, now: dt.datetime | None = None) -> SweepPlan:
    """What is due: every non-terminal job whose poll is late (a killed worker's included), every active
    pipeline due a sync with no job running, every credential whose pipeline does not match its status."""
    now = now or timezone.now()
    plan = SweepPlan()
    orphans = _orphans()
    plan.teardown = list(orphans.order_by("pk").values_list("pk", flat=True))
    plan.poll = list(
        SyncJob.objects.exclude(status__in=TERMINAL_JOB_STATUSES)
        .exclude(pipeline__in=orphans)
        .filter(next_poll_at__lte=now - dt.timedelta(seconds=POLL_GRACE_SECONDS))
        .order_by("next_poll_at")
        .values_list("pk", flat=True)
    ) + list(
        SyncJob.objects.exclude(status__in=TERMINAL_JOB_STATUSES)
        .exclude(pipeline__in=orphans)
        .filter(next_poll_at__isnull=True)
        .values_list("pk", flat=True)
    )
    busy = SyncJob.objects.exclude(status__in=TERMINAL_JOB_STATUSES).values("pipeline_id")
    if not settings.AIRBYTE_SCHEDULED_SYNCS_PAUSED:
        due = (
            Pipeline.objects.filter(status=PipelineStatus.ACTIVE, next_sync_at__lte=now)
            .exclude(pk__in=busy)
            .exclude(pk__in=orphans)
            .order_by("next_sync_at", "pk")
        )
        history = due.filter(last_synced_at__isnull=True)
        cap = settings.AIRBYTE_HISTORY_SYNCS_MAX_CONCURRENT
        if cap > 0:  # the first connected first; the rest wait for places (pipeline_sync checks again, locked)
            history = history[: max(0, cap - _history_jobs_running())]
        plan.sync = list(due.filter(last_synced_at__isnull=False).values_list("pk", flat=True)) + list(
            history.values_list("pk", flat=True)
        )
    providers = list(SOURCES)
    closed = Merchant.objects.filter(is_active=False, uninstalled_at__lte=_closed_before()).values("pk")
    usable = ConnectorCredential.objects.filter(
        provider__in=providers, status__in=USABLE_STATUSES, merchant__is_active=True
    )
    plan.follow = sorted(
        set(usable.filter(pipeline__isnull=True).values_list("pk", flat=True))
        | set(
            usable.filter(pipeline__status__in=[PipelineStatus.PENDING, PipelineStatus.PAUSED, PipelineStatus.DELETED])
            .exclude(pipeline__next_sync_at__gt=now)  # a refused create waits for its backoff
            .values_list("pk", flat=True)
        )
        | set(
            ConnectorCredential.objects.filter(provider__in=providers, pipeline__status=PipelineStatus.ACTIVE)
            .filter(Q(status=CredentialStatus.NEEDS_REAUTH) | Q(status__in=USABLE_STATUSES, merchant__is_active=False))
            .values_list("pk", flat=True)
        )
        | set(
            ConnectorCredential.objects.filter(provider__in=providers)
            .filter(Q(status=CredentialStatus.REVOKED) | Q(merchant__in=closed))
            .exclude(pipeline__status=PipelineStatus.DELETED)
            .filter(pipeline__isnull=False)
            .values_list("pk", flat=True)
        )
    )
    rates = Pipeline.objects.filter(kind=PipelineKind.EXCHANGE_RATES)
    wanted = _stores_wanting_exchange_rates().values("pk")
    plan.follow_store = sorted(
        set(
            Merchant.objects.filter(pk__in=wanted)
            .exclude(pk__in=rates.filter(status=PipelineStatus.ACTIVE).values("merchant_id"))
            .exclude(pk__in=rates.filter(next_sync_at__gt=now).values("merchant_id"))  # a refused create's backoff
            .values_list("pk", flat=True)
        )
        | set(
            rates.filter(Q(status=PipelineStatus.ACTIVE) | Q(merchant__in=closed))
            .exclude(merchant_id__in=wanted)
            .exclude(status=PipelineStatus.DELETED)
            .filter(merchant__isnull=False)
            .values_list("merchant_id", flat=True)
        )
    )
    return plan


# --- staff actions ----------------------------------------------------------------------------------


def _audit(pipeline: Pipeline, action: str, actor: Actor, request_ctx: dict | None = None) -> None:
    audit_event_record(
        action=action,
        actor=actor,
        target_type="ingestion.pipeline",
        target_id=pipeline.pk,
        merchant_id=pipeline.merchant_id,
        metadata={"source_type": pipeline.source_type, "connection": pipeline.connection_id},
        **(request_ctx or {}),
    )


@transaction.atomic
def pipeline_sync_request(
    *, pipeline_id: int, actor: Actor, job_type: str = JobType.SYNC, request_ctx: dict | None = None
) -> None:
    """Staff's "sync now" / "reset": audited, and the job is started by a task after commit."""
    from ingestion.tasks import pipeline_sync_task

    pipeline = Pipeline.objects.get(pk=pipeline_id)
    _audit(pipeline, "ingestion.reset_requested" if job_type == JobType.RESET else "ingestion.sync_requested",
           actor, request_ctx)  # fmt: skip
    pipeline_sync_task.delay_on_commit(pipeline_id, force=True, job_type=str(job_type))

"""`make run`'s demo stores get their data the way a real store does: through Airbyte syncs.

After `connect_demo` has connected each demo store's providers, this makes sure every pipeline exists in the
sandbox's Airbyte, has each store's sources read one simulated merchant (so its Meta campaigns are the ones
its Shopify orders came from), runs the first sync of every pipeline that never synced — the history arrives
with it, as it would for a merchant who just connected — and builds the models once. From then on beat's
sweeper syncs each connection hourly and the coalesced build follows, so the dashboards move on their own.

Two inputs have no sandbox connector yet and are written from the same simulated merchant by the sandbox's
world-seed control endpoint: the web pixel's sessions (the collector is issue 16) and Attentive's events
(which reach a real store by webhook). They are written with the first sync, and stay as they were then.

A second run changes nothing that is in place: it only asks Airbyte whether it still knows each connection
(a restarted sandbox does not; the pipeline is then made again and its history synced again).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.utils import timezone

from accounts.models import Merchant
from analytics.choices import DbtRunStatus
from analytics.models import DbtRun
from analytics.services import dbt_build_coalesced, dbt_run_execute
from connectors.choices import USABLE_STATUSES, Provider
from connectors.models import ConnectorCredential
from ingestion import services
from ingestion.choices import TERMINAL_JOB_STATUSES, JobStatus
from ingestion.client import AirbyteClient, NotFound
from ingestion.models import Pipeline, SyncJob
from ingestion.sources import SOURCES
from sandbox.server import SandboxControl

logger = logging.getLogger(__name__)

# How much of a simulated merchant each demo store has: a year for the main store, half a year for the second.
DEMO_WORLDS = {
    "demo_store": {"days": 365, "orders_per_day": 40, "seed": 1},
    "demo_second": {"days": 180, "orders_per_day": 12, "seed": 2},
}
FIRST_SYNC_TIMEOUT_SECONDS = 15 * 60
POLL_SECONDS = 0.5


class DemoIngestFailed(RuntimeError):
    """A demo store's data could not be brought in; the message says which and why."""


@dataclass
class DemoIngestResult:
    synced: list[str] = field(default_factory=list)  # "<store> <source type>: <rows> rows"
    seeded: dict[str, dict[str, int]] = field(default_factory=dict)
    built: DbtRun | None = None


def _world_start(merchant: Merchant, days: int) -> dt.date:
    """The simulated merchant's first day, fixed by when the store was created (stable across restarts)."""
    created = timezone.localtime(merchant.created_at, ZoneInfo(merchant.timezone)).date()
    return created - dt.timedelta(days=days - 1)


def _known_to_airbyte(client: AirbyteClient, pipeline: Pipeline) -> bool:
    if not pipeline.connection_id:
        return True  # nothing to lose: following the credential creates it
    try:
        return client.get_connection(pipeline.connection_id).get("status") != "deprecated"
    except NotFound:
        return False


def _pipelines(merchant: Merchant, client: AirbyteClient) -> list[Pipeline]:
    """Every pipeline of the store (its usable credentials', its exchange rates), present in Airbyte (made
    again where Airbyte lost it: a restarted sandbox)."""
    for pipeline in Pipeline.objects.filter(merchant=merchant).exclude(connection_id=""):
        if not _known_to_airbyte(client, pipeline):
            logger.info("demo store %s: Airbyte lost the %s pipeline; it is made again", merchant.key, pipeline)
            services.pipeline_forget(pipeline_id=pipeline.pk)
    credentials = ConnectorCredential.objects.filter(
        merchant=merchant, status__in=USABLE_STATUSES, provider__in=list(SOURCES)
    ).order_by("provider")
    for credential in credentials:
        services.pipeline_follow_credential(credential_id=credential.pk)
    services.pipeline_follow_store(merchant_id=merchant.pk)  # the exchange rates its ad spend is converted with
    return list(
        Pipeline.objects.filter(merchant=merchant).exclude(connection_id="").select_related("credential", "merchant")
    )


def _sync_start(pipeline: Pipeline, say: Callable[[str], None]) -> SyncJob:
    job = SyncJob.objects.filter(pipeline=pipeline).exclude(status__in=TERMINAL_JOB_STATUSES).first()
    job = job or services.pipeline_sync(pipeline_id=pipeline.pk, force=True)
    if job is None:
        pipeline.refresh_from_db()
        raise DemoIngestFailed(
            f"{pipeline.merchant.key} {pipeline.source_type}: the sync could not start "
            f"({pipeline.last_error_message or 'is the sandbox running?'})"
        )
    say(f"  {pipeline.merchant.key}: {pipeline.source_type} history syncing (Airbyte job {job.airbyte_job_id})")
    return job


def _sync_wait(jobs: list[SyncJob]) -> list[SyncJob]:
    """Poll every job until it is terminal; a failed one is the demo's failure, with Airbyte's reason."""
    deadline = time.monotonic() + FIRST_SYNC_TIMEOUT_SECONDS
    pending = {job.pk: job for job in jobs if not job.is_terminal}
    done = [job for job in jobs if job.is_terminal]
    while pending:
        if time.monotonic() > deadline:
            raise DemoIngestFailed(f"the first syncs took longer than {FIRST_SYNC_TIMEOUT_SECONDS // 60} minutes")
        time.sleep(POLL_SECONDS)
        for pk in list(pending):
            job = services.job_poll(job_id=pk)
            if job.is_terminal:
                del pending[pk]
                done.append(job)
    for job in done:
        if job.status != JobStatus.SUCCEEDED:
            pipeline = job.pipeline
            raise DemoIngestFailed(
                f"{pipeline.merchant.key} {pipeline.source_type}: the first sync {job.status} "
                f"({job.error_message or job.error_type or 'see the sandbox log'})"
            )
    return done


def demo_ingest(
    *,
    merchants: list[Merchant],
    control: SandboxControl,
    worlds: dict[str, dict[str, int]] = DEMO_WORLDS,
    say: Callable[[str], None] = lambda line: None,
) -> DemoIngestResult:
    """Bring every demo store's data in through Airbyte, once (see the module docstring). `worlds`: per store
    key, its simulated merchant's days of history, orders per day and seed."""
    client = AirbyteClient()
    result = DemoIngestResult()
    for merchant in merchants:
        world = worlds.get(merchant.key)
        if world is None:
            raise DemoIngestFailed(f"{merchant.key} is not a demo store")
        pipelines = _pipelines(merchant, client)
        shopify = next((p for p in pipelines if p.credential and p.credential.provider == Provider.SHOPIFY), None)
        if shopify is None:
            raise DemoIngestFailed(f"{merchant.key}: Shopify is not connected (run connect_demo first)")
        control.airbyte_world_link(
            to=shopify.source_id,
            # One merchant behind its sources (exchange rates, not tied to a credential, are the market's).
            sources=[p.source_id for p in pipelines if p.credential and p.source_id != shopify.source_id],
            world={
                "orders_per_day": world["orders_per_day"],
                "seed": world["seed"],
                "start_date": _world_start(merchant, world["days"]).isoformat(),
            },
        )
        first = [p for p in pipelines if p.last_synced_at is None]
        for job in _sync_wait([_sync_start(pipeline, say) for pipeline in first]):
            result.synced.append(f"{merchant.key} {job.pipeline.source_type}: {job.rows_synced or 0:,} rows")
        if shopify in first:
            result.seeded[merchant.key] = control.airbyte_world_seed(shopify.connection_id)["tables"]
    built_once = DbtRun.objects.filter(status=DbtRunStatus.SUCCESS, command="build").exists()
    if result.synced or not built_once:
        say("building the dbt models (dbt build) ...")
        runs = dbt_build_coalesced() or [dbt_run_execute(args=["build"])]
        result.built = runs[-1]
        if result.built.status != DbtRunStatus.SUCCESS:
            raise DemoIngestFailed(f"dbt build {result.built.status}; see admin → dbt runs (#{result.built.pk})")
    return result

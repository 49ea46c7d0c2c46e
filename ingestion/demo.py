"""`make run`'s demo stores get their data the way a real store does: through Airbyte syncs.

After `connect_demo` has connected each demo store's providers, this makes sure every pipeline exists in the
sandbox's Airbyte, has each store's sources read one simulated merchant (so its Meta campaigns are the ones
its Shopify orders came from), runs the first sync of every pipeline that never synced — the history arrives
with it, as it would for a merchant who just connected — and builds the models once. From then on beat's
sweeper syncs each connection hourly and the coalesced build follows, so the dashboards move on their own.

The world's visitors reach the store the way a real store's do: through our web pixel and the collector. The
sandbox serves, in order and in pages, the events our pixel would have posted for each of the world's sessions
(page and product views, cart adds, and for a journey's last session its checkout, ending in checkout_completed
with the world's order id and customer), and this posts them in batches of at most COLLECTOR_BATCH_EVENTS with
the store's public write key to the collector's own intake (``_collector_post``), which checks, counts,
dedupes and writes them into ``raw_<key>.web_events``. Each run posts only what the store does not have yet: it
continues from the last world event stored (``_posted_mark``), and the collector stores an event id once, so a
run cut short and run again loads nothing twice.

dbt builds the stores' sessions from those events (stg_web_events → fct_sessions); the synthetic
``web_sessions`` table the world also has is no longer written. Attentive's events, which reach a real store by
webhook and have no sandbox connector, are written from the same simulated merchant by the sandbox's world-seed
control endpoint with the first sync, and stay as they were then.

A second run changes nothing that is in place: it only asks Airbyte whether it still knows each connection
(a restarted sandbox does not; the pipeline is then made again and its history synced again), and the sandbox
for the events that occurred since the last run.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.db import ProgrammingError, connections, transaction
from django.test import override_settings
from django.utils import timezone
from psycopg import sql

from accounts.models import Merchant
from analytics.choices import DbtRunStatus
from analytics.models import DbtRun
from analytics.raw_schema import RAW_TABLES, raw_schema_name
from analytics.services import dbt_build_coalesced, dbt_run_execute
from collector import intake
from collector.privacy import PATH as COLLECTOR_PATH
from collector.services import write_key_get_or_create
from connectors.choices import USABLE_STATUSES, Provider
from connectors.models import ConnectorCredential
from ingestion import services
from ingestion.choices import TERMINAL_JOB_STATUSES, JobStatus
from ingestion.client import AirbyteClient, NotFound
from ingestion.models import Pipeline, SyncJob
from ingestion.sources import SOURCES
from sandbox.server import SandboxControl
from sandbox.world.sources.web_events import EVENT_ID_PREFIX

logger = logging.getLogger(__name__)

# How much of a simulated merchant each demo store has: a year for the main store, half a year for the second.
DEMO_WORLDS = {
    "demo_store": {"days": 365, "orders_per_day": 40, "seed": 1},
    "demo_second": {"days": 180, "orders_per_day": 12, "seed": 2},
}
FIRST_SYNC_TIMEOUT_SECONDS = 15 * 60
POLL_SECONDS = 0.5
# The world-seed tables the demo still writes straight into raw: Attentive's events (a real store's arrive by
# webhook). Not web_sessions: dbt builds the sessions from the pixel's events the demo posts to the collector.
SEED_TABLES = [table for table in RAW_TABLES if table.startswith("attentive_")]
# Events per page asked of the sandbox, and per batch posted to the collector (its limit, COLLECTOR_MAX_EVENTS).
WORLD_EVENTS_PAGE = 5000
COLLECTOR_BATCH_EVENTS = 500
COLLECTOR_RETRIES = 8  # a 429 or 503 is sent again after its Retry-After, as the pixel does


class DemoIngestFailed(RuntimeError):
    """A demo store's data could not be brought in; the message says which and why."""


@dataclass
class DemoIngestResult:
    synced: list[str] = field(default_factory=list)  # "<store> <source type>: <rows> rows"
    seeded: dict[str, dict[str, int]] = field(default_factory=dict)
    # per store, what the collector answered for the world's events posted this run (summed over batches):
    # posted, accepted, duplicate, no_consent, bot, batches
    posted: dict[str, dict[str, int]] = field(default_factory=dict)
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


def _posted_mark(merchant: Merchant) -> dict[str, object] | None:
    """Where the world's events stored for the store end, in the order the sandbox serves them (the pixel's seq,
    which the world sets to the event's time, then the event id): the next run continues after it. Read from
    the stored events themselves, so it cannot disagree with them (raw emptied: everything is posted again)."""
    alias = intake._raw_alias()  # where the collector writes
    statement = sql.SQL(
        'SELECT seq, event_id FROM {} WHERE event_id LIKE %s ORDER BY seq DESC, event_id COLLATE "C" DESC LIMIT 1'
    ).format(sql.Identifier(raw_schema_name(merchant.key), "web_events"))
    try:
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            cursor.execute(statement.as_string(None), [EVENT_ID_PREFIX + "%"])
            row = cursor.fetchone()
    except ProgrammingError:  # no web_events table yet: nothing posted
        return None
    return None if row is None else {"at": row[0], "event_id": row[1]}


def _collector_post(body: bytes) -> intake.Answer:
    """One batch through the collector's own intake, in this process.

    `intake.http_answer` is the collector's whole HTTP exchange: gunicorn answers /collect/v1/batch with it
    ahead of Django (collector.intake.CollectorDispatch in config/wsgi.py) and Django's view (collector.views)
    with it under the test client; the same validation, bot and consent filters, dedupe, write and counters run
    here. Not an HTTP POST to the app: `make run` loads the demo before it starts the web server (there is none
    to post to yet), and a year of history is hundreds of batches the loop would only add sockets to."""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": COLLECTOR_PATH,
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "text/plain;charset=UTF-8",  # as the pixel sends it
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
    }
    for _attempt in range(COLLECTOR_RETRIES):
        status, headers, payload = intake.http_answer(environ | {"wsgi.input": io.BytesIO(body)})
        answer = intake.Answer(status, json.loads(payload))
        if status not in (429, 503):
            return answer
        time.sleep(int(dict(headers).get("Retry-After", "1")))
    return answer


def _events_post(merchant: Merchant, *, connection_id: str, control: SandboxControl, start: dt.date) -> dict[str, int]:
    """Post the world's events the store does not have yet to the collector (see the module docstring)."""
    key = write_key_get_or_create(merchant=merchant).key
    totals = dict.fromkeys(("posted", "accepted", "duplicate", "no_consent", "bot", "batches"), 0)
    after = _posted_mark(merchant)
    # A live pixel sends each event within seconds, and the collector refuses one older than a week
    # (COLLECTOR_MAX_EVENT_AGE_SECONDS) or a batch from an address that sends more than 60 a window; the demo
    # replays a year of thousands of visitors' events from one loader, now. Those two limits are widened for
    # the replay only; every other check holds (a refused batch fails the demo).
    replay = override_settings(
        COLLECTOR_MAX_EVENT_AGE_SECONDS=((timezone.now().date() - start).days + 2) * 86400,
        COLLECTOR_IP_BATCHES_PER_WINDOW=10**9,
    )
    fetch = functools.partial(control.airbyte_world_events, connection_id, limit=WORLD_EVENTS_PAGE)
    # The sandbox makes the next page while this process posts the current one (one request at a time still).
    try:
        with replay, ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-world-events") as pool:
            coming = pool.submit(fetch, after=after)
            while coming is not None:
                page = coming.result()
                coming = None if page["next"] is None else pool.submit(fetch, after=page["next"])
                events = page["events"]
                for first in range(0, len(events), COLLECTOR_BATCH_EVENTS):
                    chunk = events[first : first + COLLECTOR_BATCH_EVENTS]
                    sent_at = timezone.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
                    body = {"write_key": key, "sent_at": sent_at, "pixel_version": "1", "events": chunk}
                    answer = _collector_post(json.dumps(body, separators=(",", ":")).encode())
                    if answer.status != 200:
                        if coming is not None:
                            coming.cancel()
                        raise DemoIngestFailed(
                            f"{merchant.key}: the collector answered {answer.status} to the world's events "
                            f"({json.dumps(answer.body)[:500]})"
                        )
                    totals["posted"] += len(chunk)
                    totals["batches"] += 1
                    for name in ("accepted", "duplicate", "no_consent", "bot"):
                        totals[name] += answer.body[name]
    finally:
        intake.counts_flush(force=True)  # what the collector counted, a refused batch's too
    return totals


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
            seeded = control.airbyte_world_seed(shopify.connection_id, tables=SEED_TABLES)["tables"]
            result.seeded[merchant.key] = seeded
        posted = _events_post(
            merchant, connection_id=shopify.connection_id, control=control, start=_world_start(merchant, world["days"])
        )
        if posted["posted"]:
            result.posted[merchant.key] = posted
            say(f"  {merchant.key}: {posted['accepted']:,} web pixel events through the collector")
    built_once = DbtRun.objects.filter(status=DbtRunStatus.SUCCESS, command="build").exists()
    if result.synced or result.posted or not built_once:
        say("building the dbt models (dbt build) ...")
        runs = dbt_build_coalesced() or [dbt_run_execute(args=["build"])]
        result.built = runs[-1]
        if result.built.status != DbtRunStatus.SUCCESS:
            raise DemoIngestFailed(f"dbt build {result.built.status}; see admin → dbt runs (#{result.built.pk})")
    return result

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.demo import DEMO_MERCHANTS
from accounts.models import Merchant
from analytics.services import DbtRunLocked
from ingestion.client import ProviderError
from ingestion.demo import DemoIngestFailed, demo_ingest
from ingestion.services import IngestionError
from sandbox.server import SandboxControl, SandboxControlError


class Command(BaseCommand):
    help = (
        "Bring the demo stores' data in through the sandbox's Airbyte: the first sync of every pipeline that never "
        "synced (the history), the simulated visitors' web pixel events through the collector (those not stored "
        "yet), then one dbt build. Idempotent: what has synced is left to beat's hourly syncs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--sandbox-url", required=True, help="The running sandbox, e.g. http://127.0.0.1:8025")

    def handle(self, *args, **options):
        if not settings.DEV:
            raise CommandError("ingest_demo drives the sandbox's simulated world: only with DJANGO_DEV=1.")
        keys = [spec["key"] for spec in DEMO_MERCHANTS]
        merchants = list(Merchant.objects.filter(key__in=keys).order_by("key"))
        if len(merchants) != len(keys):
            raise CommandError("the demo stores are missing: run seed_demo and connect_demo first")
        control = SandboxControl(options["sandbox_url"])
        try:
            result = demo_ingest(merchants=merchants, control=control, say=self.stdout.write)
        except (DemoIngestFailed, IngestionError, ProviderError, SandboxControlError, DbtRunLocked) as exc:
            raise CommandError(str(exc)) from exc
        except requests.RequestException as exc:
            raise CommandError(f"the sandbox did not answer: {type(exc).__name__}") from exc
        for line in result.synced:
            self.stdout.write(f"  synced {line}")
        for key, tables in result.seeded.items():
            self.stdout.write(f"  {key}: {', '.join(sorted(tables))} seeded ({sum(tables.values()):,} rows)")
        for key, posted in result.posted.items():
            self.stdout.write(
                f"  {key}: {posted['posted']:,} web pixel events posted to the collector in {posted['batches']:,} "
                f"batches ({posted['accepted']:,} stored, {posted['duplicate']:,} already there)"
            )
        run = result.built
        if run is not None:
            self.stdout.write(f"  dbt run #{run.pk} {run.status} in {run.duration_seconds:.0f}s")

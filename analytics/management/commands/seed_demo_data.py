import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.demo import DEMO_MERCHANTS
from accounts.models import Merchant
from analytics.choices import DbtRunStatus, DbtTrigger
from analytics.models import DbtRun
from analytics.raw_schema import raw_schema_name
from analytics.selectors import warehouse_connection_params
from analytics.services import DbtRunLocked, dbt_run_execute, merchant_demo_data_generate

# How much history each demo store gets: a year for the main store, half a year for the second.
DEMO_DATA = {
    "demo_store": {"days": 365, "orders_per_day": 40, "seed": 1},
    "demo_second": {"days": 180, "orders_per_day": 12, "seed": 2},
}


class Command(BaseCommand):
    help = (
        "Give the demo merchants raw data and build the dbt models, once. Idempotent: a merchant that already "
        "has raw orders is left alone, and dbt runs only when something new was written or nothing was ever built."
    )

    def handle(self, *args, **options):
        if not settings.DEV:
            raise CommandError("seed_demo_data writes synthetic data: only with DJANGO_DEV=1.")
        wrote = False
        with psycopg.connect(**warehouse_connection_params()) as conn:
            for spec in DEMO_MERCHANTS:
                merchant = Merchant.objects.filter(key=spec["key"]).first()
                if merchant is None:
                    raise CommandError(f"demo merchant {spec['key']} is missing: run seed_demo first")
                if _has_orders(conn, merchant.key):
                    continue
                self.stdout.write(f"generating demo data for {merchant.key} ...")
                counts = merchant_demo_data_generate(conn, merchant=merchant, **DEMO_DATA[merchant.key])
                self.stdout.write(f"  {sum(counts.values()):,} raw rows")
                wrote = True
        if wrote or not DbtRun.objects.filter(status=DbtRunStatus.SUCCESS, command="build").exists():
            self.stdout.write("building the dbt models (dbt build) ...")
            try:
                run = dbt_run_execute(args=["build"], triggered_by=DbtTrigger.COMMAND)
            except DbtRunLocked as exc:
                self.stdout.write(str(exc))
                return
            self.stdout.write(f"  dbt run #{run.pk} {run.status} in {run.duration_seconds:.0f}s")
            if run.status != DbtRunStatus.SUCCESS:
                raise CommandError(f"dbt build {run.status}; see admin → dbt runs (#{run.pk})")


def _has_orders(conn: psycopg.Connection, merchant_key: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", [f"{raw_schema_name(merchant_key)}.shopify_orders"]).fetchone()
    if row[0] is None:
        return False
    return conn.execute(f"SELECT EXISTS (SELECT 1 FROM {raw_schema_name(merchant_key)}.shopify_orders)").fetchone()[0]  # noqa: S608  (validated key)

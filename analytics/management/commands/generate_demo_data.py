import datetime as dt

import psycopg
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Merchant
from analytics.selectors import warehouse_connection_params
from analytics.services import merchant_demo_data_generate


class Command(BaseCommand):
    help = "Write realistic Airbyte-shaped raw data for one merchant into raw_<key> (deterministic for a seed)."

    def add_arguments(self, parser):
        parser.add_argument("--merchant", required=True, help="the merchant's key")
        parser.add_argument("--days", type=int, default=365)
        parser.add_argument("--orders-per-day", type=int, default=40)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--end-date", type=dt.date.fromisoformat, default=None, help="last local date (default today)"
        )

    def handle(self, *args, **options):
        try:
            merchant = Merchant.objects.get(key=options["merchant"])
        except Merchant.DoesNotExist:
            raise CommandError(f"no merchant with key {options['merchant']!r}") from None
        if options["days"] < 1 or options["orders_per_day"] < 1:
            raise CommandError("--days and --orders-per-day must be positive")

        def progress(label: str, rows: int) -> None:
            self.stdout.write(f"\r{label}: {rows:,} rows", ending="")
            self.stdout.flush()

        with psycopg.connect(**warehouse_connection_params()) as conn:
            counts = merchant_demo_data_generate(
                conn,
                merchant=merchant,
                days=options["days"],
                orders_per_day=options["orders_per_day"],
                seed=options["seed"],
                end_date=options["end_date"],
                progress=progress,
            )
        self.stdout.write("")
        for table, rows in sorted(counts.items()):
            self.stdout.write(f"{merchant.raw_schema}.{table}: {rows:,}")
        self.stdout.write(f"total: {sum(counts.values()):,} rows")

"""`manage.py purge_retention`: the nightly purge (compliance/retention.py) on demand; exits 1 if another runs."""

from django.core.management.base import BaseCommand, CommandError

from compliance.retention import PurgeLocked, retention_purge


class Command(BaseCommand):
    help = "Delete data past its retention period (settings.RETENTION_DAYS), skipping what legal holds cover."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=None, help="Rows per DELETE (RETENTION_PURGE_BATCH).")

    def handle(self, *args, batch_size=None, **options):
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1")

        def progress(run):
            self.stdout.write(f"purge {run.pk}: batch {run.batches}, deleted so far {run.deleted}")

        try:
            run = retention_purge(batch_size=batch_size, on_batch=progress)
        except PurgeLocked as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"purge {run.pk} {run.status}: deleted {run.deleted}, held {run.held}"))

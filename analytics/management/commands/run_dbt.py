import argparse

from django.core.management.base import BaseCommand, CommandError

from analytics.choices import DbtRunStatus, DbtTrigger
from analytics.services import DbtRunLocked, dbt_run_execute


class Command(BaseCommand):
    help = (
        "Run dbt on the analytics project for the active merchants and record the run, e.g. "
        "`run_dbt build`, `run_dbt source freshness`, `run_dbt build --select marts.attribution --full-refresh`. "
        "Exits non-zero when dbt fails; exits 0 with a message when another run holds the lock."
    )

    def add_arguments(self, parser):
        parser.add_argument("dbt_args", nargs=argparse.REMAINDER, help="arguments passed to dbt as they are")

    def handle(self, *args, **options):
        dbt_args = options["dbt_args"]
        if not dbt_args:
            raise CommandError("give dbt a command, e.g. `run_dbt build` or `run_dbt source freshness`")
        try:
            run = dbt_run_execute(args=dbt_args, triggered_by=DbtTrigger.COMMAND)
        except DbtRunLocked as exc:
            # Overlapping cron runs are expected, not failures: say so and leave quietly.
            self.stdout.write(str(exc))
            return
        counts = ", ".join(f"{status}: {n}" for status, n in sorted(run.node_counts.items())) or "no nodes ran"
        self.stdout.write(f"dbt run #{run.pk} {run.status} in {run.duration_seconds:.1f}s ({counts})")
        for failure in run.failures:
            self.stderr.write(f"  {failure['status']}: {failure['unique_id']}: {failure['message']}")
        for fresh in run.freshness:
            if fresh["status"] != "pass":
                self.stderr.write(f"  freshness {fresh['status']}: {fresh['source']} (latest {fresh['max_loaded_at']})")
        if run.status != DbtRunStatus.SUCCESS:
            raise CommandError(f"dbt run #{run.pk} {run.status}" + (f": {run.error}" if run.error else ""))

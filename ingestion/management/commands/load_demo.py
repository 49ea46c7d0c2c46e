from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "The whole demo, in one process (what `make run` calls): seed_demo (the demo stores and users), "
        "connect_demo (each provider connected through the sandbox), ingest_demo (their data through Airbyte)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--sandbox-url", required=True, help="The running sandbox, e.g. http://127.0.0.1:8001")
        parser.add_argument("--app-url", required=True, help="The app's own URL (OAuth callbacks are built on it)")

    def handle(self, *args, **options):
        call_command("seed_demo", stdout=self.stdout, stderr=self.stderr)
        call_command(
            "connect_demo", sandbox_url=options["sandbox_url"], app_url=options["app_url"],
            stdout=self.stdout, stderr=self.stderr,
        )  # fmt: skip
        call_command("ingest_demo", sandbox_url=options["sandbox_url"], stdout=self.stdout, stderr=self.stderr)

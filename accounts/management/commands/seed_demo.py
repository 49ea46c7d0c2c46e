from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.demo import demo_seed


class Command(BaseCommand):
    help = "Create (or repair) the demo merchants, their Clerk members and a staff superuser. Idempotent."

    def add_arguments(self, parser):
        parser.add_argument(
            "--password-file",
            default=str(settings.LOCAL_DIR / "demo-admin-password"),
            help="Where the staff password is kept between runs (default: .local/demo-admin-password).",
        )

    def handle(self, *args, **options):
        if not settings.DEV:
            raise CommandError("seed_demo loads demo users and a known admin password: only with DJANGO_DEV=1.")
        try:
            result = demo_seed(password_file=Path(options["password_file"]))
        except (ValueError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        for merchant in result.merchants:
            self.stdout.write(f"merchant {merchant.key} (id {merchant.pk}): {merchant.name}")
        self.stdout.write(f"created {result.created} merchant(s)")
        self.stdout.write(f"admin: {result.admin_username} / {result.admin_password}")

from django.core.management.base import BaseCommand

from config.schedules import schedules_sync


class Command(BaseCommand):
    help = "Write the periodic jobs listed in config/schedules.py into celery-beat's tables (idempotent)."

    def handle(self, *args, **options):
        names = schedules_sync()
        self.stdout.write(f"{len(names)} schedule(s) in place" + (": " + ", ".join(names) if names else ""))

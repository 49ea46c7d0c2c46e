"""`migrate`, connected as the schema's owner (DATABASE_OWNER_URL) instead of the app's role.

The tables it creates belong to the owner; afterwards compliance grants the app role what it may do
(compliance/roles.py). In production it refuses to run without DATABASE_OWNER_URL rather than make the
app's role the owner of everything.
"""

from django.conf import settings
from django.core.management.base import CommandError
from django.core.management.commands import migrate
from django.db import DEFAULT_DB_ALIAS

from compliance.roles import OWNER_REQUIRED, connected_as_owner


class Command(migrate.Command):
    help = migrate.Command.help + " Connects as DATABASE_OWNER_URL."

    def handle(self, *args, **options):
        if options["database"] == DEFAULT_DB_ALIAS and not settings.DEV and not settings.DATABASE_OWNER:
            raise CommandError(OWNER_REQUIRED)
        with connected_as_owner(options["database"]):
            return super().handle(*args, **options)

"""`createcachetable`, connected as the schema's owner (DATABASE_OWNER_URL) like every other DDL: the app's
role may use the table (default privileges, compliance/roles.py) but creates nothing in Django's schema."""

from django.core.management.commands import createcachetable

from compliance.roles import connected_as_owner


class Command(createcachetable.Command):
    help = createcachetable.Command.help + " Connects as DATABASE_OWNER_URL."

    def handle(self, *tablenames, **options):
        with connected_as_owner(options["database"]):
            return super().handle(*tablenames, **options)

"""`flush`, connected as the schema's owner (DATABASE_OWNER_URL): emptying every table includes the audit
log, which the app's role may not TRUNCATE. (Django's transactional tests flush through this command.)"""

from django.core.management.commands import flush

from compliance.roles import connected_as_owner


class Command(flush.Command):
    help = flush.Command.help + " Connects as DATABASE_OWNER_URL."

    def handle(self, **options):
        with connected_as_owner(options["database"]):
            return super().handle(**options)

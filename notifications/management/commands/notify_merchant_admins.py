"""Send one notification to a merchant's owners and admins: try the outbox locally or from an operator shell.

    python manage.py notify_merchant_admins <merchant key> --kind data_stale --context '{"source": "Meta Ads"}'

Delivery is asynchronous (a worker sends it); under `make run` the result shows at <sandbox>/mail/.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Merchant
from notifications.choices import NotificationKind
from notifications.services import NotificationError, merchant_admins_notify


class Command(BaseCommand):
    help = "Create one notification per owner and admin of a merchant and enqueue their delivery."

    def add_arguments(self, parser) -> None:
        parser.add_argument("merchant", help="the merchant's key (or numeric id)")
        parser.add_argument("--kind", required=True, choices=NotificationKind.values)
        parser.add_argument("--context", default="{}", help="template values as a JSON object")
        parser.add_argument("--dedupe-key", default="", help="skip users who got this key in the last 24 h")

    def handle(self, *args, merchant: str, kind: str, context: str, dedupe_key: str, **options) -> None:
        lookup = {"pk": int(merchant)} if merchant.isdigit() else {"key": merchant}
        try:
            target = Merchant.objects.get(**lookup)
        except Merchant.DoesNotExist:
            raise CommandError(f"no merchant {merchant!r}") from None
        try:
            values = json.loads(context)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--context is not JSON: {exc}") from exc
        if not isinstance(values, dict):
            raise CommandError("--context must be a JSON object")
        try:
            created = merchant_admins_notify(merchant=target, kind=kind, context=values, dedupe_key=dedupe_key)
        except NotificationError as exc:
            raise CommandError(str(exc)) from exc
        if not created:
            raise CommandError(f"{target} has no owner or admin to notify")
        for notification in created:
            self.stdout.write(f"notification {notification.pk} → {notification.clerk_user_id}: {notification.status}")

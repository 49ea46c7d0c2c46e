import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.choices import Role
from accounts.demo import DEMO_AGENCY, DEMO_MERCHANTS, DEMO_USERS_FILE
from accounts.models import Membership
from agencies.models import Agency
from connectors.demo import DemoConnectFailed, demo_connect
from connectors.services import ConnectorError
from sandbox.server import SandboxControl, SandboxControlError


class Command(BaseCommand):
    help = (
        "Connect the demo stores to the sandbox's Shopify, Meta, Google Ads, Klaviyo and Attentive accounts through "
        "the same services a merchant's clicks use. Idempotent: a provider already connected is left alone."
    )

    def add_arguments(self, parser):
        parser.add_argument("--sandbox-url", required=True, help="The running sandbox, e.g. http://127.0.0.1:8025")
        parser.add_argument("--app-url", required=True, help="The app's own URL (OAuth callbacks are built on it)")

    def handle(self, *args, **options):
        if not settings.DEV:
            raise CommandError("connect_demo talks to the sandbox's control API: only with DJANGO_DEV=1.")
        control = SandboxControl(options["sandbox_url"])
        owners = Membership.objects.filter(
            merchant__key__in=[spec["key"] for spec in DEMO_MERCHANTS], role=Role.OWNER
        ).select_related("merchant")
        seen = set()
        for membership in owners.order_by("merchant__key", "clerk_user_id"):
            if membership.merchant_id in seen:
                continue
            seen.add(membership.merchant_id)
            try:
                connections = demo_connect(membership=membership, app_url=options["app_url"], control=control)
            except (DemoConnectFailed, ConnectorError, SandboxControlError, OSError) as exc:
                raise CommandError(f"{membership.merchant.key}: {exc}") from exc
            for c in connections:
                state = "connected" if c.created else "already connected"
                self.stdout.write(f"{membership.merchant.key}: {c.provider} {state} ({c.label})")
        if not seen:
            raise CommandError("no demo store has an owner: run seed_demo first")
        try:
            self._demo_agency_organization(control)
        except (SandboxControlError, OSError) as exc:
            raise CommandError(f"demo agency: {exc}") from exc

    def _demo_agency_organization(self, control: SandboxControl) -> None:
        """The demo agency's Clerk organization, in the sandbox, with its admin: the sandbox forgets it on
        every restart, so it is put back (idempotently, without webhook events) on every start."""
        admin = DEMO_AGENCY["admin"]
        spec = dict(next(u for u in json.loads(Path(DEMO_USERS_FILE).read_text()) if u["id"] == admin))
        control.seed_clerk_user(spec.pop("id"), **spec)
        agency = Agency.objects.filter(clerk_org_id=DEMO_AGENCY["clerk_org_id"]).first()
        control.clerk_organization_put(
            DEMO_AGENCY["clerk_org_id"],
            name=DEMO_AGENCY["name"],
            slug=DEMO_AGENCY["slug"],
            created_by=admin,
            members=[(admin, "org:admin")],
            public_metadata={"kind": "agency"},
            private_metadata={"agency_id": agency.pk} if agency else {},
            max_allowed_memberships=settings.AGENCY_MAX_MEMBERS,
        )
        self.stdout.write(f"demo agency: Clerk organization {DEMO_AGENCY['clerk_org_id']} ready")

"""The demo tenant that `make run` loads: one store, three Clerk users, a second store for the switcher, and an
agency (Northwind Growth, a Clerk organization in the sandbox) whose admin sees both stores through grants."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.choices import Role
from accounts.models import Membership, Merchant
from compliance.services import Actor, audit_event_record

DEMO_USERS_FILE = settings.BASE_DIR / "sandbox" / "data" / "demo_users.json"
DEMO_ADMIN_USERNAME = "admin"

DEMO_MERCHANTS = [
    {
        "key": "demo_store",
        "name": "Demo Outdoor Co.",
        "shop_domain": "demo-outdoor.myshopify.com",
        "timezone": "America/Los_Angeles",
        "currency": "USD",
        "members": {"user_demo_owner": Role.OWNER, "user_demo_admin": Role.ADMIN, "user_demo_viewer": Role.VIEWER},
    },
    {
        "key": "demo_second",
        "name": "Demo Second Store",
        "shop_domain": "demo-second.myshopify.com",
        "timezone": "Europe/Berlin",
        "currency": "EUR",
        "members": {"user_demo_owner": Role.OWNER},
    },
]


# The demo agency. Its Clerk organization has this fixed id so `connect_demo` can create it in the sandbox
# (whose memory does not survive a restart) and the row here keeps matching it.
DEMO_AGENCY = {
    "clerk_org_id": "org_demo_northwind",
    "name": "Northwind Growth",
    "slug": "northwind-growth",
    "reporting_currency": "USD",
    "admin": "user_demo_agency",
    "clients": ["demo_store", "demo_second"],
}


@dataclass(frozen=True)
class DemoSeedResult:
    merchants: list[Merchant]
    created: int
    admin_username: str
    admin_password: str


def _demo_user_ids() -> set[str]:
    return {user["id"] for user in json.loads(Path(DEMO_USERS_FILE).read_text())}


def _demo_agency_seed(known_users: set[str], actor: Actor) -> None:
    """The agency, its admin (mirrored as Clerk would report it) and an analyst grant on each demo store.

    The grants are written directly, as an approved request would leave them; an ended grant is not revived.
    """
    from agencies.choices import OPEN_GRANT_STATUSES, AgencyRole, GrantLevel, GrantStatus
    from agencies.models import AccessGrant, Agency, AgencyMember

    spec = DEMO_AGENCY
    if spec["admin"] not in known_users:
        raise ValueError(f"{DEMO_USERS_FILE} lacks the demo agency user {spec['admin']}")
    agency, created = Agency.objects.get_or_create(
        clerk_org_id=spec["clerk_org_id"],
        defaults={k: spec[k] for k in ("name", "slug", "reporting_currency")} | {"created_by": spec["admin"]},
    )
    if created:
        audit_event_record(action="agency.created", actor=actor, target_type="agencies.agency", target_id=agency.pk)
    AgencyMember.objects.update_or_create(
        agency=agency,
        clerk_user_id=spec["admin"],
        defaults={"clerk_role": "org:admin", "role": AgencyRole.ADMIN, "removed_at": None},
    )
    now = timezone.now()
    for merchant in Merchant.objects.filter(key__in=spec["clients"]):
        if AccessGrant.objects.filter(agency=agency, merchant=merchant, status__in=OPEN_GRANT_STATUSES).exists():
            continue
        grant = AccessGrant.objects.create(
            agency=agency,
            merchant=merchant,
            level=GrantLevel.ANALYST,
            status=GrantStatus.ACTIVE,
            requested_by=spec["admin"],
            approved_by="user_demo_owner",
            approved_at=now,
        )
        audit_event_record(
            action="agency.grant_approved",
            actor=actor,
            target_type="agencies.accessgrant",
            target_id=grant.pk,
            merchant=merchant,
            metadata={"agency_id": agency.pk, "level": grant.level},
        )


def _admin_password(password_file: Path) -> str:
    """Stable across runs: generated once, kept under .local/ (git-ignored), printed by `make run`."""
    if password_file.exists():
        return password_file.read_text().strip()
    password_file.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    return password


@transaction.atomic
def demo_seed(*, password_file: Path) -> DemoSeedResult:
    """Create or repair the demo tenant. Running it again changes nothing that is already right."""
    known_users = _demo_user_ids()
    actor = Actor.system("seed_demo")
    created = 0
    merchants = []
    for spec in DEMO_MERCHANTS:
        missing = set(spec["members"]) - known_users
        if missing:
            raise ValueError(f"{DEMO_USERS_FILE} lacks the demo users {sorted(missing)}")
        fields = {k: spec[k] for k in ("name", "shop_domain", "timezone", "currency")}
        merchant, was_created = Merchant.objects.get_or_create(key=spec["key"], defaults=fields)
        if was_created:
            merchant.full_clean()
            created += 1
            audit_event_record(
                action="merchant.created",
                actor=actor,
                target_type="accounts.merchant",
                target_id=merchant.pk,
                merchant=merchant,
            )
        for user_id, role in spec["members"].items():
            Membership.objects.update_or_create(merchant=merchant, clerk_user_id=user_id, defaults={"role": role})
        merchants.append(merchant)
    _demo_agency_seed(known_users, actor)

    password = _admin_password(password_file)
    User = get_user_model()
    admin_user, _ = User.objects.get_or_create(username=DEMO_ADMIN_USERNAME, defaults={"email": "ops@localhost"})
    if not (admin_user.is_staff and admin_user.is_superuser and admin_user.check_password(password)):
        admin_user.is_staff = admin_user.is_superuser = admin_user.is_active = True
        admin_user.set_password(password)
        admin_user.save()
    return DemoSeedResult(
        merchants=merchants, created=created, admin_username=DEMO_ADMIN_USERNAME, admin_password=password
    )

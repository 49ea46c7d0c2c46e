import datetime as dt

import factory
from django.utils import timezone

from agencies.choices import AgencyRole, AgencyStatus, GrantLevel, GrantStatus
from agencies.models import AccessGrant, Agency, AgencyMember, ClientAssignment
from tests.accounts.factories import MerchantFactory


class AgencyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agency

    clerk_org_id = factory.Sequence(lambda n: f"org_test_{n}")
    name = factory.Sequence(lambda n: f"Agency {n}")
    slug = factory.Sequence(lambda n: f"agency-{n}")
    status = AgencyStatus.ACTIVE
    created_by = "user_agency_founder"


class AgencyMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AgencyMember

    agency = factory.SubFactory(AgencyFactory)
    clerk_user_id = factory.Sequence(lambda n: f"user_agent_{n}")
    clerk_role = factory.LazyAttribute(lambda o: f"org:{o.role}")
    role = AgencyRole.MEMBER


class AccessGrantFactory(factory.django.DjangoModelFactory):
    """An active analyst grant unless told otherwise."""

    class Meta:
        model = AccessGrant

    agency = factory.SubFactory(AgencyFactory)
    merchant = factory.SubFactory(MerchantFactory)
    level = GrantLevel.ANALYST
    status = GrantStatus.ACTIVE
    requested_by = "user_agent_requester"
    approved_by = "user_store_owner"
    approved_at = factory.LazyFunction(timezone.now)


class ClientAssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ClientAssignment

    member = factory.SubFactory(AgencyMemberFactory)
    merchant = factory.SubFactory(MerchantFactory)


def expired(days: int = 1) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)

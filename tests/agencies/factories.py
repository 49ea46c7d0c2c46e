import factory

from agencies.choices import GrantLevel, GrantStatus
from agencies.models import AccessGrant
from tests.accounts.factories import MerchantFactory


class AccessGrantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AccessGrant

    merchant = factory.SubFactory(MerchantFactory)
    level = GrantLevel.ANALYST
    status = GrantStatus.ACTIVE

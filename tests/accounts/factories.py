import factory

from accounts.choices import Role
from accounts.models import Membership, Merchant


class MerchantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Merchant

    name = factory.Sequence(lambda n: f"Store {n}")
    shop_domain = factory.Sequence(lambda n: f"store-{n}.myshopify.com")
    timezone = "America/New_York"
    currency = "USD"
    key = factory.Sequence(lambda n: f"store_{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    merchant = factory.SubFactory(MerchantFactory)
    clerk_user_id = factory.Sequence(lambda n: f"user_test_{n}")
    role = Role.OWNER

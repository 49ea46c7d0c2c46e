"""The membership lookup every merchant page and API call starts with."""

import pytest
from django.forms.models import model_to_dict
from django.http import Http404

from accounts.models import Membership
from accounts.selectors import membership_get, membership_list
from tests.accounts.factories import MembershipFactory, MerchantFactory

pytestmark = pytest.mark.django_db


def _loaded(membership: Membership) -> tuple[dict, dict]:
    """Every stored field of the membership and of its merchant, as the instances hold them."""
    fields = {f.attname: getattr(membership, f.attname) for f in Membership._meta.concrete_fields}
    merchant = membership.merchant
    return fields, {f.attname: getattr(merchant, f.attname) for f in type(merchant)._meta.concrete_fields}


def test_membership_list_holds_the_users_active_merchants_by_name(django_assert_num_queries):
    zeta = MembershipFactory(clerk_user_id="user_a", merchant=MerchantFactory(name="Zeta"))
    alpha = MembershipFactory(clerk_user_id="user_a", merchant=MerchantFactory(name="Alpha"))
    MembershipFactory(clerk_user_id="user_a", merchant=MerchantFactory(name="Closed", is_active=False))
    MembershipFactory(clerk_user_id="user_b", merchant=alpha.merchant)

    with django_assert_num_queries(1):  # the merchants come with the memberships
        found = membership_list(clerk_user_id="user_a")
        names = [m.merchant.name for m in found]

    assert names == ["Alpha", "Zeta"]
    assert [m.pk for m in found] == [alpha.pk, zeta.pk]


def test_membership_list_loads_what_the_orm_would():
    membership = MembershipFactory(clerk_user_id="user_a", role="viewer")
    [found] = membership_list(clerk_user_id="user_a")
    expected = Membership.objects.select_related("merchant").get(pk=membership.pk)
    assert _loaded(found) == _loaded(expected)
    assert found._state.adding is False and found._state.db == "default"
    # A loaded instance saves as an update, like any other.
    found.role = "admin"
    found.save()
    assert model_to_dict(Membership.objects.get(pk=membership.pk))["role"] == "admin"


def test_membership_list_is_empty_for_a_stranger():
    MembershipFactory(clerk_user_id="user_a")
    assert membership_list(clerk_user_id="user_nobody") == []


def test_membership_get_finds_only_the_users_own_active_merchant():
    own = MembershipFactory(clerk_user_id="user_a")
    other = MembershipFactory(clerk_user_id="user_b")
    closed = MembershipFactory(clerk_user_id="user_a", merchant=MerchantFactory(is_active=False))

    found = membership_get(clerk_user_id="user_a", merchant_id=own.merchant_id)
    assert _loaded(found) == _loaded(Membership.objects.select_related("merchant").get(pk=own.pk))
    for merchant_id in (other.merchant_id, closed.merchant_id, 10**20, "abc", None):
        with pytest.raises(Http404):
            membership_get(clerk_user_id="user_a", merchant_id=merchant_id)

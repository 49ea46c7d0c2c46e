"""accounts.access: who reaches which store, how, and what they may do there."""

import datetime as dt

import pytest
from django.http import Http404
from django.utils import timezone

from accounts import access as a
from accounts.access import (
    StoreAccess,
    agency_store_access_list,
    store_access_from_grant,
    store_access_get,
    store_access_list,
)
from accounts.choices import Role
from agencies.choices import AgencyRole, AgencyStatus, GrantLevel, GrantStatus
from tests.accounts.factories import MembershipFactory, MerchantFactory
from tests.agencies.factories import (
    AccessGrantFactory,
    AgencyFactory,
    AgencyMemberFactory,
    ClientAssignmentFactory,
    expired,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def store():
    return MerchantFactory(name="Alpine")


@pytest.fixture
def agency():
    return AgencyFactory(name="Acme")


@pytest.fixture
def admin(agency):
    return AgencyMemberFactory(agency=agency, clerk_user_id="user_ada", role=AgencyRole.ADMIN)


@pytest.fixture
def staff(agency):
    return AgencyMemberFactory(agency=agency, clerk_user_id="user_sam", role=AgencyRole.MEMBER)


def _ids(accesses: list[StoreAccess]) -> list[int]:
    return [x.merchant_id for x in accesses]


def test_agency_admin_sees_a_granted_store_with_the_grants_terms(store, agency, admin):
    grant = AccessGrantFactory(agency=agency, merchant=store, level=GrantLevel.ANALYST, can_see_costs=True)
    got = store_access_get(clerk_user_id="user_ada", merchant_id=store.pk)
    assert got == StoreAccess(
        merchant=store,
        role=Role.VIEWER,
        agency=agency,
        grant=grant,
        level=GrantLevel.ANALYST,
        can_see_pii=False,
        can_see_costs=True,
    )
    assert got.label == "Analyst via Acme"
    assert _ids(store_access_list(clerk_user_id="user_ada")) == [store.pk]


def test_agency_member_needs_a_client_assignment_for_the_store(store, agency, staff):
    AccessGrantFactory(agency=agency, merchant=store)
    other = MerchantFactory(name="Other")
    AccessGrantFactory(agency=agency, merchant=other)
    ClientAssignmentFactory(member=staff, merchant=other)
    with pytest.raises(Http404):
        store_access_get(clerk_user_id="user_sam", merchant_id=store.pk)
    assert _ids(store_access_list(clerk_user_id="user_sam")) == [other.pk]
    ClientAssignmentFactory(member=staff, merchant=store)
    assert _ids(store_access_list(clerk_user_id="user_sam")) == [store.pk, other.pk]


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda g, m: g.__class__.objects.filter(pk=g.pk).update(status=GrantStatus.ENDED), id="ended"),
        pytest.param(lambda g, m: g.__class__.objects.filter(pk=g.pk).update(status=GrantStatus.PENDING), id="pending"),
        pytest.param(
            lambda g, m: g.__class__.objects.filter(pk=g.pk).update(status=GrantStatus.DECLINED), id="declined"
        ),
        pytest.param(lambda g, m: g.__class__.objects.filter(pk=g.pk).update(expires_at=expired()), id="past-expiry"),
        pytest.param(lambda g, m: m.__class__.objects.filter(pk=m.pk).update(removed_at=timezone.now()), id="removed"),
        pytest.param(
            lambda g, m: g.agency.__class__.objects.filter(pk=g.agency_id).update(status=AgencyStatus.SUSPENDED),
            id="suspended-agency",
        ),
        pytest.param(
            lambda g, m: g.merchant.__class__.objects.filter(pk=g.merchant_id).update(is_active=False),
            id="inactive-store",
        ),
    ],
)
def test_no_access_unless_every_condition_holds(store, agency, admin, spoil):
    grant = AccessGrantFactory(agency=agency, merchant=store)
    assert store_access_get(clerk_user_id="user_ada", merchant_id=store.pk).grant == grant
    spoil(grant, admin)
    with pytest.raises(Http404):
        store_access_get(clerk_user_id="user_ada", merchant_id=store.pk)
    assert store_access_list(clerk_user_id="user_ada") == []
    assert agency_store_access_list(clerk_user_id="user_ada", agency=agency) == []


def test_a_grant_expiring_later_still_counts(store, agency, admin):
    AccessGrantFactory(agency=agency, merchant=store, expires_at=timezone.now() + dt.timedelta(days=1))
    assert store_access_get(clerk_user_id="user_ada", merchant_id=store.pk).merchant == store


def test_a_grant_for_another_agency_gives_nothing(store, admin):
    AccessGrantFactory(agency=AgencyFactory(), merchant=store)
    with pytest.raises(Http404):
        store_access_get(clerk_user_id="user_ada", merchant_id=store.pk)


def test_store_member_who_is_also_agency_staff_gets_the_member_access_once(store, agency, admin):
    AccessGrantFactory(agency=agency, merchant=store, level=GrantLevel.VIEWER)
    MembershipFactory(merchant=store, clerk_user_id="user_ada", role=Role.ADMIN)
    [only] = store_access_list(clerk_user_id="user_ada")
    assert (only.agency, only.level, only.can_see_pii, only.can_see_costs) == (None, Role.ADMIN, True, True)
    assert store_access_get(clerk_user_id="user_ada", merchant_id=store.pk) == only
    # The portfolio is the agency's view: there the same store shows the agency's terms.
    [as_agency] = agency_store_access_list(clerk_user_id="user_ada", agency=agency)
    assert (as_agency.agency, as_agency.level, as_agency.can_see_pii) == (agency, GrantLevel.VIEWER, False)


def test_list_mixes_memberships_and_grants_by_store_name(agency, admin):
    zulu = MembershipFactory(merchant=MerchantFactory(name="Zulu"), clerk_user_id="user_ada").merchant
    bravo = AccessGrantFactory(agency=agency, merchant=MerchantFactory(name="Bravo")).merchant
    assert _ids(store_access_list(clerk_user_id="user_ada")) == [bravo.pk, zulu.pk]


def test_agency_store_access_list_is_limited_to_that_agency(store, agency, admin):
    AccessGrantFactory(agency=agency, merchant=store)
    other_agency = AgencyFactory()
    AgencyMemberFactory(agency=other_agency, clerk_user_id="user_ada", role=AgencyRole.ADMIN)
    AccessGrantFactory(agency=other_agency, merchant=MerchantFactory())
    assert _ids(agency_store_access_list(clerk_user_id="user_ada", agency=agency)) == [store.pk]
    assert len(store_access_list(clerk_user_id="user_ada")) == 2


@pytest.mark.parametrize("merchant_id", ["abc", None, "1.5", 999_999_999])
def test_unknown_or_malformed_ids_are_the_same_404(admin, merchant_id):
    with pytest.raises(Http404) as exc:
        store_access_get(clerk_user_id="user_ada", merchant_id=merchant_id)
    assert str(exc.value) == "No such merchant."


def test_the_access_list_is_two_queries_however_many_stores(django_assert_max_num_queries, agency, admin, staff):
    for _ in range(6):
        store = MerchantFactory()
        AccessGrantFactory(agency=agency, merchant=store)
        ClientAssignmentFactory(member=staff, merchant=store)
        MembershipFactory(clerk_user_id="user_ada", merchant=MerchantFactory())
    with django_assert_max_num_queries(2):
        accesses = store_access_list(clerk_user_id="user_ada")
        assert [x.merchant.name for x in accesses] and [x.agency.name for x in accesses if x.agency]
    assert len(accesses) == 12
    with django_assert_max_num_queries(2):
        assert len(store_access_list(clerk_user_id="user_sam")) == 6


# --- what each access allows (the table in accounts/access.py) -----------------------------------------

ALLOWED = {
    ("member", Role.OWNER): set(a.ACTIONS),
    ("member", Role.ADMIN): {"view", "export", "edit_templates", "manage_connectors"},
    ("member", Role.VIEWER): {"view", "export", "edit_templates"},
    ("agency", GrantLevel.VIEWER): {"view"},
    ("agency", GrantLevel.ANALYST): {"view", "export", "edit_templates"},
    ("agency", GrantLevel.MANAGER): {"view", "export", "edit_templates", "manage_connectors"},
}


@pytest.mark.parametrize(("kind", "level"), list(ALLOWED))
def test_allows_follows_the_table(kind, level):
    store = MerchantFactory()
    if kind == "member":
        got = store_access_get(
            clerk_user_id=MembershipFactory(merchant=store, role=level).clerk_user_id, merchant_id=store.pk
        )
    else:
        got = store_access_from_grant(AccessGrantFactory(merchant=store, level=level))
    assert {action for action in a.ACTIONS if got.allows(action)} == ALLOWED[(kind, level)]


def test_an_agency_never_manages_the_stores_members_or_grants():
    grant = AccessGrantFactory(level=GrantLevel.MANAGER, can_see_pii=True, can_see_costs=True)
    got = store_access_from_grant(grant)
    assert not got.allows("manage_members") and not got.allows("manage_agencies")
    assert got.role == Role.ADMIN  # the role a manager acts as, for code that reads a role


def test_an_unknown_action_is_an_error_not_a_silent_no():
    with pytest.raises(ValueError):
        store_access_from_grant(AccessGrantFactory()).allows("delete_everything")

"""The grant flow: an agency asks or redeems a code; the store approves, declines or ends; all audited."""

from __future__ import annotations

import datetime as dt

import pytest
from django.http import Http404
from django.utils import timezone

from accounts.access import store_access_get
from accounts.choices import Role
from agencies import grants
from agencies.choices import AgencyRole, GrantLevel, GrantStatus
from agencies.models import AccessCode, AccessGrant
from agencies.signals import grant_ended
from compliance.models import AuditEvent
from tests.accounts.factories import MembershipFactory, MerchantFactory
from tests.agencies.factories import AccessGrantFactory, AgencyFactory, AgencyMemberFactory

pytestmark = pytest.mark.django_db

ADMIN, STAFF, OWNER, VIEWER = "user_gr_admin", "user_gr_staff", "user_gr_owner", "user_gr_viewer"


@pytest.fixture
def store(clerk):
    store = MerchantFactory(name="Grant Store", shop_domain="grant-store.myshopify.com")
    MembershipFactory(merchant=store, clerk_user_id=clerk.user(OWNER), role=Role.OWNER)
    MembershipFactory(merchant=store, clerk_user_id=clerk.user(VIEWER), role=Role.VIEWER)
    return store


@pytest.fixture
def agency(clerk):
    agency = AgencyFactory(name="Grant Agency")
    AgencyMemberFactory(agency=agency, clerk_user_id=clerk.user(ADMIN), role=AgencyRole.ADMIN)
    AgencyMemberFactory(agency=agency, clerk_user_id=clerk.user(STAFF), role=AgencyRole.MEMBER)
    return agency


def _actions(store) -> list[str]:
    return list(AuditEvent.objects.filter(merchant=store).order_by("pk").values_list("action", flat=True))


def test_request_approve_end_through_the_pages(client, clerk, store, agency):
    client.cookies["__session"] = clerk.token(ADMIN)
    response = client.post(f"/agencies/{agency.pk}/grants/request/", {"shop_domain": "Grant-Store.myshopify.com"})
    assert response.status_code == 302
    grant = AccessGrant.objects.get(agency=agency, merchant=store)
    assert (grant.status, grant.requested_by) == (GrantStatus.PENDING, ADMIN)
    with pytest.raises(Http404):  # pending is not access
        store_access_get(clerk_user_id=ADMIN, merchant_id=store.pk)

    client.cookies["__session"] = clerk.token(OWNER)
    page = client.get(f"/m/{store.pk}/agencies/").content.decode()
    assert "Grant Agency" in page and "Approve" in page
    client.post(f"/m/{store.pk}/agencies/{grant.pk}/approve/", {"level": "manager", "can_see_costs": "on"})
    grant.refresh_from_db()
    assert (grant.status, grant.level, grant.can_see_pii, grant.can_see_costs, grant.approved_by) == (
        GrantStatus.ACTIVE, GrantLevel.MANAGER, False, True, OWNER,
    )  # fmt: skip
    access = store_access_get(clerk_user_id=ADMIN, merchant_id=store.pk)
    assert (access.level, access.can_see_pii, access.can_see_costs) == ("manager", False, True)

    ended = []
    grant_ended.connect(lambda sender, grant, **kw: ended.append(grant.pk), weak=False, dispatch_uid="t-ended")
    try:
        assert client.post(f"/m/{store.pk}/agencies/{grant.pk}/end/").status_code == 302
    finally:
        grant_ended.disconnect(dispatch_uid="t-ended")
    grant.refresh_from_db()
    assert (grant.status, grant.ended_by, ended) == (GrantStatus.ENDED, OWNER, [grant.pk])
    assert _actions(store) == ["agency_grant.requested", "agency_grant.approved", "agency_grant.ended"]
    assert client.get(f"/m/{store.pk}/overview/", **clerk.auth_header(ADMIN)).status_code == 404


def test_request_answers_the_same_whether_the_shop_exists(client, clerk, store, agency):
    client.cookies["__session"] = clerk.token(ADMIN)
    known = client.post(f"/agencies/{agency.pk}/grants/request/", {"shop_domain": store.shop_domain}, follow=True)
    unknown = client.post(f"/agencies/{agency.pk}/grants/request/", {"shop_domain": "nope.myshopify.com"}, follow=True)
    assert known.status_code == unknown.status_code == 200
    said = [str(m) for m in known.context["messages"]], [str(m) for m in unknown.context["messages"]]
    assert said == (
        [grants.REQUEST_SENT.format(shop=store.shop_domain)],
        [grants.REQUEST_SENT.format(shop="nope.myshopify.com")],
    )
    assert AccessGrant.objects.count() == 1


def test_an_empty_shop_domain_is_a_field_error(client, clerk, agency):
    client.cookies["__session"] = clerk.token(ADMIN)
    response = client.post(f"/agencies/{agency.pk}/grants/request/", {"shop_domain": ""})
    assert response.status_code == 400 and 'data-field="shop_domain"' in response.content.decode()


def test_only_agency_admins_ask_and_only_store_owners_answer(client, clerk, store, agency):
    client.cookies["__session"] = clerk.token(STAFF)
    assert client.post(f"/agencies/{agency.pk}/grants/request/", {"shop_domain": store.shop_domain}).status_code == 403
    grant = AccessGrantFactory(agency=agency, merchant=store, status=GrantStatus.PENDING)
    client.cookies["__session"] = clerk.token(VIEWER)
    assert client.get(f"/m/{store.pk}/agencies/").status_code == 403
    assert client.post(f"/m/{store.pk}/agencies/{grant.pk}/approve/", {"level": "viewer"}).status_code == 403
    assert AccessGrant.objects.get(pk=grant.pk).status == GrantStatus.PENDING


def test_decline(client, clerk, store, agency):
    grant = AccessGrantFactory(agency=agency, merchant=store, status=GrantStatus.PENDING)
    client.cookies["__session"] = clerk.token(OWNER)
    assert client.post(f"/m/{store.pk}/agencies/{grant.pk}/decline/").status_code == 302
    assert AccessGrant.objects.get(pk=grant.pk).status == GrantStatus.DECLINED
    # Answered once: a second answer is a clear error, not a change.
    again = client.post(f"/m/{store.pk}/agencies/{grant.pk}/approve/", {"level": "viewer"})
    assert again.status_code == 400 and grants.NOT_PENDING in again.content.decode()
    assert _actions(store) == ["agency_grant.declined"]


def test_approve_with_an_unknown_level_is_a_field_error(client, clerk, store, agency):
    grant = AccessGrantFactory(agency=agency, merchant=store, status=GrantStatus.PENDING)
    client.cookies["__session"] = clerk.token(OWNER)
    response = client.post(f"/m/{store.pk}/agencies/{grant.pk}/approve/", {"level": "god"})
    assert response.status_code == 400 and 'data-field="level"' in response.content.decode()
    assert AccessGrant.objects.get(pk=grant.pk).status == GrantStatus.PENDING


def test_the_agency_can_end_a_grant_too(client, clerk, store, agency):
    grant = AccessGrantFactory(agency=agency, merchant=store)
    client.cookies["__session"] = clerk.token(ADMIN)
    assert client.post(f"/agencies/{agency.pk}/grants/{grant.pk}/end/").status_code == 302
    grant.refresh_from_db()
    assert (grant.status, grant.ended_by) == (GrantStatus.ENDED, ADMIN)
    event = AuditEvent.objects.get(merchant=store, action="agency_grant.ended")
    assert event.metadata == {"agency_id": agency.pk, "side": "agency"}


def test_a_store_cannot_touch_another_stores_grant(client, clerk, store, agency):
    other = AccessGrantFactory(agency=agency, merchant=MerchantFactory())
    client.cookies["__session"] = clerk.token(OWNER)
    assert client.post(f"/m/{store.pk}/agencies/{other.pk}/end/").status_code == 404
    assert AccessGrant.objects.get(pk=other.pk).status == GrantStatus.ACTIVE


def test_code_is_shown_once_and_redeems_once_at_its_terms(client, clerk, store, agency):
    client.cookies["__session"] = clerk.token(OWNER)
    response = client.post(f"/m/{store.pk}/agencies/codes/", {"level": "analyst", "can_see_pii": "on"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    code = response.context["new_code"]
    row = AccessCode.objects.get(merchant=store)
    assert code.startswith(grants.CODE_PREFIX) and row.digest == grants.code_digest(code) and code not in row.digest
    assert dt.timedelta(days=6, hours=23) < row.expires_at - timezone.now() <= dt.timedelta(days=7)
    assert code not in client.get(f"/m/{store.pk}/agencies/").content.decode()

    client.cookies["__session"] = clerk.token(ADMIN)
    assert client.post(f"/agencies/{agency.pk}/grants/redeem/", {"code": code}).status_code == 302
    grant = AccessGrant.objects.get(agency=agency, merchant=store)
    assert (grant.status, grant.level, grant.can_see_pii, grant.can_see_costs) == (
        GrantStatus.ACTIVE, GrantLevel.ANALYST, True, False,
    )  # fmt: skip
    # Reused, even by another agency: refused, nothing changes.
    other = AgencyFactory()
    AgencyMemberFactory(agency=other, clerk_user_id=ADMIN, role=AgencyRole.ADMIN)
    reused = client.post(f"/agencies/{other.pk}/grants/redeem/", {"code": code})
    assert reused.status_code == 400 and grants.CODE_USED in reused.content.decode()
    assert not AccessGrant.objects.filter(agency=other).exists()
    assert _actions(store) == ["agency_code.created", "agency_grant.code_redeemed"]


def test_expired_or_unknown_codes_are_refused(client, clerk, store, agency):
    row, code = grants.access_code_create(
        merchant=store, level=GrantLevel.VIEWER, can_see_pii=False, can_see_costs=False, created_by=OWNER
    )
    AccessCode.objects.filter(pk=row.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    client.cookies["__session"] = clerk.token(ADMIN)
    expired = client.post(f"/agencies/{agency.pk}/grants/redeem/", {"code": code})
    assert expired.status_code == 400 and grants.CODE_EXPIRED in expired.content.decode()
    unknown = client.post(f"/agencies/{agency.pk}/grants/redeem/", {"code": "agc_made_up"})
    assert unknown.status_code == 400 and grants.CODE_INVALID in unknown.content.decode()
    assert not AccessGrant.objects.filter(agency=agency).exists()
    assert AccessCode.objects.get(pk=row.pk).redeemed_at is None


def test_agency_only_user_sees_granted_stores_in_the_switcher(client, clerk, store, agency):
    AccessGrantFactory(agency=agency, merchant=store)
    second = MerchantFactory(name="Second Store")
    AccessGrantFactory(agency=agency, merchant=second)
    client.cookies["__session"] = clerk.token(ADMIN)
    page = client.get(f"/m/{store.pk}/").content.decode()
    assert 'aria-label="Switch store"' in page and f'href="/m/{second.pk}/"' in page
    listing = client.get(f"/agencies/{agency.pk}/grants/").content.decode()
    assert f'href="/m/{store.pk}/overview/"' in listing


def test_staff_ending_a_grant_in_the_admin_sends_grant_ended(admin_client, agency, store):
    from django.urls import reverse

    grant = AccessGrantFactory(agency=agency, merchant=store)
    ended = []
    grant_ended.connect(lambda sender, grant, **kw: ended.append(grant.pk), weak=False, dispatch_uid="t-admin")
    try:
        admin_client.post(
            reverse("admin:agencies_accessgrant_changelist"), {"action": "end_grant", "_selected_action": [grant.pk]}
        )
    finally:
        grant_ended.disconnect(dispatch_uid="t-admin")
    assert ended == [grant.pk] and AccessGrant.objects.get(pk=grant.pk).status == GrantStatus.ENDED

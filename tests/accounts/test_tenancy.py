"""A member of one merchant must not learn anything about another: every merchant route answers 404."""

import pytest
from django.urls import reverse

from accounts.choices import Role
from tests.accounts.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_tenants(clerk):
    a = MembershipFactory(clerk_user_id=clerk.user("user_a"))
    b = MembershipFactory(clerk_user_id=clerk.user("user_b"))
    return a, b


def test_member_of_a_gets_404_for_b_merchant_page(client, clerk, two_tenants):
    a, b = two_tenants
    client.cookies["__session"] = clerk.token("user_a")
    own = client.get(reverse("accounts:merchant_home", args=[a.merchant.pk]))
    assert own.status_code == 200
    assert reverse("notifications:preferences", args=[a.merchant.pk]) in own.content.decode()
    assert client.get(reverse("accounts:merchant_home", args=[b.merchant.pk])).status_code == 404


def test_member_of_a_gets_404_for_b_in_the_api(client, clerk, two_tenants):
    a, b = two_tenants
    headers = clerk.auth_header("user_a")
    assert client.get(f"/api/merchants/{a.merchant.pk}/", **headers).status_code == 200
    response = client.get(f"/api/merchants/{b.merchant.pk}/", **headers)
    assert response.status_code == 404
    assert b.merchant.name not in response.content.decode()
    listing = client.get("/api/merchants/", **headers).json()
    assert [m["id"] for m in listing["results"]] == [a.merchant.pk]


def test_unknown_merchant_answers_the_same_404(client, clerk, two_tenants):
    headers = clerk.auth_header("user_a")
    assert client.get("/api/merchants/999999/", **headers).status_code == 404


def test_inactive_merchant_is_hidden_from_its_own_members(client, clerk, two_tenants):
    a, _ = two_tenants
    a.merchant.is_active = False
    a.merchant.save()
    assert client.get(f"/api/merchants/{a.merchant.pk}/", **clerk.auth_header("user_a")).status_code == 404


def test_user_with_two_memberships_switches_merchant(client, clerk, two_tenants):
    a, b = two_tenants
    MembershipFactory(merchant=b.merchant, clerk_user_id="user_a", role=Role.VIEWER)
    client.cookies["__session"] = clerk.token("user_a")
    page_b = client.get(reverse("accounts:merchant_home", args=[b.merchant.pk]))
    assert page_b.status_code == 200
    # The switcher links to the other store; "/" now lands on the last one chosen.
    assert reverse("accounts:merchant_home", args=[a.merchant.pk]) in page_b.content.decode()
    assert client.get("/").url == reverse("dashboards:overview", args=[b.merchant.pk])


def test_last_merchant_cookie_for_a_foreign_merchant_is_ignored(client, clerk, two_tenants):
    a, b = two_tenants
    client.cookies["__session"] = clerk.token("user_a")
    client.cookies["last_merchant"] = str(b.merchant.pk)
    assert client.get("/").url == reverse("dashboards:overview", args=[a.merchant.pk])


def test_signed_in_user_without_membership_is_asked_to_add_a_store(client, clerk):
    clerk.user("user_nobody")
    client.cookies["__session"] = clerk.token("user_nobody")
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<h1 id="onboarding-heading">Add your Shopify store</h1>' in html
    # The Shopify add flow is installed: the page links to it.
    assert 'href="/shopify/add/" data-testid="shopify-add"' in html and 'data-testid="shopify-app-store"' not in html
    assert "Invited to someone else" in html

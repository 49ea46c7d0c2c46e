"""The local sign-in: pick a demo user, the sandbox mints a Clerk token, the normal path verifies it."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Merchant
from accounts.views import NO_SUCH_DEMO_USER
from compliance.models import AuditEvent
from tests.accounts.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_dev_sign_in_lists_sandbox_users_and_lands_on_the_merchant(client, clerk):
    membership = MembershipFactory(clerk_user_id=clerk.user("user_dev", first_name="Dana", last_name="Dev"))
    page = client.get(reverse("accounts:sign_in"))
    assert page.status_code == 200
    assert "Sign in as Dana Dev" in page.content.decode()

    response = client.post(reverse("accounts:sign_in"), {"user_id": "user_dev", "next": "/"})

    assert response.url == "/"
    assert client.get("/").url == reverse("dashboards:overview", args=[membership.merchant.pk])
    store_page = client.get(reverse("accounts:merchant_home", args=[membership.merchant.pk]))
    assert store_page.status_code == 200
    assert membership.merchant.name in store_page.content.decode()
    signed_in = AuditEvent.objects.get(action="user.signed_in")
    assert signed_in.actor_id == "user_dev"


def test_sign_out_clears_the_session_and_is_audited(client, clerk):
    MembershipFactory(clerk_user_id=clerk.user("user_dev"))
    client.post(reverse("accounts:sign_in"), {"user_id": "user_dev"})
    response = client.post(reverse("accounts:sign_out"))
    assert response.status_code == 302
    assert response.cookies["__session"].value == ""
    assert AuditEvent.objects.filter(action="user.signed_out", actor_id="user_dev").count() == 1
    assert client.get("/").status_code == 302


def test_dev_sign_in_is_unavailable_without_the_sandbox(client, settings):
    settings.SANDBOX_URL = ""
    settings.CLERK_SIGN_IN_URL = ""
    response = client.get(reverse("accounts:sign_in"))
    assert response.status_code == 503
    assert client.post(reverse("accounts:sign_in"), {"user_id": "user_dev"}).status_code == 503


def test_production_sign_in_redirects_to_clerk(client, settings):
    settings.SANDBOX_URL = ""
    settings.CLERK_SIGN_IN_URL = "https://accounts.example.com/sign-in"
    response = client.get(reverse("accounts:sign_in"))
    assert response.status_code == 302
    assert response.url == "https://accounts.example.com/sign-in"


def test_open_redirect_through_next_is_refused(client, clerk):
    MembershipFactory(clerk_user_id=clerk.user("user_dev"))
    response = client.post(reverse("accounts:sign_in"), {"user_id": "user_dev", "next": "//evil.example/x"})
    assert response.url == "/"


def test_unknown_demo_user_is_refused(client, clerk):
    response = client.post(reverse("accounts:sign_in"), {"user_id": "user_ghost"}, follow=True)
    assert "No such demo user." in response.content.decode()
    assert "__session" not in client.cookies or client.cookies["__session"].value == ""
    assert not Merchant.objects.exists()


@pytest.mark.parametrize("data", [{}, {"user_id": ""}, {"user_id": "  "}, {"user_id": "user\x00nul"}])
def test_a_post_without_a_usable_user_is_refused_not_a_500(clerk, data):
    # Was a 500: the sandbox's 422 for a missing user id went through raise_for_status.
    client = Client(raise_request_exception=False)
    response = client.post(reverse("accounts:sign_in"), data, follow=True)
    assert response.status_code == 200
    assert NO_SUCH_DEMO_USER in response.content.decode()
    assert "__session" not in client.cookies or not client.cookies["__session"].value

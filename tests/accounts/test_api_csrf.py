"""The API under the `__session` cookie is as CSRF-protected as the pages; a bearer token needs no CSRF token."""

import json

import pytest
from django.middleware.csrf import get_token
from django.test import Client, RequestFactory

from dashboards.models import DashboardTemplate
from tests.accounts.factories import MembershipFactory

pytestmark = pytest.mark.django_db

LAYOUT = [{"type": "kpi", "metric": "net_revenue", "options": {"title": "Revenue"}}]
FOREIGN_ORIGIN = "https://evil.example"


@pytest.fixture
def member(clerk):
    return MembershipFactory(clerk_user_id=clerk.user("user_alice"))


@pytest.fixture
def browser(clerk, member):
    """A browser signed in by Clerk's cookie, whose CSRF checks are not switched off as the test client's are."""
    client = Client(enforce_csrf_checks=True)
    client.cookies["__session"] = clerk.token("user_alice")
    return client


def _templates_url(member) -> str:
    return f"/api/merchants/{member.merchant.pk}/dashboard-templates/"


def _form(name: str) -> dict:
    # What a foreign page's <form> can send: form-encoded fields, no custom header.
    return {"name": name, "description": "", "layout": json.dumps(LAYOUT)}


def _json(name: str) -> str:
    return json.dumps({"name": name, "description": "", "layout": LAYOUT})


def test_a_cross_site_form_post_with_the_session_cookie_is_refused(browser, member):
    response = browser.post(_templates_url(member), _form("Planted"), HTTP_ORIGIN=FOREIGN_ORIGIN)
    assert response.status_code == 403
    assert response.json()["detail"].startswith("CSRF Failed")
    assert not DashboardTemplate.objects.exists()


def test_a_same_site_post_with_the_session_cookie_but_no_csrf_token_is_refused(browser, member):
    response = browser.post(_templates_url(member), _json("No token"), content_type="application/json")
    assert response.status_code == 403
    assert response.json() == {"detail": "CSRF Failed: CSRF cookie not set."}
    assert not DashboardTemplate.objects.exists()


def test_a_post_with_the_session_cookie_and_a_valid_csrf_token_is_accepted(browser, member):
    token = get_token(RequestFactory().get("/"))
    browser.cookies["csrftoken"] = token
    response = browser.post(
        _templates_url(member), _json("Weekly"), content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 201, response.json()
    assert list(DashboardTemplate.objects.values_list("name", flat=True)) == ["Weekly"]


def test_a_bearer_request_needs_no_csrf_token(clerk, member):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        _templates_url(member),
        _json("From a script"),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {clerk.token('user_alice')}",
    )
    assert response.status_code == 201, response.json()
    assert DashboardTemplate.objects.get().name == "From a script"


def test_reads_with_the_session_cookie_need_no_csrf_token(browser, member):
    response = browser.get(_templates_url(member))
    assert response.status_code == 200
    assert response.json() == []

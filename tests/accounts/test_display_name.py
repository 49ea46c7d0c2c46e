"""The top bar names the signed-in person as Clerk knows them, and never breaks when Clerk does not answer."""

from __future__ import annotations

import re

import pytest
from django.core.cache import cache

from accounts.selectors import DISPLAY_NAME_TIMEOUT_SECONDS, clerk_display_name_get, display_name_cache_key
from notifications.services import user_email_cache_drop
from tests.accounts.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_cached_names():
    """The cache table outlives transactional tests elsewhere in the run, which may have cached these users."""
    for user_id in ("user_olivia", "user_mail", "user_gone"):
        cache.delete(display_name_cache_key(user_id))


def who(response) -> str:
    assert response.status_code == 200
    match = re.search(r'<span class="who" data-testid="who">([^<]*)</span>', response.content.decode())
    assert match, "no top bar"
    return match.group(1)


@pytest.fixture
def olivia(clerk):
    clerk.user("user_olivia", first_name="Olivia", last_name="Owner", email="olivia@alpine.example")
    return MembershipFactory(clerk_user_id="user_olivia")


def test_top_bar_shows_the_name_from_clerk_not_the_user_id(client, clerk, olivia, sandbox):
    page = f"/m/{olivia.merchant_id}/"
    assert who(client.get(page, **clerk.auth_header("user_olivia"))) == "Olivia Owner"
    # Cached: the next page asks Clerk nothing.
    assert who(client.get(page, **clerk.auth_header("user_olivia"))) == "Olivia Owner"
    assert len(sandbox.calls("clerk.users.get")) == 1


def test_without_a_name_the_primary_email_is_shown(client, clerk):
    clerk.user("user_mail", first_name="", last_name="", email="mail@store.example")
    membership = MembershipFactory(clerk_user_id="user_mail")
    assert who(client.get(f"/m/{membership.merchant_id}/", **clerk.auth_header("user_mail"))) == "mail@store.example"


def test_a_name_in_the_session_claims_needs_no_clerk_call(client, clerk, olivia, sandbox):
    headers = clerk.auth_header("user_olivia", name="Olivia from the token")
    assert who(client.get(f"/m/{olivia.merchant_id}/", **headers)) == "Olivia from the token"
    assert sandbox.calls("clerk.users.get") == []


def test_a_clerk_outage_shows_the_user_id_and_is_not_asked_again_at_once(client, clerk, olivia, sandbox):
    sandbox.fault("clerk.users.get", 503, times=5)
    page = f"/m/{olivia.merchant_id}/"
    assert who(client.get(page, **clerk.auth_header("user_olivia"))) == "user_olivia"
    assert who(client.get(page, **clerk.auth_header("user_olivia"))) == "user_olivia"
    assert len(sandbox.calls("clerk.users.get")) == 1  # the fallback is cached briefly


def test_a_slow_clerk_costs_the_page_at_most_the_short_timeout(client, clerk, olivia, sandbox):
    import time

    sandbox.fault("clerk.users.get", delay=DISPLAY_NAME_TIMEOUT_SECONDS + 2)
    started = time.monotonic()
    assert who(client.get(f"/m/{olivia.merchant_id}/", **clerk.auth_header("user_olivia"))) == "user_olivia"
    assert time.monotonic() - started < DISPLAY_NAME_TIMEOUT_SECONDS + 1.5


def test_no_clerk_secret_key_shows_the_user_id(client, clerk, olivia, settings):
    settings.CLERK_SECRET_KEY = ""
    assert who(client.get(f"/m/{olivia.merchant_id}/", **clerk.auth_header("user_olivia"))) == "user_olivia"


def test_a_deleted_clerk_user_shows_the_user_id(clerk, sandbox):
    assert clerk_display_name_get(clerk_user_id="user_gone") == "user_gone"


def test_clerk_user_webhook_drops_the_cached_name(clerk, olivia):
    assert clerk_display_name_get(clerk_user_id="user_olivia") == "Olivia Owner"
    user_email_cache_drop(clerk_user_id="user_olivia")
    assert cache.get(display_name_cache_key("user_olivia")) is None

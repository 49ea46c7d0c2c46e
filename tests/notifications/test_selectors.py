"""user_email_get against the Clerk sandbox over real HTTP, through the official SDK."""

from __future__ import annotations

import pytest

from notifications.clients.clerk import (
    ClerkMisconfigured,
    ClerkRateLimited,
    ClerkTransientError,
    ClerkUserNotFound,
)
from notifications.selectors import ClerkUserHasNoEmail, user_email_get
from notifications.services import user_email_cache_drop


def test_lookup_returns_the_primary_address(clerk, sandbox):
    clerk.user("user_ada", email="ada@example.com")
    assert user_email_get("user_ada") == "ada@example.com"
    assert len(sandbox.calls("clerk.users.get")) == 1


def test_primary_wins_over_an_earlier_secondary_address(clerk, sandbox):
    clerk.user(
        "user_bo",
        email_addresses=[
            {"email_address": "old@example.com", "verified": True},
            {"email_address": "bo@example.com", "verified": True},
        ],
        primary_email="bo@example.com",
    )
    assert user_email_get("user_bo") == "bo@example.com"


def test_an_unverified_primary_gives_way_to_a_verified_secondary(clerk):
    clerk.user(
        "user_cy",
        email_addresses=[
            {"email_address": "cy-new@example.com", "verified": False},
            {"email_address": "cy@example.com", "verified": True},
        ],
        primary_email="cy-new@example.com",
    )
    assert user_email_get("user_cy") == "cy@example.com"


def test_no_verified_address_is_a_typed_error(clerk):
    clerk.user(
        "user_dee", email="dee@example.com", email_addresses=[{"email_address": "dee@example.com", "verified": False}]
    )
    with pytest.raises(ClerkUserHasNoEmail, match="no verified email"):
        user_email_get("user_dee")


def test_cache_hit_avoids_a_second_clerk_call(clerk, sandbox):
    clerk.user("user_ed", email="ed@example.com")
    assert user_email_get("user_ed") == "ed@example.com"
    assert user_email_get("user_ed") == "ed@example.com"
    assert len(sandbox.calls("clerk.users.get")) == 1


def test_cache_ttl_comes_from_settings(clerk, sandbox, settings):
    settings.CLERK_EMAIL_CACHE_TTL = 0  # Django: a timeout of 0 expires at once
    clerk.user("user_fay")
    user_email_get("user_fay")
    user_email_get("user_fay")
    assert len(sandbox.calls("clerk.users.get")) == 2


def test_dropping_the_cache_fetches_the_new_address(clerk, sandbox):
    clerk.user("user_gus", email="gus@example.com")
    assert user_email_get("user_gus") == "gus@example.com"
    clerk.user("user_gus", email="gus@new.example.com")
    assert user_email_get("user_gus") == "gus@example.com"
    user_email_cache_drop(clerk_user_id="user_gus")
    assert user_email_get("user_gus") == "gus@new.example.com"


def test_unknown_user_is_not_found(clerk):
    with pytest.raises(ClerkUserNotFound, match="user_gone"):
        user_email_get("user_gone")


def test_rate_limit_carries_retry_after(clerk, sandbox):
    clerk.user("user_hal")
    sandbox.fault("clerk.users.get", 429, headers={"Retry-After": 7})
    with pytest.raises(ClerkRateLimited) as caught:
        user_email_get("user_hal")
    assert caught.value.retry_after == 7
    # The SDK's own retries are off: one call, and the decision is ours.
    assert len(sandbox.calls("clerk.users.get")) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient_and_not_retried_inside_the_call(clerk, sandbox, status):
    clerk.user("user_ivy")
    sandbox.fault("clerk.users.get", status)
    with pytest.raises(ClerkTransientError, match=str(status)):
        user_email_get("user_ivy")
    assert len(sandbox.calls("clerk.users.get")) == 1


def test_timeout_is_transient(clerk, sandbox, monkeypatch):
    from notifications.clients import clerk as clerk_module

    monkeypatch.setattr(clerk_module, "DEFAULT_TIMEOUT_SECONDS", 0.3)
    clerk.user("user_jo")
    sandbox.fault("clerk.users.get", delay=1.0)
    with pytest.raises(ClerkTransientError, match="did not answer"):
        user_email_get("user_jo")


def test_connection_refused_is_transient(clerk, settings):
    from tests.conftest import free_port

    settings.CLERK_API_URL = f"http://127.0.0.1:{free_port()}/clerk/v1"
    with pytest.raises(ClerkTransientError, match="could not reach Clerk"):
        user_email_get("user_kim")


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_secret_key_is_a_configuration_error(clerk, sandbox, status, caplog):
    clerk.user("user_lu")
    sandbox.fault("clerk.users.get", status)
    with pytest.raises(ClerkMisconfigured, match="CLERK_SECRET_KEY"):
        user_email_get("user_lu")
    assert any(r.levelname == "ERROR" and "CLERK_SECRET_KEY" in r.getMessage() for r in caplog.records)


def test_a_wrong_secret_key_against_the_sandbox_is_a_configuration_error(clerk, settings):
    settings.CLERK_SECRET_KEY = "not-a-clerk-key"
    with pytest.raises(ClerkMisconfigured):
        user_email_get("user_mo")


def test_a_drop_during_a_lookup_keeps_the_answer_out_of_the_cache(clerk, sandbox, monkeypatch):
    from django.core.cache import cache

    from notifications.clients.clerk import ClerkClient
    from notifications.selectors import email_cache_key

    clerk.user("user_race", email="race@example.com")
    real_user_get = ClerkClient.user_get

    def user_get_then_webhook(self, user_id):
        user = real_user_get(self, user_id)
        user_email_cache_drop(clerk_user_id=user_id)  # user.updated arrives while Clerk's answer is in flight
        return user

    monkeypatch.setattr(ClerkClient, "user_get", user_get_then_webhook)
    assert user_email_get("user_race") == "race@example.com"
    assert cache.get(email_cache_key("user_race")) is None

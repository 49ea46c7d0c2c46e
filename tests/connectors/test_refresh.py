"""Token refresh over real HTTP against the sandbox: Google's refresh grant, Meta's re-exchange, the lock."""

from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.utils import timezone

from compliance.models import AuditEvent
from connectors import services
from connectors.choices import CredentialStatus
from connectors.clients.google import GoogleAdsClient
from connectors.clients.meta import MetaClient
from connectors.crypto import decrypt_secret
from connectors.models import ConnectorCredential
from tests.connectors.factories import google_credential, meta_credential
from tests.connectors.test_refresh_failing_provider import end_failure_window

pytestmark = pytest.mark.django_db

TOKEN = "google.oauth.token"
SEARCH = "google.ads.search"


def ads_search(credential_id: int):
    return services.credential_call(
        credential_id=credential_id,
        call=lambda token: GoogleAdsClient().search(access_token=token, customer_id="1234567890", query="SELECT 1"),
    )


def meta_insights(credential_id: int):
    return services.credential_call(
        credential_id=credential_id,
        call=lambda token: MetaClient().insights(access_token=token, ad_account_id="act_101"),
    )


def test_google_refresh_persists_new_access_token_and_keeps_refresh_token(providers):
    credential = google_credential(providers, expired=True)
    old_access, old_refresh = decrypt_secret(credential.access_token_enc), decrypt_secret(credential.refresh_token_enc)

    services.credential_refresh(credential_id=credential.pk)

    credential.refresh_from_db()
    assert decrypt_secret(credential.access_token_enc) != old_access
    assert decrypt_secret(credential.refresh_token_enc) == old_refresh
    assert credential.expires_at > timezone.now() + dt.timedelta(minutes=55)
    assert credential.status == CredentialStatus.ACTIVE
    assert credential.last_refreshed_at is not None
    assert providers.calls(TOKEN) == 1
    assert AuditEvent.objects.filter(action="credential.refreshed", target_id=str(credential.pk)).count() == 1


def test_a_refresh_that_returns_a_new_refresh_token_persists_it(providers):
    providers.google_configure(rotate_refresh_tokens=True)
    credential = google_credential(providers, expired=True)
    old_refresh = decrypt_secret(credential.refresh_token_enc)

    services.credential_refresh(credential_id=credential.pk)

    credential.refresh_from_db()
    new_refresh = decrypt_secret(credential.refresh_token_enc)
    assert new_refresh != old_refresh and new_refresh.startswith("1//")
    # The rotated token really is the one that works now.
    credential.expires_at = timezone.now() - dt.timedelta(seconds=1)
    credential.save()
    services.credential_refresh(credential_id=credential.pk)
    assert ConnectorCredential.objects.get(pk=credential.pk).status == CredentialStatus.ACTIVE


def test_a_token_not_yet_due_is_not_refreshed(providers):
    credential = google_credential(providers)
    services.credential_refresh(credential_id=credential.pk)
    assert providers.calls(TOKEN) == 0


def test_refresh_on_401_happens_once_and_the_call_is_retried(providers):
    credential = google_credential(providers)
    providers.google_expire(decrypt_secret(credential.access_token_enc))  # expired at Google, not in our row

    results = ads_search(credential.pk)

    assert results[0]["campaign"]["name"] == "Brand"
    assert providers.calls(TOKEN) == 1
    assert [c["status"] for c in providers.control.calls(SEARCH)] == [401, 200]


def test_a_second_401_after_refresh_marks_needs_reauth(providers):
    credential = google_credential(providers)
    providers.google_expire(decrypt_secret(credential.access_token_enc))
    providers.control.fault(SEARCH, 401, times=2)

    with pytest.raises(services.CredentialUnusable):
        ads_search(credential.pk)

    credential.refresh_from_db()
    assert credential.status == CredentialStatus.NEEDS_REAUTH
    assert providers.calls(TOKEN) == 1
    assert providers.calls(SEARCH) == 2


def test_invalid_grant_is_terminal_with_no_retry_storm(providers):
    credential = google_credential(providers, expired=True)
    providers.google_revoke(decrypt_secret(credential.refresh_token_enc))

    with pytest.raises(services.CredentialUnusable):
        services.credential_refresh(credential_id=credential.pk)
    with pytest.raises(services.CredentialUnusable):
        ads_search(credential.pk)
    with pytest.raises(services.CredentialUnusable):
        services.credential_refresh(credential_id=credential.pk)

    credential.refresh_from_db()
    assert credential.status == CredentialStatus.NEEDS_REAUTH
    assert credential.last_error_code == "invalid_grant"
    assert providers.calls(TOKEN) == 1
    assert providers.calls(SEARCH) == 0
    assert AuditEvent.objects.filter(action="credential.needs_reauth", target_id=str(credential.pk)).count() == 1


def test_transient_token_endpoint_failure_counts_and_keeps_the_credential_usable(providers, settings):
    settings.CONNECTORS_REFRESH_MAX_FAILURES = 3
    credential = google_credential(providers)
    credential.expires_at = timezone.now() + dt.timedelta(minutes=5)  # due, still valid
    credential.save()
    providers.control.fault(TOKEN, 503, times=3)

    for expected in (1, 2):
        with pytest.raises(services.RefreshRetryable):
            services.credential_refresh(credential_id=credential.pk)
        credential.refresh_from_db()
        assert credential.consecutive_failures == expected
        assert credential.status == CredentialStatus.ACTIVE
        assert credential.next_attempt_at > timezone.now()
        end_failure_window(credential)  # one failure counts per window (test_refresh_failing_provider.py)
    assert ads_search(credential.pk)  # the token still works while it is valid

    with pytest.raises(services.RefreshRetryable):
        services.credential_refresh(credential_id=credential.pk)
    credential.refresh_from_db()
    assert credential.status == CredentialStatus.ERROR
    end_failure_window(credential)

    services.credential_refresh(credential_id=credential.pk)  # the provider is back
    credential.refresh_from_db()
    assert (credential.status, credential.consecutive_failures, credential.last_error_code) == ("active", 0, "")


def test_a_slow_token_endpoint_is_a_transient_failure(providers, settings):
    settings.CONNECTORS_HTTP_TIMEOUT = (1.0, 0.3)
    credential = google_credential(providers, expired=True)
    providers.control.fault(TOKEN, delay=1.0)
    with pytest.raises(services.RefreshRetryable):
        services.credential_refresh(credential_id=credential.pk)
    credential.refresh_from_db()
    assert credential.consecutive_failures == 1
    assert credential.last_error_code in ("timeout", "connection_error")
    time.sleep(0.8)  # let the sandbox finish the slow answer, so it is not logged into the next test


def test_rate_limited_refresh_waits_at_least_retry_after(providers):
    credential = google_credential(providers, expired=True)
    providers.control.fault(TOKEN, 429, headers={"Retry-After": "600"})
    with pytest.raises(services.RefreshRetryable):
        services.credential_refresh(credential_id=credential.pk)
    credential.refresh_from_db()
    assert credential.consecutive_failures == 1


# --- Meta ------------------------------------------------------------------------------------------


def test_meta_token_due_within_seven_days_is_re_exchanged(providers):
    credential = meta_credential(providers, ttl=3 * 86400)
    old = decrypt_secret(credential.access_token_enc)

    services.credential_refresh(credential_id=credential.pk)

    credential.refresh_from_db()
    assert decrypt_secret(credential.access_token_enc) != old
    assert credential.expires_at > timezone.now() + dt.timedelta(days=50)
    assert providers.calls("meta.oauth.access_token") == 1


def test_meta_token_far_from_expiry_is_left_alone(providers):
    credential = meta_credential(providers, ttl=30 * 86400)
    services.credential_refresh(credential_id=credential.pk)
    assert providers.calls("meta.oauth.access_token") == 0


def test_meta_system_user_token_is_never_refreshed(providers):
    credential = meta_credential(providers, kind="system")
    assert credential.expires_at is None
    services.credential_refresh(credential_id=credential.pk, force=True)
    assert meta_insights(credential.pk)
    assert providers.calls("meta.oauth.access_token") == 0


@pytest.mark.parametrize("subcode", [463, 460, 467])
def test_meta_190_is_terminal(providers, subcode):
    credential = meta_credential(providers)
    providers.meta_invalidate(decrypt_secret(credential.access_token_enc), subcode=subcode)

    with pytest.raises(services.CredentialUnusable):
        meta_insights(credential.pk)

    credential.refresh_from_db()
    assert credential.status == CredentialStatus.NEEDS_REAUTH
    assert credential.last_error_code == f"meta_190_{subcode}"
    insights = providers.control.calls("meta.insights.get")
    assert [c["status"] for c in insights] == [400]
    assert providers.calls("meta.oauth.access_token") == 1


# --- concurrency -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_fifty_callers_on_one_expired_google_token_make_one_token_call(providers):
    credential = google_credential(providers, expired=True)
    start = threading.Barrier(50)

    def caller(_):
        try:
            start.wait()
            return ads_search(credential.pk)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(caller, range(50)))

    assert len(results) == 50 and all(r[0]["campaign"]["name"] == "Brand" for r in results)
    assert providers.calls(TOKEN) == 1
    assert all(c["status"] == 200 for c in providers.control.calls(SEARCH))
    assert AuditEvent.objects.filter(action="credential.refreshed").count() == 1


@pytest.mark.django_db(transaction=True)
def test_fifty_callers_on_a_revoked_refresh_token_make_one_token_call(providers):
    credential = google_credential(providers, expired=True)
    providers.google_revoke(decrypt_secret(credential.refresh_token_enc))
    start = threading.Barrier(50)

    def caller(_):
        try:
            start.wait()
            ads_search(credential.pk)
        except services.CredentialUnusable:
            return "unusable"
        finally:
            connection.close()
        return "ok"

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(caller, range(50)))

    assert outcomes == ["unusable"] * 50
    assert providers.calls(TOKEN) == 1
    assert providers.calls(SEARCH) == 0
    assert AuditEvent.objects.filter(action="credential.needs_reauth").count() == 1


def test_an_api_key_the_provider_stops_accepting_marks_needs_reauth_without_refresh(providers):
    from connectors.clients.klaviyo import KlaviyoClient
    from tests.connectors.factories import CredentialFactory

    credential = CredentialFactory(
        provider="klaviyo", auth_kind="api_key", api_key="pk_" + "q" * 34, access_token="", expires_at=None
    )
    with pytest.raises(services.CredentialUnusable):
        services.credential_call(credential_id=credential.pk, call=lambda key: KlaviyoClient().accounts(api_key=key))
    credential.refresh_from_db()
    assert credential.status == CredentialStatus.NEEDS_REAUTH
    assert providers.calls("klaviyo.accounts.list") == 1


def test_proactive_meta_re_exchange_of_a_dead_token_is_terminal(providers):
    credential = meta_credential(providers, ttl=3 * 86400)
    providers.meta_invalidate(decrypt_secret(credential.access_token_enc), subcode=467)
    with pytest.raises(services.CredentialUnusable):
        services.credential_refresh(credential_id=credential.pk)
    credential.refresh_from_db()
    assert (credential.status, credential.last_error_code) == ("needs_reauth", "meta_190_467")

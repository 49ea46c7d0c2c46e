"""Refresh when the provider fails: single flight, a short negative cache, one failure per window, a bounded
wait (issue 12, item 12), and transient answers that must not end a credential (item 13).

Everything goes over real HTTP to the sandbox; its call log is the count of provider calls.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.utils import timezone

from accounts.choices import Role
from compliance.models import AuditEvent
from connectors import services, tasks
from connectors.choices import CredentialStatus
from connectors.clients.google import GoogleAdsClient
from connectors.crypto import decrypt_secret
from connectors.models import ConnectorCredential
from connectors.selectors import REFRESH_RESCUE_GRACE, credential_ids_due_for_refresh
from notifications.models import Notification
from tests.accounts.factories import MembershipFactory
from tests.connectors.factories import google_credential, meta_credential

pytestmark = pytest.mark.django_db

TOKEN = "google.oauth.token"
META_TOKEN = "meta.oauth.access_token"
SEARCH = "google.ads.search"
CALLERS = 50
HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
# A caller's wall time may exceed CONNECTORS_REFRESH_MAX_WAIT_SECONDS by this much (thread start, the
# Ads call before the refresh, reading the row); far below what an unbounded wait would add.
SLACK_SECONDS = 3.0


@pytest.fixture
def team(clerk):
    owner = MembershipFactory(clerk_user_id=clerk.user("user_owner"), role=Role.OWNER)
    MembershipFactory(merchant=owner.merchant, clerk_user_id=clerk.user("user_admin"), role=Role.ADMIN)
    return owner.merchant


def ads_search(credential_id: int):
    return services.credential_call(
        credential_id=credential_id,
        call=lambda token: GoogleAdsClient().search(access_token=token, customer_id="1234567890", query="SELECT 1"),
    )


def refused_by_google(providers, **kwargs) -> ConnectorCredential:
    """A credential whose row says valid for an hour, whose access token Google refuses (401): the reactive path."""
    credential = google_credential(providers, **kwargs)
    providers.google_expire(decrypt_secret(credential.access_token_enc))
    return credential


def refresh_on_401(credential: ConnectorCredential):
    """What `credential_call` does after a 401, without the Ads call (whose own timeout a loaded machine
    might hit when fifty run at once against a read timeout shrunk for the test)."""
    stale = decrypt_secret(credential.access_token_enc)
    return lambda: services.credential_refresh(credential_id=credential.pk, stale_access_token=stale)


def storm(call) -> list[tuple[str, float]]:
    """CALLERS threads, each with its own database connection, `call()` at once: (outcome, seconds)."""
    start = threading.Barrier(CALLERS)

    def caller(_):
        try:
            start.wait()
            started = time.monotonic()
            try:
                call()
                outcome = "ok"
            except services.RefreshRetryable as exc:
                outcome = "busy" if exc.message == services.REFRESH_BUSY else "retryable"
            return outcome, time.monotonic() - started
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=CALLERS) as pool:
        return list(pool.map(caller, range(CALLERS)))


def wait_for_calls(providers, route: str, count: int) -> None:
    """A hanging answer is logged when the sandbox sends it; wait for it so it is not logged into the next test."""
    deadline = time.monotonic() + 10
    while providers.calls(route) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def end_failure_window(credential: ConnectorCredential) -> None:
    """What the passing of CONNECTORS_REFRESH_NEGATIVE_CACHE_SECONDS does."""
    ConnectorCredential.objects.filter(pk=credential.pk).update(refresh_blocked_until=timezone.now())


# --- item 12: storms against a failing provider ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_fifty_callers_against_a_503_make_one_token_call_and_count_one_failure(providers, settings, team):
    # Two failures would turn it `error`: counting each caller's failure would show at once.
    settings.CONNECTORS_REFRESH_MAX_FAILURES = 2
    settings.CONNECTORS_REFRESH_MAX_WAIT_SECONDS = 5.0
    credential = refused_by_google(providers, merchant=team)
    providers.control.fault(TOKEN, 503, times=CALLERS)

    results = storm(lambda: ads_search(credential.pk))

    assert {outcome for outcome, _ in results} == {"retryable"}
    assert providers.calls(TOKEN) == 1
    credential.refresh_from_db()
    assert (credential.consecutive_failures, credential.status, credential.last_error_code) == (1, "active", "http_503")
    assert credential.refresh_blocked_until > timezone.now()
    assert not Notification.objects.exists()
    assert not AuditEvent.objects.filter(action="credential.refresh_failing").exists()
    assert max(seconds for _, seconds in results) < settings.CONNECTORS_REFRESH_MAX_WAIT_SECONDS + SLACK_SECONDS


@pytest.mark.django_db(transaction=True)
def test_fifty_callers_against_a_hanging_provider_make_one_token_call(providers, settings, team):
    settings.CONNECTORS_REFRESH_MAX_FAILURES = 2
    settings.CONNECTORS_REFRESH_MAX_WAIT_SECONDS = 5.0
    settings.CONNECTORS_HTTP_TIMEOUT = (1.0, 0.5)
    credential = refused_by_google(providers, merchant=team)
    providers.control.fault(TOKEN, delay=1.5, times=CALLERS)  # answers after the client gave up

    results = storm(refresh_on_401(credential))
    wait_for_calls(providers, TOKEN, 1)

    assert {outcome for outcome, _ in results} == {"retryable"}
    assert providers.calls(TOKEN) == 1
    credential.refresh_from_db()
    assert (credential.consecutive_failures, credential.status, credential.last_error_code) == (1, "active", "timeout")
    assert not Notification.objects.exists()
    assert max(seconds for _, seconds in results) < settings.CONNECTORS_REFRESH_MAX_WAIT_SECONDS + SLACK_SECONDS


@pytest.mark.django_db(transaction=True)
def test_a_caller_waits_no_longer_than_the_max_wait_even_when_the_read_timeout_is_longer(providers, settings, team):
    """Lock wait and provider call together: a provider that holds the first caller longer than the whole
    budget cuts its call short, and the queue behind it gives up in time instead of calling in turn."""
    settings.CONNECTORS_REFRESH_MAX_FAILURES = 2
    settings.CONNECTORS_REFRESH_MAX_WAIT_SECONDS = 1.0
    settings.CONNECTORS_HTTP_TIMEOUT = (5.0, 5.0)
    credential = refused_by_google(providers, merchant=team)
    providers.control.fault(TOKEN, delay=3.0, times=CALLERS)

    results = storm(refresh_on_401(credential))
    wait_for_calls(providers, TOKEN, 1)

    assert {outcome for outcome, _ in results} <= {"retryable", "busy"}
    assert providers.calls(TOKEN) == 1
    credential.refresh_from_db()
    assert (credential.consecutive_failures, credential.status) == (1, "active")  # a wait given up is not counted
    assert not Notification.objects.exists()
    assert max(seconds for _, seconds in results) < settings.CONNECTORS_REFRESH_MAX_WAIT_SECONDS + SLACK_SECONDS


def test_callers_within_the_window_get_the_failure_without_a_call_and_the_next_window_calls_again(providers):
    credential = refused_by_google(providers)
    providers.control.fault(TOKEN, 503, times=3)

    for _ in range(3):
        with pytest.raises(services.RefreshRetryable) as caught:
            ads_search(credential.pk)
    assert caught.value.extra["shared"] is True
    assert 0 < caught.value.extra["retry_after"] <= 30
    assert providers.calls(TOKEN) == 1

    end_failure_window(credential)
    with pytest.raises(services.RefreshRetryable):
        ads_search(credential.pk)
    assert providers.calls(TOKEN) == 2
    credential.refresh_from_db()
    assert credential.consecutive_failures == 2


def test_the_refresh_task_inside_the_window_retries_after_it_without_a_call(providers, settings):
    from unittest import mock

    settings.CONNECTORS_REFRESH_NEGATIVE_CACHE_SECONDS = 120
    credential = google_credential(providers, expired=True)
    providers.control.fault(TOKEN, 503)
    with pytest.raises(services.RefreshRetryable):
        services.credential_refresh(credential_id=credential.pk)

    retry = mock.patch.object(tasks.credential_refresh_task, "retry", side_effect=RuntimeError("retry"))
    with retry as retried, pytest.raises(RuntimeError, match="retry"):
        tasks.credential_refresh_task.run(credential.pk)
    assert retried.call_args.kwargs["countdown"] >= 115
    assert providers.calls(TOKEN) == 1


def test_admins_refresh_now_calls_even_inside_the_window_and_counts_no_second_failure(providers):
    credential = google_credential(providers, expired=True)
    providers.control.fault(TOKEN, 503, times=2)
    with pytest.raises(services.RefreshRetryable):
        services.credential_refresh(credential_id=credential.pk)

    with pytest.raises(services.RefreshRetryable):
        services.credential_refresh(credential_id=credential.pk, force=True)
    assert providers.calls(TOKEN) == 2
    credential.refresh_from_db()
    assert credential.consecutive_failures == 1

    services.credential_refresh(credential_id=credential.pk, force=True)  # the provider is back
    credential.refresh_from_db()
    assert (credential.consecutive_failures, credential.refresh_blocked_until, credential.status) == (0, None, "active")


def test_a_success_clears_the_window_for_everyone(providers):
    credential = refused_by_google(providers)
    providers.control.fault(TOKEN, 503)
    with pytest.raises(services.RefreshRetryable):
        ads_search(credential.pk)
    end_failure_window(credential)

    assert ads_search(credential.pk)[0]["campaign"]["name"] == "Brand"
    assert ads_search(credential.pk)
    assert providers.calls(TOKEN) == 2
    credential.refresh_from_db()
    assert (credential.consecutive_failures, credential.refresh_blocked_until, credential.last_error_code) == (
        0,
        None,
        "",
    )


# --- item 13: transient is not terminal -----------------------------------------------------------


def test_an_html_502_from_a_proxy_is_transient_and_schedules_a_retry(providers, team):
    credential = google_credential(providers, merchant=team)
    credential.expires_at = timezone.now() + dt.timedelta(minutes=5)  # due for the sweeper, still valid
    credential.save()
    providers.control.fault(TOKEN, 502, body=HTML_502, headers={"Content-Type": "text/html; charset=UTF-8"})

    with pytest.raises(services.RefreshRetryable):
        services.credential_refresh(credential_id=credential.pk)

    credential.refresh_from_db()
    assert credential.status == CredentialStatus.ACTIVE
    assert (credential.consecutive_failures, credential.last_error_code) == (1, "http_502")
    assert credential.next_attempt_at > timezone.now()
    assert credential.pk not in credential_ids_due_for_refresh()
    # One clock (issue 17): the retry at next_attempt_at is the task's; the sweeper only rescues it once overdue.
    assert credential.pk not in credential_ids_due_for_refresh(now=credential.next_attempt_at)
    assert credential.pk in credential_ids_due_for_refresh(now=credential.next_attempt_at + REFRESH_RESCUE_GRACE)
    assert not Notification.objects.exists()

    end_failure_window(credential)
    services.credential_refresh(credential_id=credential.pk)  # minutes later Google answers again
    credential.refresh_from_db()
    assert (credential.status, credential.consecutive_failures) == ("active", 0)


@pytest.mark.parametrize(
    ("status", "body", "content_type", "code"),
    [
        (500, "", "text/plain", "http_500"),
        (500, "upstream connect error or disconnect/reset before headers", "text/plain", "http_500"),
        (503, HTML_502, "text/html", "http_503"),
        (200, HTML_502, "text/html", "non_json_200"),
        (200, {"token_type": "Bearer"}, "application/json", "invalid_response"),
        (200, {"access_token": "", "expires_in": 3599}, "application/json", "invalid_response"),
        (200, {"access_token": "ya29.x", "expires_in": 10**20}, "application/json", "invalid_response"),
        (200, {"access_token": "ya29.x", "expires_in": "soon"}, "application/json", "invalid_response"),
        (400, HTML_502, "text/html", "non_json_400"),
    ],
)
def test_answers_that_say_nothing_about_the_credential_are_transient(providers, status, body, content_type, code):
    credential = google_credential(providers, expired=True)
    providers.control.fault(TOKEN, status, body=body, headers={"Content-Type": content_type})

    with pytest.raises(services.RefreshRetryable):
        services.credential_refresh(credential_id=credential.pk)

    credential.refresh_from_db()
    assert (credential.status, credential.consecutive_failures, credential.last_error_code) == ("active", 1, code)


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (502, HTML_502, "text/html"),
        (200, "not json", "text/plain"),
        (500, "", "text/plain"),
        (200, {"access_token": "EAAtoken", "expires_in": 10**12}, "application/json"),
        (200, {"token_type": "bearer"}, "application/json"),
    ],
)
def test_meta_token_answers_that_are_not_json_are_transient(providers, status, body, content_type):
    credential = meta_credential(providers, ttl=3 * 86400)
    providers.control.fault(META_TOKEN, status, body=body, headers={"Content-Type": content_type})

    with pytest.raises(services.RefreshRetryable):
        services.credential_refresh(credential_id=credential.pk)

    credential.refresh_from_db()
    assert (credential.status, credential.consecutive_failures) == ("active", 1)


def test_google_429_schedules_the_retry_no_sooner_than_retry_after(providers):
    from unittest import mock

    credential = google_credential(providers, expired=True)
    providers.control.fault(TOKEN, 429, headers={"Retry-After": "600"})
    before = timezone.now()

    with pytest.raises(services.RefreshRetryable) as caught:
        services.credential_refresh(credential_id=credential.pk)

    assert 595 <= caught.value.extra["retry_after"] <= 600
    credential.refresh_from_db()
    assert credential.last_error_code == "rate_limited"
    assert credential.next_attempt_at >= before + dt.timedelta(seconds=600)
    assert credential.refresh_blocked_until >= before + dt.timedelta(seconds=600)
    # The task waits as long, and a reactive caller in the meantime does not knock.
    retry = mock.patch.object(tasks.credential_refresh_task, "retry", side_effect=RuntimeError("retry"))
    with retry as retried, pytest.raises(RuntimeError, match="retry"):
        tasks.credential_refresh_task.run(credential.pk)
    assert retried.call_args.kwargs["countdown"] >= 590
    assert providers.calls(TOKEN) == 1


def test_google_429_with_an_http_date_retry_after(providers):
    from email.utils import format_datetime

    credential = google_credential(providers, expired=True)
    later = timezone.now() + dt.timedelta(seconds=300)
    providers.control.fault(TOKEN, 429, headers={"Retry-After": format_datetime(later, usegmt=True)})

    with pytest.raises(services.RefreshRetryable):
        services.credential_refresh(credential_id=credential.pk)

    credential.refresh_from_db()
    assert credential.next_attempt_at >= later - dt.timedelta(seconds=1)


def test_the_expiring_alert_goes_out_only_when_expiry_is_before_the_next_retry(providers, team, settings):
    settings.CONNECTORS_REFRESH_NEGATIVE_CACHE_SECONDS = 60  # the next retry is at least a minute away
    outlives = google_credential(providers, merchant=team)
    outlives.expires_at = timezone.now() + dt.timedelta(minutes=5)
    outlives.save()
    dies_first = google_credential(providers, merchant=team)
    dies_first.expires_at = timezone.now() + dt.timedelta(seconds=20)
    dies_first.save()
    providers.control.fault(TOKEN, 502, body=HTML_502, headers={"Content-Type": "text/html"}, times=2)

    for credential in (outlives, dies_first):
        with pytest.raises(services.RefreshRetryable):
            services.credential_refresh(credential_id=credential.pk)

    outlives.refresh_from_db()
    dies_first.refresh_from_db()
    assert outlives.expires_at > outlives.next_attempt_at
    assert dies_first.expires_at < dies_first.next_attempt_at
    expiring = Notification.objects.filter(kind="credential_expiring")
    assert sorted(expiring.values_list("clerk_user_id", flat=True)) == ["user_admin", "user_owner"]
    assert {n.dedupe_key for n in expiring} == {f"credential:{dies_first.pk}:credential_expiring"}
    assert (outlives.status, dies_first.status) == ("active", "active")


def test_repeated_failures_turn_error_for_staff_without_mailing_the_merchant(providers, team, settings):
    settings.CONNECTORS_REFRESH_MAX_FAILURES = 3
    credential = google_credential(providers, merchant=team)
    credential.expires_at = timezone.now() + dt.timedelta(minutes=50)
    credential.save()
    providers.control.fault(TOKEN, 503, times=3)

    for _ in range(3):
        with pytest.raises(services.RefreshRetryable):
            services.credential_refresh(credential_id=credential.pk, force=True)
        end_failure_window(credential)

    credential.refresh_from_db()
    assert (credential.status, credential.consecutive_failures) == ("error", 3)
    assert AuditEvent.objects.filter(action="credential.refresh_failing", target_id=str(credential.pk)).count() == 1
    assert not Notification.objects.exists()


def test_invalid_grant_is_still_terminal_with_one_alert(providers, team):
    credential = google_credential(providers, expired=True, merchant=team)
    providers.google_revoke(decrypt_secret(credential.refresh_token_enc))

    for _ in range(3):
        with pytest.raises(services.CredentialUnusable):
            services.credential_refresh(credential_id=credential.pk)

    credential.refresh_from_db()
    assert (credential.status, credential.last_error_code) == ("needs_reauth", "invalid_grant")
    assert providers.calls(TOKEN) == 1
    assert AuditEvent.objects.filter(action="credential.needs_reauth", target_id=str(credential.pk)).count() == 1
    reauth = Notification.objects.filter(kind="credential_needs_reauth")
    assert sorted(reauth.values_list("clerk_user_id", flat=True)) == ["user_admin", "user_owner"]
    assert not Notification.objects.exclude(kind="credential_needs_reauth").exists()


def test_the_task_retries_a_failed_refresh_after_the_window_not_inside_it(providers, settings):
    from unittest import mock

    settings.CONNECTORS_REFRESH_NEGATIVE_CACHE_SECONDS = 45
    credential = google_credential(providers, expired=True)
    providers.control.fault(TOKEN, 502, body=HTML_502, headers={"Content-Type": "text/html"})

    retry = mock.patch.object(tasks.credential_refresh_task, "retry", side_effect=RuntimeError("retry"))
    with retry as retried, pytest.raises(RuntimeError, match="retry"):
        tasks.credential_refresh_task.run(credential.pk)

    assert 40 <= retried.call_args.kwargs["countdown"] <= 45
    assert providers.calls(TOKEN) == 1
